"""An idle session keeps few objects for Python's cyclic collector to walk, on every transport.

A full collection walks every object the collector tracks; with 10,000 players logged in, those are mostly the
sessions' own, so each one a session keeps lengthens every full collection's pause (docs/performance.md, issue 14).
Idle clients log in from a process of their own (tests/integration/idle_clients.py) so that this process, which
runs the server, holds only the server's side of them. What is counted is boshcm's share: objects of boshcm's and
lxml's classes, and the lists, dicts and sets they hold. The asyncio, aiohttp and TLS objects of a connection are
not counted: they are their libraries' (and fewer under uvloop, which `boshcm serve` runs on).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections import Counter

import pytest

from boshcm.app import Server

SESSIONS = 20
# boshcm's and lxml's tracked objects per idle session, with room for one more. Each session keeps its connection,
# session machine, adapter, hub seat, address slot(s), rate bucket, router entry (with the set of its directed
# presences) and last presence (an element and its document); c2s also its stream parser, BOSH its lane connection,
# held request and two lists of its own. At the commit before this test BOSH kept 38.5 of these, c2s 26.1 and
# WebSocket 24.1: an lxml parser of five objects and three containers behind every kept presence, BOSH's last two
# answers as objects, its creation request, CSI state made for every session.
MOST_PER_SESSION = {"bosh": 23.0, "c2s": 16.0, "websocket": 14.0}


def _ours(obj: object) -> bool:
    module = type(obj).__module__
    return isinstance(module, str) and module.startswith(("boshcm", "lxml"))  # a class's __module__ is no str


def tracked_census() -> Counter[str]:
    """boshcm's and lxml's tracked objects by class, and the builtin containers they hold (after a collection)."""
    gc.collect()
    census: Counter[str] = Counter()
    containers: set[int] = set()   # each counted once, however many hold it (e.g. the server's set of guests)
    for obj in gc.get_objects():
        if _ours(obj):
            census[f"{type(obj).__module__}.{type(obj).__qualname__}"] += 1
            for held in gc.get_referents(obj):
                if type(held) in (list, dict, set) and gc.is_tracked(held) and id(held) not in containers:
                    containers.add(id(held))
                    census[f"{type(held).__name__} in {type(obj).__qualname__}"] += 1
    return census


async def idle_clients(server: Server, transport: str, count: int) -> asyncio.subprocess.Process:
    assert server.http is not None
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.idle_clients", transport, str(server.c2s.port),
        str(server.http.port), str(count), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    ready = await asyncio.wait_for(process.stdout.readline(), 120)
    assert ready.strip() == b"ready", ready
    return process


async def let_go(process: asyncio.subprocess.Process) -> None:
    assert process.stdin is not None
    process.stdin.close()
    await process.wait()


@pytest.mark.parametrize("transport", ["bosh", "c2s", "websocket"])
async def test_an_idle_session_keeps_few_objects_for_the_collector(server: Server, transport: str) -> None:
    # A first pair fills the caches and lazily made tables, which are not per session.
    await let_go(await idle_clients(server, transport, 2))
    await asyncio.sleep(0.5)
    before = tracked_census()
    clients = await idle_clients(server, transport, SESSIONS)
    try:
        after = tracked_census()
    finally:
        await let_go(clients)
    grown = after - before
    per_session = sum(grown.values()) / SESSIONS
    breakdown = {name: round(count / SESSIONS, 2) for name, count in grown.most_common() if count >= SESSIONS / 2}
    assert per_session <= MOST_PER_SESSION[transport], f"{per_session:.2f} per {transport} session: {breakdown}"
    assert grown["lxml.etree.XMLParser"] < SESSIONS / 2, f"a parser kept per {transport} session: {breakdown}"
