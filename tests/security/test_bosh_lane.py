"""Hostile HTTP on the BOSH lane (boshcm/bosh/lane.py): what the lane does not frame itself goes to aiohttp, which
refuses it as before; pipelined floods stay bounded; trusted proxies decide the client's address and scheme there
as they do on aiohttp's routes."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import aiohttp
from lxml import etree

from boshcm.app import Server
from tests.integration.bosh_client import BoshClient
from tests.integration.test_bosh import bosh_url
from tests.integration.test_bosh_fanout import CREATE, raw_connection, read_created, read_response, request_bytes
from tests.security.transports import rss_kib
from tests.servers import running_server

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
MIB = 1024


async def exchange(server: Server, raw: bytes) -> bytes:
    """Everything the server says to `raw` until it closes the connection (or 5 s pass)."""
    async with raw_connection(server) as (reader, writer):
        writer.write(raw)
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(reader.read(), 5)
        return b"<still open>"


async def test_content_length_with_transfer_encoding_is_refused_and_smuggles_nothing(server: Server) -> None:
    # A front proxy that frames by Content-Length would see one request; chunked framing would see two.
    smuggled = request_bytes(server, "1.1", CREATE)
    head = (b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
            b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % (5 + len(smuggled)))
    answer = await exchange(server, head + b"0\r\n\r\n" + smuggled)
    assert re.match(rb"HTTP/1\.[01] 400 ", answer), answer[:80]
    assert b"sid=" not in answer and server.bosh is not None and not len(server.bosh.registry)


async def test_two_different_content_lengths_are_refused(server: Server) -> None:
    head = (b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\nContent-Length: 3\r\n\r\n"
            % len(CREATE))
    answer = await exchange(server, head + CREATE)
    assert re.match(rb"HTTP/1\.[01] 400 ", answer), answer[:80]
    assert server.bosh is not None and not len(server.bosh.registry)


async def test_a_bosh_post_asking_for_an_upgrade_is_answered_by_aiohttp(server: Server) -> None:
    """llhttp reports an upgrade by an exception of its own kind (not a parser error): it used to escape the lane
    and end the connection without an answer. aiohttp serves the POST as it did before the lane."""
    async with raw_connection(server) as (reader, writer):
        writer.write(request_bytes(server, "1.1", CREATE, "Upgrade: websocket", "Connection: upgrade"))
        await asyncio.wait_for(read_created(reader), 5)


async def test_a_head_longer_than_aiohttps_limit_is_refused(server: Server) -> None:
    head = b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"a" * 9000 + b"\r\n"
    answer = await exchange(server, head + b"Content-Length: %d\r\n\r\n" % len(CREATE) + CREATE)
    assert re.match(rb"HTTP/1\.[01] 4", answer), answer[:80]
    assert server.bosh is not None and not len(server.bosh.registry)


async def test_a_head_with_bare_line_feeds_is_answered_at_once_not_left_waiting(server: Server) -> None:
    """The lane looks for CRLF CRLF; a head ended otherwise goes to aiohttp rather than waiting out the idle
    timeout."""
    head = b"POST /http-bind HTTP/1.1\nHost: localhost\nContent-Length: %d\n\n" % len(CREATE)
    started = asyncio.get_running_loop().time()
    answer = await exchange(server, head + CREATE)
    assert answer != b"<still open>" and asyncio.get_running_loop().time() - started < 2
    assert re.match(rb"HTTP/1\.[01] ", answer), answer[:80]


class Flood:
    """A client that writes `burst` 64 times (64 MiB for a 1 MiB burst) as fast as the server reads it."""

    def __init__(self, writer: asyncio.StreamWriter, burst: bytes) -> None:
        self.written = 0
        self._task = asyncio.create_task(self._run(writer, burst))

    async def _run(self, writer: asyncio.StreamWriter, burst: bytes) -> None:
        for _ in range(64):
            writer.write(burst)
            await writer.drain()
            self.written += len(burst)

    def done(self) -> bool:
        return self._task.done()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await self._task


async def flooded_for(writer: asyncio.StreamWriter, burst: bytes, seconds: float, attack: str, bound_kib: int,
                      server: Server, http: aiohttp.ClientSession) -> None:
    """Flood for `seconds`: the server must have stopped reading, grown less than `bound_kib`, and still serve
    others. The flood is stopped again afterwards."""
    before = rss_kib()
    flood = Flood(writer, burst)
    await asyncio.sleep(seconds)
    try:
        assert not flood.done(), f"{attack}: the server read all 64 bursts"
        grown = rss_kib() - before
        print(f"\n{attack}: {flood.written // 1024} KiB taken from the client, server RSS grew {grown} KiB")
        assert grown < bound_kib
        other = BoshClient(http, bosh_url(server))
        await other.login("alice", "alice-secret")
        await other.close()
    finally:
        await flood.stop()


async def test_a_flood_pipelined_behind_a_held_request_is_not_read_into_memory(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http, \
            raw_connection(server) as (reader, writer):
        writer.write(request_bytes(server, "1.1", CREATE))
        sid = await read_created(reader)
        rid = int(etree.fromstring(CREATE).get("rid") or 0)
        held = (f"<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid + 1}' sid='{sid}'/>").encode()
        writer.write(request_bytes(server, "1.1", held))
        await asyncio.sleep(0.2)   # held by now
        junk = request_bytes(server, "1.1", b"x" * 60_000) * 16   # ~1 MiB of pipelined requests per write
        await flooded_for(writer, junk, 1, "pipelined flood", 16 * MIB, server, http)


async def test_a_client_that_pipelines_requests_and_reads_no_answer_is_not_answered_into_memory(
        tmp_path: Path) -> None:
    """Each request gets its answer at once (an unknown sid: item-not-found); the client reads none of them. Once the
    answers back up, the lane stops reading that connection until they drain."""
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http, \
            raw_connection(server) as (reader, writer):
        unknown = b"<body xmlns='http://jabber.org/protocol/httpbind' rid='7' sid='no-such-session'/>"
        burst = request_bytes(server, "1.1", unknown) * 4000   # ~1 MiB of requests, ~1 MiB of answers
        await flooded_for(writer, burst, 3, "unread answers", 16 * MIB, server, http)
        # The connection itself is intact: reading the answers lets the server go on.
        status, _, body = await read_response(reader)
        assert status == "HTTP/1.1 200 OK"
        assert etree.fromstring(body).get("condition") == "item-not-found"


async def test_behind_a_trusted_proxy_the_forwarded_address_and_scheme_decide_on_bosh(tmp_path: Path) -> None:
    """As on aiohttp's routes (tests/security/test_connections.py): PLAIN is offered to secure clients only, and the
    per-address cap of unauthenticated sessions counts the forwarded client, not the proxy."""
    overrides = {"http.trusted_proxies": ["127.0.0.1/32"], "c2s.max_unauthenticated_per_address": 1}
    async with running_server(tmp_path, overrides) as server:
        async def create(**forwarded: str) -> etree._Element:
            headers = {name.replace("_", "-"): value for name, value in forwarded.items()}
            async with aiohttp.ClientSession(headers=headers) as http:
                return await BoshClient(http, bosh_url(server)).create()

        def mechanisms(created: etree._Element) -> list[str]:
            return [node.text or "" for node in created.iter(f"{{{NS_SASL}}}mechanism")]

        plain = await create(X_Forwarded_For="203.0.113.9", X_Forwarded_Proto="http")
        assert plain.get("sid") and "PLAIN" not in mechanisms(plain)
        secure = await create(X_Forwarded_For="203.0.113.10", X_Forwarded_Proto="https")
        assert "PLAIN" in mechanisms(secure)
        # 203.0.113.9 has its one unauthenticated session; another address has not.
        refused = await create(X_Forwarded_For="203.0.113.9", X_Forwarded_Proto="https")
        assert refused.get("type") == "terminate" and refused.get("condition") == "policy-violation"
        assert (await create(X_Forwarded_For="203.0.113.11")).get("sid")
        assert server.http is not None and server.http.lane is not None
