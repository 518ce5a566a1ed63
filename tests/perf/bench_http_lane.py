"""What one BOSH-sized HTTP round trip costs the server: aiohttp against a bare asyncio protocol with a C parser.

    .venv/bin/python -m tests.perf.bench_http_lane [--connections 100] [--seconds 8]

The question behind it (docs/performance.md, issue 14): how much of a BOSH message's server CPU would a BOSH lane of
its own on the listener save? (boshcm has one since: boshcm/bosh/lane.py, with httptools as a dependency.) Each
server runs as its own process on uvloop and answers `POST /http-bind` with an empty `<body/>`, reading the request
body first; nothing else (no BOSH session, no XMPP). One aiohttp client process keeps `--connections` keep-alive
connections busy for `--seconds`. Printed per server: requests served and the server process's user + system CPU
per request (from /proc), which is what to compare: the client, one Python process, sets the request rate for both.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import aiohttp

from tests.interop.prosody import free_port
from tests.perf.bench_bosh import cpu_seconds, wait_for_port

EMPTY_BODY = b"<body xmlns='http://jabber.org/protocol/httpbind'/>"
REQUEST_BODY = b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1234567' sid='abcdefabcdefabcdefabcdef'/>"


async def serve_aiohttp(port: int) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=EMPTY_BODY, headers={"Content-Type": "text/xml; charset=utf-8"})

    app = web.Application()
    app.router.add_route("POST", "/http-bind", handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


async def serve_raw(port: int) -> None:
    import httptools

    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: %d\r\n\r\n"
              % len(EMPTY_BODY)) + EMPTY_BODY

    class Lane(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)   # uvloop's is not a subclass of it
            self.parser = httptools.HttpRequestParser(self)
            self.body: list[bytes] = []
            self.headers: list[tuple[bytes, bytes]] = []

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            b"".join(self.body)
            self.body, self.headers = [], []
            self.transport.write(answer)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

    await asyncio.get_running_loop().create_server(Lane, "127.0.0.1", port)
    await asyncio.Event().wait()


async def load(port: int, connections: int, seconds: float) -> int:
    served = 0
    end = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async def one() -> None:
            nonlocal served
            while time.monotonic() < end:
                async with http.post(f"http://127.0.0.1:{port}/http-bind", data=REQUEST_BODY) as response:
                    await response.read()
                    served += 1

        await asyncio.gather(*(one() for _ in range(connections)))
    return served


async def measure(kind: str, args: argparse.Namespace) -> tuple[int, float]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.perf.bench_http_lane", "--serve", kind, str(port)],
                              cwd=Path(__file__).resolve().parents[2])
    try:
        await wait_for_port(port)
        before = cpu_seconds(server.pid)
        served = await load(port, args.connections, args.seconds)
        return served, cpu_seconds(server.pid) - before
    finally:
        server.terminate()
        server.wait()


async def compare(args: argparse.Namespace) -> None:
    for kind in ("aiohttp", "raw"):
        served, cpu = await measure(kind, args)
        label = "aiohttp" if kind == "aiohttp" else "asyncio.Protocol + httptools"
        print(f"{label:30} {served:8d} requests   {cpu * 1e6 / max(1, served):6.1f} µs of server CPU per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:  # one of the two servers, in its own process
        import uvloop

        kind, port = args.serve[0], int(args.serve[1])
        uvloop.run(serve_aiohttp(port) if kind == "aiohttp" else serve_raw(port))
    else:
        asyncio.run(compare(args))


if __name__ == "__main__":
    main()
