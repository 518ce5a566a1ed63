"""Connections under attack: per-address caps, slow HTTP clients, WebSocket readers that stop reading,
origins, and the client's real address behind trusted proxies."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from boshcm.address_slots import AddressSlots
from boshcm.app import Server
from boshcm.jid import JID
from boshcm.web import TrustedProxies
from tests.security.transports import (
    NS_SASL,
    C2sRawClient,
    WebSocketRawClient,
    connected,
    rss_kib,
    until_stream_error,
)
from tests.servers import running_server


@pytest.fixture
async def strict_server(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    """A server with the options a test passes through `@pytest.mark.parametrize(..., indirect=True)`."""
    async with running_server(tmp_path, getattr(request, "param", {})) as running:
        yield running


# --- per-address caps -------------------------------------------------------------------------------

def test_address_slots_are_counted_per_address_and_given_back_once() -> None:
    slots = AddressSlots(per_address=2)
    first, second = slots.take("192.0.2.1"), slots.take("192.0.2.1")
    assert first is not None and second is not None
    assert slots.take("192.0.2.1") is None
    assert slots.take("192.0.2.2") is not None
    first.release()
    first.release()
    assert slots.count("192.0.2.1") == 1
    assert slots.take("192.0.2.1") is not None


@pytest.mark.parametrize("strict_server", [{"c2s.max_unauthenticated_per_address": 3}], indirect=True)
async def test_unauthenticated_c2s_connections_are_capped_per_address(strict_server: Server) -> None:
    idle = [C2sRawClient(strict_server) for _ in range(3)]
    for client in idle:
        await client.connect()
        await client.features()
    try:
        async with connected("c2s", strict_server) as one_too_many:
            assert await until_stream_error(one_too_many) == "policy-violation"
        # A stranger who logs in gives the slot back: the next one gets in.
        await idle[0].close()
        async with connected("c2s", strict_server, login=("alice", "alice-secret")), \
                connected("c2s", strict_server) as next_one:
            assert isinstance(next_one, C2sRawClient)
            await next_one.features()
    finally:
        for client in idle:
            await client.close()


@pytest.mark.parametrize("strict_server", [{"c2s.max_unauthenticated_per_address": 3}], indirect=True)
async def test_unauthenticated_websockets_are_capped_per_address(strict_server: Server) -> None:
    idle = [WebSocketRawClient(strict_server) for _ in range(3)]
    for client in idle:
        await client.connect()
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await WebSocketRawClient(strict_server).connect()
        assert refused.value.status == 429
        await idle[0].close()
        async with connected("websocket", strict_server, login=("alice", "alice-secret")):
            pass
    finally:
        for client in idle:
            await client.close()


@pytest.mark.parametrize("strict_server", [{"http.max_websockets_per_address": 2}], indirect=True)
async def test_websockets_are_capped_per_address_also_after_login(strict_server: Server) -> None:
    async with connected("websocket", strict_server, login=("alice", "alice-secret")), \
            connected("websocket", strict_server, login=("bob", "bob-secret")):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await WebSocketRawClient(strict_server).connect()
        assert refused.value.status == 429


# --- slow HTTP clients ------------------------------------------------------------------------------

@pytest.mark.parametrize("strict_server", [{"http.idle_timeout_seconds": 1.0}], indirect=True)
async def test_half_sent_http_requests_are_closed_after_the_idle_timeout(strict_server: Server) -> None:
    assert strict_server.http is not None
    before = rss_kib()
    connections = []
    for _ in range(50):
        reader, writer = await asyncio.open_connection("127.0.0.1", strict_server.http.port)
        writer.write(b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n")
        connections.append((reader, writer))
    try:
        closed = await asyncio.wait_for(asyncio.gather(*(reader.read() for reader, _ in connections)), 5)
        assert all(data == b"" or data.startswith(b"HTTP/1.1 4") for data in closed)
        print(f"RSS growth with 50 half-sent requests: {rss_kib() - before} KiB")
    finally:
        for _, writer in connections:
            writer.close()


@pytest.mark.parametrize("strict_server", [{"http.idle_timeout_seconds": 1.0}], indirect=True)
async def test_a_request_trickled_byte_by_byte_is_cut_off_too(strict_server: Server) -> None:
    assert strict_server.http is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_server.http.port)
    request = b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"a" * 100
    try:
        async def trickle() -> None:
            for byte in request:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)

        trickling = asyncio.create_task(trickle())
        answer = await asyncio.wait_for(reader.read(), 3)  # the trickle alone would take over 7 s
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4")
        assert not trickling.done(), "the server waited for the whole trickle"
        trickling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trickling
    finally:
        writer.close()


# --- WebSocket clients that stop reading -------------------------------------------------------------

@pytest.mark.parametrize("strict_server", [{"c2s.max_stanza_bytes": 65_536, "c2s.stanza_rate_exempt": ["alice"],
                                            "mam.enabled": False}], indirect=True)
async def test_a_websocket_client_that_stops_reading_is_ended_with_resource_constraint(strict_server: Server) -> None:
    # alice is a fast sender here (no rate limit, no archive): what is measured is bob's queue alone.
    server = strict_server
    assert server.websocket is not None
    before = rss_kib()
    bob = WebSocketRawClient(server)
    bob_jid = JID.parse(await bob.login("bob", "bob-secret"))
    try:
        async with connected("c2s", server, login=("alice", "alice-secret")) as alice:
            await bob.send_raw(b"<presence xmlns='jabber:client'/>")
            # bob never reads again; alice sends him far more than the server queues for one client (and far
            # more than the socket buffers on both sides absorb), until his session has been ended. (Sending on
            # would bounce from his offline store into alice's socket, which this test does not read.)
            body = b"x" * 60_000
            for _ in range(500):
                await alice.send_raw(b"<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>" + body
                                     + b"</body></message>")
                if not server.router.is_bound(bob_jid):
                    break
            assert not server.router.is_bound(bob_jid), "bob's session was never ended"
            async with asyncio.timeout(10):
                while server.websocket.connections:
                    await asyncio.sleep(0.05)
            grown = rss_kib() - before
            print(f"RSS growth with a WebSocket reader that stopped reading: {grown} KiB")
            assert grown < 16_384
            # alice is unaffected.
            await alice.send_raw(b"<iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
            pong = await alice.next_element()
            while pong is not None and pong.get("id") != "p":
                pong = await alice.next_element()
            assert pong is not None and pong.get("type") == "result"
    finally:
        await bob.close()


# --- origins -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("strict_server", [{"http.cors_origins": ["https://quiz.example"]}], indirect=True)
async def test_a_websocket_from_an_origin_that_is_not_allowed_is_refused(strict_server: Server) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await WebSocketRawClient(strict_server, headers={"Origin": "https://evil.example"}).connect()
    assert refused.value.status == 403
    for allowed in ({"Origin": "https://quiz.example"}, {}):  # the allowed page, and a non-browser client
        client = WebSocketRawClient(strict_server, headers=allowed)
        await client.connect()
        await client.close()


# --- trusted proxies ----------------------------------------------------------------------------------

def headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({name.replace("_", "-"): value for name, value in values.items()}))


def test_forwarded_headers_count_only_from_trusted_proxies() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "::1"])
    forwarded = headers(X_Forwarded_For="203.0.113.9, 10.1.1.1", X_Forwarded_Proto="https")
    assert proxies.client("10.2.2.2", forwarded) == ("203.0.113.9", "https")
    assert proxies.client("198.51.100.7", forwarded) == (None, None)  # a client forging the header
    # A client that prepends its own fake hop does not get to choose: the rightmost untrusted one is it.
    forged = headers(X_Forwarded_For="127.0.0.1, 198.51.100.7, 10.1.1.1")
    assert proxies.client("10.2.2.2", forged)[0] == "198.51.100.7"
    rfc7239 = headers(Forwarded='for="[2001:db8::7]:4711";proto=https, for=10.1.1.1')
    assert proxies.client("::1", rfc7239) == ("2001:db8::7", "https")
    assert TrustedProxies([]).client("10.2.2.2", forwarded) == (None, None)


@pytest.mark.parametrize("strict_server", [{"http.trusted_proxies": ["127.0.0.1/32"]}], indirect=True)
async def test_behind_a_trusted_proxy_the_forwarded_address_and_scheme_decide(strict_server: Server) -> None:
    """PLAIN is offered to secure clients only; behind nginx a plain-http stranger is not loopback."""
    async def mechanisms(forwarded: dict[str, str]) -> list[str]:
        client = WebSocketRawClient(strict_server, headers=forwarded)
        await client.connect()
        try:
            features = await client.features()
            return [node.text or "" for node in features.iter(f"{{{NS_SASL}}}mechanism")]
        finally:
            await client.close()

    assert "PLAIN" not in await mechanisms({"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "http"})
    assert "PLAIN" in await mechanisms({"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})


@pytest.mark.parametrize("strict_server", [{"http.trusted_proxies": ["127.0.0.1/32"],
                                            "c2s.max_unauthenticated_per_address": 1}], indirect=True)
async def test_behind_a_trusted_proxy_caps_apply_to_each_client_not_to_the_proxy(strict_server: Server) -> None:
    first = WebSocketRawClient(strict_server, headers={"X-Forwarded-For": "203.0.113.9"})
    second = WebSocketRawClient(strict_server, headers={"X-Forwarded-For": "203.0.113.10"})
    await first.connect()
    await second.connect()
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await WebSocketRawClient(strict_server, headers={"X-Forwarded-For": "203.0.113.9"}).connect()
    finally:
        await first.close()
        await second.close()


# --- a burst of new connections ---------------------------------------------------------------------

BURST = 600


@pytest.mark.parametrize("listener", ["c2s", "http"])
async def test_a_burst_of_new_connections_is_not_dropped_while_the_server_is_busy(server: Server,
                                                                                  listener: str) -> None:
    """Players arriving at once, or every client of a drained node reconnecting, open hundreds of connections while
    the server is busy with something else. The kernel completes their handshakes into the listener's backlog; with
    a short backlog the rest of the SYNs are dropped and those clients wait a second (then three, seven...) before
    trying again. Here nothing accepts while the burst comes (the loop is not run): every handshake must still
    complete."""
    port = server.c2s.port if listener == "c2s" else server.http.port  # type: ignore[union-attr]
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(BURST)]
    try:
        for sock in sockets:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        time.sleep(0.3)   # the event loop does not run: the kernel alone completes the handshakes
        poller = select.poll()   # not select(): a test worker's descriptors may be above FD_SETSIZE
        by_fd = {sock.fileno(): sock for sock in sockets}
        for fd in by_fd:
            poller.register(fd, select.POLLOUT)
        connected = sum(1 for fd, events in poller.poll(0) if events & select.POLLOUT
                        and by_fd[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
    finally:
        for sock in sockets:
            sock.close()
    assert connected == BURST, f"{BURST - connected} of {BURST} connections were left waiting for a SYN retry"
