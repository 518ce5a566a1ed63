"""Fan-out over BOSH (issue 14): one stanza delivered to many held requests is written in one event-loop turn, each
answer a complete HTTP response of its own."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree

from boshcm.app import Server
from boshcm.bosh import http as http_module
from boshcm.bosh.lane import LaneConnection
from boshcm.bosh.session import BoshSession
from boshcm.jid import JID
from boshcm.xmpp.router import Deliver
from tests.integration.bosh_client import BoshClient
from tests.integration.test_bosh import bosh_url
from tests.servers import running_server

SESSIONS = 6


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def eventually(check: object, what: str) -> None:
    assert callable(check)
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def sessions_holding_requests(server: Server, http: aiohttp.ClientSession
                                    ) -> tuple[list[BoshClient], list[asyncio.Task[etree._Element]]]:
    """SESSIONS logged-in BOSH sessions of alice, each with a request held by the server."""
    assert server.bosh is not None
    endpoint = server.bosh
    clients = [BoshClient(http, bosh_url(server)) for _ in range(SESSIONS)]
    for index, client in enumerate(clients):
        await client.login("alice", "alice-secret", resource=f"r{index}")
    held = [asyncio.create_task(client.post(client.body())) for client in clients]
    await eventually(lambda: endpoint.held_requests() == SESSIONS, "every session holding a request")
    return clients, held


async def test_held_requests_of_one_fan_out_are_all_answered_in_the_next_loop_turn(
        server: Server, http: aiohttp.ClientSession) -> None:
    endpoint = server.bosh
    assert endpoint is not None
    clients, held = await sessions_holding_requests(server, http)

    stanza = etree.fromstring("<message xmlns='jabber:client' type='groupchat' from='room@conference.localhost/x'>"
                              "<body>to all</body></message>")
    seen: list[int] = []
    # One fan-out (as a room's reflection through the hub), then one callback queued behind it: by the time that
    # callback runs, every held request must have been answered, not still travelling through futures.
    server.hub.perform([Deliver(to=JID.parse(str(client.jid)), stanza=stanza) for client in clients])
    asyncio.get_running_loop().call_soon(lambda: seen.append(endpoint.held_requests()))
    answers = await asyncio.gather(*held)
    assert seen == [0]
    assert all(answer.findtext("{jabber:client}message/{jabber:client}body") == "to all" for answer in answers)
    for client in clients:
        await client.close()


async def test_a_fan_outs_answers_are_all_rendered_before_the_first_is_written_and_finished_after_the_last(
        server: Server, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the first recipient's answer and the last there are only the writes (the spread of a quiz question
    over 2,000 players is 2,000 of them)."""
    clients, held = await sessions_holding_requests(server, http)
    steps: list[str] = []
    render, written = LaneConnection.render_answer, LaneConnection.answer_written

    def recording_render(self: LaneConnection, *args: Any) -> Any:
        rendered = render(self, *args)
        assert rendered is not None
        transport, _ = rendered
        write = transport.write

        def recording_write(data: bytes | bytearray | memoryview) -> None:
            steps.append("write")
            write(data)

        transport.write = recording_write  # type: ignore[method-assign]
        steps.append("render")
        return rendered

    def recording_written(self: LaneConnection) -> None:
        steps.append("finish")
        written(self)

    monkeypatch.setattr(LaneConnection, "render_answer", recording_render)
    monkeypatch.setattr(LaneConnection, "answer_written", recording_written)
    stanza = etree.fromstring("<message xmlns='jabber:client' type='groupchat' from='room@conference.localhost/x'>"
                              "<body>to all</body></message>")
    server.hub.perform([Deliver(to=JID.parse(str(client.jid)), stanza=stanza) for client in clients])
    answers = await asyncio.gather(*held)
    assert steps == ["render"] * SESSIONS + ["write"] * SESSIONS + ["finish"] * SESSIONS
    assert all(answer.findtext("{jabber:client}message/{jabber:client}body") == "to all" for answer in answers)
    for client in clients:
        await client.close()


# --- the answers' own HTTP responses (written by BoshEndpoint._write_answers, not by aiohttp) -----------------------

CREATE = (b"<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='1000' to='localhost' "
          b"wait='5' hold='1' ver='1.11' xmpp:version='1.0'/>")


def request_bytes(server: Server, version: str, body: bytes, *extra: str) -> bytes:
    assert server.http is not None
    head = [f"POST /http-bind HTTP/{version}", f"Host: 127.0.0.1:{server.http.port}", "Content-Type: text/xml",
            f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@contextlib.asynccontextmanager
async def raw_connection(server: Server) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """One TCP connection to the HTTP listener, closed afterwards."""
    assert server.http is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http.port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def read_created(reader: asyncio.StreamReader) -> str:
    """The next response, which must be a session-creation answer: its sid."""
    status, _, body = await read_response(reader)
    sid = etree.fromstring(body).get("sid")
    assert status == "HTTP/1.1 200 OK" and sid, (status, body)
    return sid


async def read_response(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    status = (await reader.readline()).decode().strip()
    headers: dict[str, str] = {}
    while (line := (await reader.readline()).decode().strip()):
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"header {name} twice"
        headers[name.lower()] = value.strip()
    return status, headers, await reader.readexactly(int(headers["content-length"]))


async def test_an_answer_is_a_complete_http_response_and_the_connection_carries_the_next_request(
        server: Server) -> None:
    async with raw_connection(server) as (reader, writer):
        writer.write(request_bytes(server, "1.1", CREATE, "Origin: https://quiz.example"))
        status, headers, body = await read_response(reader)
        assert status == "HTTP/1.1 200 OK"
        assert headers["content-type"] == "text/xml; charset=utf-8"
        assert headers["access-control-allow-origin"] == "*"   # http.cors_origins = ["*"] by default
        assert "connection" not in headers   # HTTP/1.1: persistent unless it says otherwise
        assert email.utils.parsedate_to_datetime(headers["date"]).tzinfo is not None
        created = etree.fromstring(body)
        assert created.get("sid")
        # The same connection carries the next request (a terminate), and its answer, in order.
        terminate = (f"<body xmlns='http://jabber.org/protocol/httpbind' rid='1001' sid='{created.get('sid')}' "
                     "type='terminate'/>").encode()
        writer.write(request_bytes(server, "1.1", terminate))
        status, headers, body = await read_response(reader)
        assert status == "HTTP/1.1 200 OK"
        assert etree.fromstring(body).get("type") == "terminate"


@pytest.mark.parametrize(("asked", "kept"), [("Connection: keep-alive", True), ("Connection: close", False)])
async def test_an_http_1_0_answer_says_whether_the_connection_stays_open(
        server: Server, asked: str, kept: bool) -> None:
    async with raw_connection(server) as (reader, writer):
        writer.write(request_bytes(server, "1.0", CREATE, asked))
        status, headers, body = await read_response(reader)
        assert status == "HTTP/1.0 200 OK"
        assert headers["connection"] == ("keep-alive" if kept else "close")
        assert etree.fromstring(body).get("sid")
        if kept:
            writer.write(request_bytes(server, "1.0", CREATE, asked))
            assert (await read_response(reader))[0] == "HTTP/1.0 200 OK"
        else:
            assert await asyncio.wait_for(reader.read(), 5) == b""   # closed by the server after the answer


async def test_a_held_request_its_session_never_answers_is_answered_by_the_safety_net(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session machine answers every held request at 'wait'; should it ever fail to (a bug), the endpoint's
    one timer answers the request with internal-server-error once 'max_wait' and the grace period have passed,
    checked as a deadline of that timer rather than a timer made and cancelled for every request."""
    monkeypatch.setattr(http_module, "RESPONSE_GRACE_SECONDS", 0.3)
    monkeypatch.setattr(BoshSession, "handle_timeout", lambda self, now: [])   # the bug: 'wait' passes unanswered
    async with running_server(tmp_path, {"bosh.max_wait_seconds": 1}) as server, aiohttp.ClientSession() as http:
        client = BoshClient(http, bosh_url(server), wait=1)
        await client.login("alice", "alice-secret")
        started = asyncio.get_running_loop().time()
        answer = await asyncio.wait_for(client.post(client.body()), 5)
        took = asyncio.get_running_loop().time() - started
    assert (answer.get("type"), answer.get("condition")) == ("terminate", "internal-server-error")
    assert 1.0 <= took < 3.0, took
