"""The BOSH lane (boshcm/bosh/lane.py): BOSH requests are served by the lane, every other request by aiohttp, on
any mix of requests over one connection, in order."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import re
import sys
from pathlib import Path

import aiohttp
import pytest
from lxml import etree

from boshcm.app import Server
from boshcm.bosh import lane as lane_module
from boshcm.bosh.lane import BoshLane
from tests.integration.bosh_client import BoshClient
from tests.integration.test_bosh import bosh_url
from tests.integration.test_bosh_fanout import CREATE, raw_connection, read_created, read_response, request_bytes
from tests.interop.prosody import free_port
from tests.servers import running_server


def lane_of(server: Server) -> BoshLane:
    assert server.http is not None and isinstance(server.http.lane, BoshLane)
    return server.http.lane


def page_request(server: Server, path: str = "/http-bind") -> bytes:
    assert server.http is not None
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.http.port}\r\n\r\n".encode()


def preflight_request(server: Server) -> bytes:
    assert server.http is not None
    return (f"OPTIONS /http-bind HTTP/1.1\r\nHost: 127.0.0.1:{server.http.port}\r\nOrigin: https://quiz.example\r\n"
            "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n").encode()


async def test_a_whole_bosh_session_stays_in_the_lane(server: Server) -> None:
    lane = lane_of(server)
    async with aiohttp.ClientSession() as http:
        client = BoshClient(http, bosh_url(server))
        await client.login("alice", "alice-secret")
        pong = await client.post(client.body("<iq xmlns='jabber:client' type='get' id='p' to='localhost'>"
                                             "<ping xmlns='urn:xmpp:ping'/></iq>"))
        assert pong.find("{jabber:client}iq").get("type") == "result"  # type: ignore[union-attr]
        await client.close()
        assert lane.handed_over == 0
        # The quiz page's requests are aiohttp's.
        async with http.get(f"http://127.0.0.1:{server.http.port}/http-bind") as page:  # type: ignore[union-attr]
            assert page.status == 200 and "BOSH endpoint" in await page.text()
        assert lane.handed_over == 1


async def test_one_connection_carries_a_preflight_a_bosh_request_and_a_page_request_pipelined_in_order(
        server: Server) -> None:
    async with raw_connection(server) as (reader, writer):
        # All three in one write: the lane answers the first two, then hands the third to aiohttp.
        writer.write(preflight_request(server) + request_bytes(server, "1.1", CREATE) + page_request(server))
        status, headers, body = await read_response(reader)
        assert status == "HTTP/1.1 200 OK" and body == b""
        assert headers["access-control-allow-origin"] == "*"
        assert "POST" in headers["access-control-allow-methods"]
        assert headers["access-control-allow-headers"] == "Content-Type"
        status, headers, body = await read_response(reader)
        assert status == "HTTP/1.1 200 OK" and etree.fromstring(body).get("sid")
        status, headers, body = await read_response(reader)
        assert status == "HTTP/1.1 200 OK" and b"BOSH endpoint" in body
        assert lane_of(server).handed_over == 1


async def test_a_connection_aiohttp_took_still_serves_bosh(server: Server) -> None:
    async with raw_connection(server) as (reader, writer):
        writer.write(page_request(server))
        assert (await read_response(reader))[0] == "HTTP/1.1 200 OK"
        writer.write(request_bytes(server, "1.1", CREATE))
        status, headers, body = await read_response(reader)
        assert status == "HTTP/1.1 200 OK" and etree.fromstring(body).get("sid")
        assert headers["content-type"] == "text/xml; charset=utf-8"


async def test_a_body_in_a_segment_of_its_own_and_a_chunked_body_are_both_read(server: Server) -> None:
    assert server.http is not None
    async with raw_connection(server) as (reader, writer):
        request = request_bytes(server, "1.1", CREATE)
        head_end = request.index(b"\r\n\r\n") + 4
        writer.write(request[:head_end])
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(request[head_end:])
        await read_created(reader)
        # Chunked: aiohttp's (the lane frames Content-Length bodies only), on the same connection.
        head = (f"POST /http-bind HTTP/1.1\r\nHost: 127.0.0.1:{server.http.port}\r\nContent-Type: text/xml\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        writer.write(head + b"%x\r\n" % len(CREATE) + CREATE + b"\r\n0\r\n\r\n")
        await read_created(reader)
        assert lane_of(server).handed_over == 1


async def test_expect_100_continue_is_answered(server: Server) -> None:
    """curl sends `Expect: 100-continue` with bodies over 1 KiB and waits for the interim answer (aiohttp's)."""
    async with raw_connection(server) as (reader, writer):
        request = request_bytes(server, "1.1", CREATE, "Expect: 100-continue")
        head_end = request.index(b"\r\n\r\n") + 4
        writer.write(request[:head_end])
        assert await asyncio.wait_for(reader.readline(), 5) == b"HTTP/1.1 100 Continue\r\n"
        assert await reader.readline() == b"\r\n"
        writer.write(request[head_end:])
        await read_created(reader)


async def test_an_idle_connection_is_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"http.idle_timeout_seconds": 0.5}) as server, \
            raw_connection(server) as (reader, writer):
        writer.write(request_bytes(server, "1.1", CREATE))
        assert (await read_response(reader))[0] == "HTTP/1.1 200 OK"
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert 0.3 < asyncio.get_running_loop().time() - started < 3
        assert not lane_of(server).connections


async def test_under_boshcm_serve_on_its_event_loop_the_hand_over_works_both_ways(tmp_path: Path) -> None:
    """`boshcm serve` runs on uvloop where installed, whose transports change protocols in code of their own: one
    connection carries BOSH, the page (handed to aiohttp) and BOSH again, and a WebSocket connects."""
    http_port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "boshcm", "serve", "--no-quizbot", "--c2s", f"127.0.0.1:{free_port()}",
        "--http", f"127.0.0.1:{http_port}", "--data-dir", str(tmp_path / "data"), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    try:
        assert process.stdout is not None
        loops: list[bytes] = []
        line = b""
        while b"http listening" not in line:
            line = await asyncio.wait_for(process.stdout.readline(), 20)
            assert line, "boshcm serve ended"
            loops += re.findall(rb"event loop: (\w+)\.", line)
        assert loops == [b"uvloop" if importlib.util.find_spec("uvloop") else b"asyncio"]
        reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
        page = f"GET /http-bind HTTP/1.1\r\nHost: 127.0.0.1:{http_port}\r\n\r\n".encode()
        bosh = (f"POST /http-bind HTTP/1.1\r\nHost: 127.0.0.1:{http_port}\r\nContent-Type: text/xml\r\n"
                f"Content-Length: {len(CREATE)}\r\n\r\n").encode() + CREATE
        writer.write(bosh + page + bosh)
        first, second, third = [await asyncio.wait_for(read_response(reader), 5) for _ in range(3)]
        assert etree.fromstring(first[2]).get("sid") and etree.fromstring(third[2]).get("sid")
        assert b"BOSH endpoint" in second[2]
        writer.close()
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(f"http://127.0.0.1:{http_port}/xmpp-websocket", protocols=["xmpp"]) as websocket:
            await websocket.send_str("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>")
            opened = await asyncio.wait_for(websocket.receive_str(), 5)
            assert opened.startswith("<open ") and "from=\"localhost\"" in opened
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def test_a_head_the_same_as_the_last_is_not_parsed_again_and_a_changed_one_is(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client polls with the same head every time: the lane keeps read_head's answer for the last head it served
    and compares the next head's bytes to it. Every request is still answered in order, with its own body."""
    parsed: list[bytes] = []
    original = lane_module.read_head

    def counting(buffer: bytes | bytearray, paths: frozenset[bytes], max_body_bytes: int) -> object:
        parsed.append(bytes(buffer[:bytes(buffer).find(b"\r\n\r\n")]))
        return original(buffer, paths, max_body_bytes)

    monkeypatch.setattr(lane_module, "read_head", counting)
    token = base64.b64encode(b"\0alice\0alice-secret").decode()
    login = [f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>", None,
             "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"]
    pings = [f"<iq xmlns='jabber:client' type='get' id='{ping_id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
             for ping_id in ("p1", "p2", "p333")]   # the first two bodies have one length, the third is longer
    async with raw_connection(server) as (reader, writer):
        writer.write(request_bytes(server, "1.1", CREATE))
        sid = await read_created(reader)
        for rid, payload in enumerate([*login, *pings], start=1001):
            attrs = f"rid='{rid}' sid='{sid}'" + (" xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'"
                                                   if payload is None else "")
            body = f"<body xmlns='http://jabber.org/protocol/httpbind' {attrs}>{payload or ''}</body>".encode()
            writer.write(request_bytes(server, "1.1", body))
            status, _, answer = await read_response(reader)
            assert status == "HTTP/1.1 200 OK" and len(etree.fromstring(answer)), answer
        assert etree.fromstring(answer)[0].get("id") == "p333"
    assert len(parsed) == 6, parsed   # seven requests: the second ping's head was the first ping's
    assert parsed[4] != parsed[5] and all(head.startswith(b"POST /http-bind") for head in parsed)
