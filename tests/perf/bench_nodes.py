"""Several nodes (docs/scaling.md): one boshcm node against two behind round robin, in front of one ejabberd.

    .venv/bin/python -m tests.perf.bench_nodes [--sessions 500] [--messages 2000] [--hops 1000]

Prints for "1 node" and "2 nodes" (each node a `boshcm serve --upstream` process; with two, every client's
requests alternate between the nodes, as a plain round-robin load balancer makes them, so half of them take
the extra hop to the session's owner): BOSH logins per second through the nodes, and push latency p50/p99
from a TCP sender at ejabberd to the receiver's held request at `--sessions` live sessions. Then the cost of the
hop itself: the same request (a repeated rid, answered from the owner's cache, XEP-0124 §14.3, so no XMPP server
is involved) sent to the owner and to the other node, p50/p99 each. Everything runs on this machine: with two
cores, two nodes plus ejabberd plus the load generator share them, so this shows the cost of the design, not
the capacity of a cluster. Run on demand, never in the test command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from lxml import etree

from tests.ejabberd import EjabberdNode, ejabberd_node
from tests.integration.bosh_client import BoshClient
from tests.integration.nodes import free_port, node_process, write_secret
from tests.integration.xmpp_client import XmppClient

ACCOUNT, PASSWORD = "bench", "bench-secret"
# Every simulated client comes from 127.0.0.1: the per-address caps exist for strangers, not a load generator.
NODE_EXTRA = {"c2s.max_unauthenticated_per_address": 1_000_000, "http.max_websockets_per_address": 1_000_000,
              "log.level": "warning"}


@dataclass
class Figures:
    logins_per_second: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    delivered: int = 0


class RoundRobinBosh(BoshClient):
    """Each request to the next node, as a round-robin load balancer without sticky sessions does."""

    def __init__(self, http: aiohttp.ClientSession, urls: list[str], turn: int) -> None:
        super().__init__(http, urls[turn % len(urls)], wait=60)
        self.urls, self.turn = urls, turn

    async def post(self, data: bytes) -> etree._Element:
        self.url = self.urls[self.turn % len(self.urls)]
        self.turn += 1
        return await super().post(data)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * fraction) - 1)]


async def bounded(count: int, concurrency: int, make: object) -> list[RoundRobinBosh]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(index: int) -> RoundRobinBosh:
        async with semaphore:
            return await make(index)  # type: ignore[operator, no-any-return]

    return list(await asyncio.gather(*(one(index) for index in range(count))))


async def poll(client: BoshClient, arrivals: dict[str, float]) -> None:
    while True:
        response = await client.post(client.body())
        now = time.perf_counter()
        for body in response.iter("{jabber:client}body"):
            arrivals[body.text or ""] = now
        if response.get("type") == "terminate":
            return


async def measure(urls: list[str], ejabberd: EjabberdNode, args: argparse.Namespace) -> Figures:
    figures = Figures()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        async def login(index: int) -> RoundRobinBosh:
            client = RoundRobinBosh(http, urls, index)
            await client.login(ACCOUNT, PASSWORD, resource=f"live{index}")
            return client

        started = time.perf_counter()
        live = await bounded(args.sessions, 20, login)
        figures.logins_per_second = len(live) / (time.perf_counter() - started)
        sender = XmppClient(f"{ACCOUNT}@localhost/sender", PASSWORD, port=ejabberd.c2s_port,
                            ca_cert=ejabberd.cert_path)
        await sender.connect()
        arrivals: dict[str, float] = {}
        pollers = [asyncio.create_task(poll(client, arrivals)) for client in live]
        await asyncio.sleep(2)
        sent: dict[str, float] = {}
        for index in range(args.messages):
            token = f"m{index}"
            sent[token] = time.perf_counter()
            sender.xmpp.send_message(mto=f"{ACCOUNT}@localhost/live{index % len(live)}", mbody=token, mtype="chat")
            await asyncio.sleep(1 / args.rate)
        await asyncio.sleep(2)
        latencies = [(arrivals[token] - at) * 1000 for token, at in sent.items() if token in arrivals]
        figures.delivered = len(latencies)
        figures.latency_p50_ms = statistics.median(latencies)
        figures.latency_p99_ms = percentile(latencies, 0.99)
        for task in pollers:
            task.cancel()
        await asyncio.gather(*(c.post(c.body(type="terminate")) for c in live), return_exceptions=True)
        await sender.close()
    return figures


async def hop_cost(owner_url: str, other_url: str, count: int) -> dict[str, tuple[float, float]]:
    """p50/p99 (ms) of one cached answer fetched at the owner and through the other node."""
    async with aiohttp.ClientSession() as http:
        client = BoshClient(http, owner_url, wait=60)
        await client.login(ACCOUNT, PASSWORD, resource="hop")
        repeat = client.body("<iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        await client.post(repeat)                     # answered (the ping's result) and cached under its rid
        figures: dict[str, tuple[float, float]] = {}
        for label, url in (("owner", owner_url), ("other node", other_url)):
            times = []
            for _ in range(count):
                started = time.perf_counter()
                async with http.post(url, data=repeat) as reply:
                    await reply.read()
                times.append((time.perf_counter() - started) * 1000)
            figures[label] = (statistics.median(times), percentile(times, 0.99))
        await client.post(client.body(type="terminate"))
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--hops", type=int, default=1000, help="requests for the hop cost, per path")
    args = parser.parse_args()
    results: dict[str, Figures] = {}
    with ejabberd_node({ACCOUNT: PASSWORD}) as ejabberd, tempfile.TemporaryDirectory() as directory:
        upstreams = [f"127.0.0.1:{ejabberd.c2s_port}"]
        secret_file = write_secret(Path(directory))
        for layout, ids in (("1 node", ("a",)), ("2 nodes", ("a", "b"))):
            internal = {node: free_port() for node in ids}
            ports = {node: free_port() for node in ids}
            async with contextlib.AsyncExitStack() as stack:
                where = Path(directory) / layout.replace(" ", "-")
                where.mkdir()
                for node in ids:
                    await stack.enter_async_context(node_process(
                        where, node, upstreams=upstreams, internal_ports=internal, http_port=ports[node],
                        secret_file=secret_file, extra=NODE_EXTRA))
                urls = [f"http://127.0.0.1:{ports[node]}/http-bind" for node in ids]
                print(f"measuring {layout} ...", file=sys.stderr)
                results[layout] = await measure(urls, ejabberd, args)
                print(f"  {results[layout]}", file=sys.stderr)
                if len(ids) == 2:
                    hops = await hop_cost(urls[0], urls[1], args.hops)
    print(f"{'':34}{'1 node':>12}{'2 nodes':>12}")
    for label, field in (("logins per second", "logins_per_second"), ("push latency p50 (ms)", "latency_p50_ms"),
                         ("push latency p99 (ms)", "latency_p99_ms"), ("messages delivered", "delivered")):
        print(f"{label:34}{getattr(results['1 node'], field):12.2f}{getattr(results['2 nodes'], field):12.2f}")
    print(f"\n{'cached answer (ms)':34}{'p50':>12}{'p99':>12}")
    for label, (p50, p99) in hops.items():
        print(f"{'at the ' + label:34}{p50:12.2f}{p99:12.2f}")
    print(f"{'extra hop':34}{hops['other node'][0] - hops['owner'][0]:12.2f}"
          f"{hops['other node'][1] - hops['owner'][1]:12.2f}")


if __name__ == "__main__":
    etree.set_default_parser(etree.XMLParser(resolve_entities=False, no_network=True))
    asyncio.run(main())
