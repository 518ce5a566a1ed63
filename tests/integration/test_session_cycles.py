"""A session that has ended is freed at once, by reference counting, on every transport.

A session's parts call each other back (transport and adapter, adapter and its hub seat, a BOSH session and its
link). Where such a pair keeps both references after the end, every ended session stays in memory as a reference
cycle until Python's full collection finds it: on a server that many phones connect to and drop from, that is
garbage growing between full collections and full collections walking it, the pauses issue 14 is about. These
tests end sessions with the cyclic collector switched off and then ask it what it would have had to free."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from boshcm.app import Server
from tests.integration.bosh_client import BoshClient
from tests.integration.nodes import bosh_url, start_nodes
from tests.security.transports import (
    BoshRawClient,
    C2sRawClient,
    RawClient,
    WebSocketRawClient,
    connected,
    raw_client,
)

TRANSPORTS = ("c2s", "bosh", "websocket")


def _bound(server: Server) -> int:
    return len(server.router.machine.resources)


async def _until_unbound(server: Server) -> None:
    for _ in range(100):
        if not _bound(server) and (server.bosh is None or not len(server.bosh.registry)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the session did not end")


async def _session(server: Server, transport: str, *, clean: bool) -> None:
    """Log in, exchange a stanza, then end the session: with the protocol's own end, or by dropping the
    connection (BOSH: a terminate either way, as its connections are not the session)."""
    async with connected(transport, server, login=("alice", "alice-secret")) as client:
        await client.send_raw(b"<iq xmlns='jabber:client' type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert await client.next_element() is not None
        if isinstance(client, BoshRawClient):
            assert client.bosh is not None
            await client.bosh.post(client.bosh.body(type="terminate"))
        elif clean:
            await client.send_raw(b"</stream:stream>")
    await _until_unbound(server)
    await asyncio.sleep(0.1)  # the connection's own task winds down


async def _reset_session(client: RawClient, server: Server) -> None:
    """Log in, then vanish with a TCP reset, as a phone's network drops it; until `server` (the embedded server, also
    behind an off-board node) has unbound the session."""
    assert isinstance(client, C2sRawClient | WebSocketRawClient)   # the transports on a connection of their own
    await client.login("alice", "alice-secret")
    client.reset()
    await client.close()
    await _until_unbound(server)
    await asyncio.sleep(0.1)


async def left_for_the_cycle_collector(session: Callable[[], Awaitable[None]]) -> list[str]:
    """boshcm's objects that only the cyclic collector would free after `session` ran with it switched off; a first
    run before fills the caches and lazily made tables, which are not garbage."""
    await session()
    gc.collect()
    gc.disable()
    try:
        gc.set_debug(gc.DEBUG_SAVEALL)
        await session()
        gc.collect()
        return sorted(type(obj).__qualname__ for obj in gc.garbage if type(obj).__module__.startswith("boshcm"))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@pytest.mark.parametrize("clean", [True, False], ids=["ended", "dropped"])
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_ended_session_leaves_no_reference_cycle(server: Server, transport: str, clean: bool) -> None:
    left = await left_for_the_cycle_collector(lambda: _session(server, transport, clean=clean))
    assert left == [], f"an ended {transport} session is freed only by the cycle collector: {left}"


async def test_an_ended_offboard_bosh_session_leaves_no_reference_cycle(server: Server, tmp_path: Path) -> None:
    """Off-board (a node in front of another XMPP server, here the embedded one): the BOSH connection and its
    OffboardLink call each other back the same way."""
    async with start_nodes(tmp_path, ("a",), upstreams=[f"127.0.0.1:{server.c2s.port}"]) as nodes, \
            aiohttp.ClientSession() as http:
        node = nodes["a"]

        async def session() -> None:
            client = BoshClient(http, bosh_url(node), wait=1)
            await client.login("alice", "alice-secret")
            await client.post(client.body(type="terminate"))
            await _until_unbound(server)
            await asyncio.sleep(0.1)

        left = await left_for_the_cycle_collector(session)
    assert left == [], f"an ended off-board BOSH session is freed only by the cycle collector: {left}"


async def test_a_dropped_offboard_websocket_leaves_no_reference_cycle(server: Server, tmp_path: Path) -> None:
    """Off-board over WebSocket: a phone's connection that goes without a close frame cancels the relay's handler,
    and a cancelled 3.11 TaskGroup would keep its frames, and with them the relay and its link, in a cycle."""
    async with start_nodes(tmp_path, ("a",), upstreams=[f"127.0.0.1:{server.c2s.port}"]) as nodes:
        node = nodes["a"]

        left = await left_for_the_cycle_collector(lambda: _reset_session(WebSocketRawClient(node), server))
    assert left == [], f"a dropped off-board WebSocket is freed only by the cycle collector: {left}"


@pytest.mark.parametrize("transport", ["c2s", "websocket"])
async def test_a_reset_connection_leaves_no_reference_cycle(server: Server, transport: str) -> None:
    """A phone whose connection is reset (RST, not FIN): asyncio keeps the ConnectionResetError on the stream, and
    a traceback through the connection's own frames would keep the connection and its session in a cycle."""
    left = await left_for_the_cycle_collector(lambda: _reset_session(raw_client(transport, server), server))
    assert left == [], f"a reset {transport} connection is freed only by the cycle collector: {left}"
