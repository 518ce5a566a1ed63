"""What an idle logged-in session keeps for Python's cyclic collector, all of it, per transport (on demand).

    .venv/bin/python -m tests.perf.session_objects [--transport bosh|c2s|websocket] [--sessions 30]

The server runs in this process on uvloop, as `boshcm serve` does; the clients log in from a process of their own
(tests/integration/idle_clients.py). Printed: the objects the collector tracks per session (all of them: boshcm's,
lxml's, aiohttp's, asyncio's and uvloop's), and the classes that make them up. Every full collection walks these
(docs/performance.md, issue 14, eighth pass); tests/integration/test_session_footprint.py bounds boshcm's share.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
from collections import Counter
from pathlib import Path

import uvloop

from tests.integration.test_session_footprint import idle_clients, let_go
from tests.servers import running_server


def census() -> Counter[str]:
    gc.collect()
    return Counter(f"{type(obj).__module__}.{type(obj).__qualname__}" for obj in gc.get_objects())


async def measure(transport: str, sessions: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        async with running_server(Path(directory)) as server:
            await let_go(await idle_clients(server, transport, 2))  # caches and lazily made tables first
            await asyncio.sleep(0.5)
            before = census()
            clients = await idle_clients(server, transport, sessions)
            try:
                grown = census() - before
            finally:
                await let_go(clients)
    print(f"{transport}: {sum(grown.values()) / sessions:.1f} tracked objects per idle session")
    for name, count in grown.most_common():
        if count >= sessions / 2:
            print(f"  {count / sessions:6.2f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=("bosh", "c2s", "websocket"), action="append")
    parser.add_argument("--sessions", type=int, default=30)
    args = parser.parse_args()
    for transport in args.transport or ("bosh", "c2s", "websocket"):
        uvloop.run(measure(transport, args.sessions))


if __name__ == "__main__":
    main()
