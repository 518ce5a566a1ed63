"""Idle clients in a process of their own, so the server's process holds only the server's side of them.

    python -m tests.integration.idle_clients TRANSPORT C2S_PORT HTTP_PORT COUNT

Logs COUNT sessions of `alice` in over TRANSPORT (c2s with STARTTLS, bosh, websocket), each on its own connection,
each sending its initial presence as a client does; BOSH sessions then keep one request held, as a browser does.
Prints "ready" once all are idle and keeps them until its standard input closes.
"""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace

import aiohttp

from tests.integration.bosh_client import BoshClient
from tests.security.transports import RawClient, raw_client

PRESENCE = "<presence xmlns='jabber:client'/>"


async def bosh_session(http_port: int, index: int) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession()  # a connection of its own, as each browser has
    client = BoshClient(http, f"http://127.0.0.1:{http_port}/http-bind", wait=600)
    await client.login("alice", "alice-secret", resource=f"idle{index}")
    await client.send(PRESENCE)
    client.start_polling()
    return http


async def main(transport: str, c2s_port: int, http_port: int, count: int) -> None:
    ports = SimpleNamespace(c2s=SimpleNamespace(port=c2s_port), http=SimpleNamespace(port=http_port))
    kept: list[aiohttp.ClientSession | RawClient] = []
    for index in range(count):
        if transport == "bosh":
            kept.append(await bosh_session(http_port, index))
        else:
            client = raw_client(transport, ports)  # type: ignore[arg-type]
            await client.login("alice", "alice-secret")
            await client.send_raw(PRESENCE.encode())
            kept.append(client)
    await asyncio.sleep(0.5)  # the last polls are held, the last presences handled
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    # Closed, not dropped at exit: aiohttp warns of every session left unclosed.
    await asyncio.gather(*(held.close() for held in kept), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
