"""The BOSH lane's framing decision (boshcm/bosh/lane.py `read_head`), without sockets: which requests it serves,
where their bodies are, and that everything else is handed to aiohttp whole."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boshcm.bosh.lane import HAND_OVER, MAX_HEAD_BYTES, NEED_MORE, LaneRequest, read_head

PATHS = frozenset({b"/http-bind", b"/bosh"})
MAX_BODY = 1000
BODY = b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1' sid='s'/>"


def post(*fields: str, body: bytes = BODY, target: str = "/http-bind", version: str = "1.1") -> bytes:
    head = [f"POST {target} HTTP/{version}", "Host: localhost", *fields]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def decide(data: bytes) -> LaneRequest:
    verdict = read_head(data, PATHS, MAX_BODY)
    assert isinstance(verdict, LaneRequest), verdict
    return verdict


def test_a_post_with_a_content_length_is_served_and_its_body_located() -> None:
    data = post(f"Content-Length: {len(BODY)}", "Origin: https://quiz.example")
    request = decide(data + b"POST /http-bind HTTP/1.1\r\n")   # the next request's start does not matter
    assert not request.preflight and request.keep_alive and request.version == (1, 1)
    assert data[request.head_length:request.head_length + request.body_length] == BODY
    assert request.fields[b"origin"] == b"https://quiz.example"
    assert decide(post(f"Content-Length: {len(BODY)}", target="/bosh?x=1")).body_length == len(BODY)


def test_http_1_0_and_connection_close_are_told() -> None:
    assert not decide(post(f"Content-Length: {len(BODY)}", version="1.0")).keep_alive
    assert decide(post(f"Content-Length: {len(BODY)}", "Connection: keep-alive", version="1.0")).keep_alive
    assert not decide(post(f"Content-Length: {len(BODY)}", "Connection: close")).keep_alive


def test_a_preflight_is_served_without_a_body() -> None:
    request = decide(b"OPTIONS /http-bind HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n")
    assert request.preflight and request.body_length == 0


@pytest.mark.parametrize("partial", [b"", b"PO", b"OPTIO", b"POST /http-bind HTTP/1.1\r\nHost: x\r\n"])
def test_a_head_not_complete_yet_waits(partial: bytes) -> None:
    assert read_head(partial, PATHS, MAX_BODY) is NEED_MORE


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                                        # the page
    b"G",                                                                         # known at the first byte
    b"HEAD /http-bind HTTP/1.1\r\n\r\n",
    post("Content-Length: 3", target="/upload/x"),                                # another path
    post("Content-Length: 3", target="http://localhost/http-bind"),               # absolute form: aiohttp's
    post(body=b""),                                                               # no length
    post("Transfer-Encoding: chunked"),                                           # chunked
    post(f"Content-Length: {len(BODY)}", "Transfer-Encoding: chunked"),           # smuggling
    post(f"Content-Length: {len(BODY)}", "Content-Length: 3"),                    # two lengths
    post(f"Content-Length: {len(BODY)}", f"Content-Length: {len(BODY)}"),         # a field twice
    post(f"Content-Length: {MAX_BODY + 1}"),                                      # too long a body
    post(f"Content-Length: {len(BODY)}", "Expect: 100-continue"),
    post(f"Content-Length: {len(BODY)}", "Upgrade: websocket", "Connection: upgrade"),
    post(f"Content-Length: {len(BODY)}", version="2.0"),
    post(f"Content-Length: {len(BODY)}", "X-Folded: a\r\n b"),                    # obs-fold
    post(f"Content-Length: {len(BODY)}", "Bad Name: x"),                          # not a token
    post("Content-Length: +3"),
    b"OPTIONS /http-bind HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",               # a preflight with a body
    b"POST /http-bind HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc",               # bare line feeds
    b"POST /http-bind HTTP/1.1\r\nX-Padding: " + b"a" * MAX_HEAD_BYTES,           # too long a head
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",                                          # HTTP/2's preface
])
def test_every_other_request_is_handed_over(data: bytes) -> None:
    assert read_head(data, PATHS, MAX_BODY) is HAND_OVER


@given(st.binary(max_size=300))
def test_any_bytes_are_served_waited_for_or_handed_over_and_never_misframed(data: bytes) -> None:
    verdict = read_head(data, PATHS, MAX_BODY)
    if isinstance(verdict, LaneRequest):
        end = data.find(b"\r\n\r\n")
        assert verdict.head_length == end + 4
        assert data.startswith(b"OPTIONS " if verdict.preflight else b"POST ")
        assert 0 <= verdict.body_length <= MAX_BODY


@given(st.lists(st.sampled_from([b"Host: x", b"Origin: https://a.example", b"Content-Type: text/xml",
                                 b"Content-Length: 3", b"Transfer-Encoding: chunked", b"Expect: 100-continue",
                                 b"Connection: close", b"content-length: 4"]), max_size=6))
def test_a_post_is_served_exactly_when_it_has_one_length_and_nothing_aiohttp_must_judge(fields: list[bytes]) -> None:
    data = b"POST /http-bind HTTP/1.1\r\n" + b"".join(field + b"\r\n" for field in fields) + b"\r\nabcd"
    names = [field.split(b":")[0].lower() for field in fields]
    expected = (names.count(b"content-length") == 1 and len(set(names)) == len(names)
                and not {b"transfer-encoding", b"expect"} & set(names))
    verdict = read_head(data, PATHS, MAX_BODY)
    assert isinstance(verdict, LaneRequest) == expected, (fields, verdict)
