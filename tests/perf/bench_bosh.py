"""BOSH benchmark: boshcm against Prosody's mod_bosh and ejabberd's, measured in the same run on the same machine.

    .venv/bin/python -m tests.perf.bench_bosh [--sessions 1000] [--idle-sessions 10000] [--messages 2000]
                                              [--only boshcm|prosody|ejabberd]

Prints, for each server and as a ratio to the better of the two references: full XEP-0206 logins per second;
resident memory per 1,000 idle sessions that each hold a request; push latency p50/p99 from a sender's POST to
the held request's answer at `--sessions` live sessions (as this process saw it, and, run as root, when the answer
left the server by the kernel's clock: `tests/perf/wire_clock.py`); server CPU seconds per 1,000 delivered
messages. Each
server runs as its own process (ejabberd: Debian's 23.01 through tests/ejabberd.py); the load generator is this
process. Run on demand, never in the test command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families

from tests.ejabberd import EjabberdNode
from tests.integration.bosh_client import BoshClient
from tests.integration.xmpp_client import XmppClient
from tests.interop.prosody import Prosody, free_port
from tests.perf.wire_clock import WireClock

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FiguresT = TypeVar("FiguresT")


@dataclass
class Figures:
    logins_per_second: float = 0.0
    rss_per_1000_idle_mib: float = 0.0
    idle_sessions_held: int = 0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    wire_latency_p50_ms: float = float("nan")
    wire_latency_p99_ms: float = float("nan")
    wire_latency_max_ms: float = float("nan")
    cpu_seconds_per_1000_messages: float = 0.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Target:
    name: str
    url: str
    pid: int
    c2s_port: int
    cert_path: Path

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


async def measure_both(args: argparse.Namespace,
                       measure: Callable[[Target, argparse.Namespace], Awaitable[FiguresT]]) -> dict[str, FiguresT]:
    """boshcm, Prosody, then ejabberd (or `--only` one), each in its own process, in one run."""
    results: dict[str, FiguresT] = {}
    with tempfile.TemporaryDirectory() as directory:
        targets: list[Target] = [BoshcmTarget(Path(directory) / "boshcm"), ProsodyTarget(Path(directory) / "prosody"),
                                 EjabberdTarget()]
        for target in targets:
            if args.only and target.name != args.only:
                continue
            await target.start()
            try:
                print(f"measuring {target.name} ...", file=sys.stderr)
                results[target.name] = await measure(target, args)
                print(f"  {results[target.name]}", file=sys.stderr)
            except Exception as error:  # one server failing must not lose the others' figures
                print(f"  {target.name} failed: {error!r}", file=sys.stderr)
            finally:
                await target.stop()
    return results


class BoshcmTarget(Target):
    name = "boshcm"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.c2s_port = free_port()
        self.metrics_port = free_port()  # bench_muc reads event-loop lag and GC pauses from /metrics
        self.cert_path = directory / "data" / "tls" / "cert.pem"
        self.url = f"http://127.0.0.1:{self.port}/http-bind"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        data = ["--data-dir", str(self.directory / "data")]
        adduser = await asyncio.create_subprocess_exec(sys.executable, "-m", "boshcm", "adduser", "bench",
                                                       "--password", "bench-secret", *data)
        await adduser.wait()
        # Every simulated client comes from 127.0.0.1: lift the per-address caps and the rate limit of the bench
        # sender and the quiz bot, which exist for strangers, not for a load generator (Prosody has neither by default).
        config = self.directory / "bench.toml"
        config.write_text("[c2s]\nmax_unauthenticated_per_address = 1000000\n"
                          "stanza_rate_exempt = [\"bench\", \"quiz\"]\n"
                          "[http]\nmax_websockets_per_address = 1000000\n"
                          f"[metrics]\nenabled = true\nlisten = \"127.0.0.1:{self.metrics_port}\"\n")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "boshcm", "serve", "--config", str(config), *data, "--c2s",
            f"127.0.0.1:{self.c2s_port}", "--http", f"127.0.0.1:{self.port}", "--log-level", "warning", "--no-quizbot")
        self.pid = self.process.pid
        await wait_for_port(self.port)

    async def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            await self.process.wait()


class ProsodyTarget(Target):
    name = "prosody"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def start(self) -> None:
        # Ports are picked only now: the previous target's thousands of client sockets may have used them.
        self.prosody = Prosody(self.directory)
        self.url = self.prosody.bosh_url
        self.c2s_port = self.prosody.c2s_port
        self.cert_path = self.prosody.cert_path
        self.prosody.register("bench", "bench-secret")
        await self.prosody.start()
        assert self.prosody._process is not None
        self.pid = self.prosody._process.pid
        await wait_for_port(self.prosody.http_port)

    async def stop(self) -> None:
        await self.prosody.stop()


# The MUC bench puts hundreds of sessions of one account into one room: lift ejabberd's defaults for that (200
# occupants per room and per service, 100 rooms per user) to the figures boshcm and Prosody allow.
EJABBERD_MUC = """  mod_muc:
    access_create: muc_create
    history_size: 20
    max_users: 5000
    max_user_conferences: 10000
    max_users_presence: 5000
    default_room_options:
      max_users: 5000
"""


class EjabberdTarget(Target):
    name = "ejabberd"

    def __init__(self) -> None:
        self.node: EjabberdNode | None = None

    async def start(self) -> None:
        # Ports are picked only now (as for Prosody): earlier targets' client sockets may have used them.
        node = self.node = EjabberdNode()
        config = node.directory / "ejabberd.yml"
        text = config.read_text()
        default_muc = "  mod_muc:\n    access_create: muc_create\n    history_size: 20\n"
        http = "    module: ejabberd_http\n"
        assert default_muc in text and http in text, "tests/ejabberd.py's configuration changed"
        # The listener's accept queue is 5 by default: a burst of hundreds of BOSH requests would be reset.
        config.write_text(text.replace(default_muc, EJABBERD_MUC).replace(http, f"{http}    backlog: 1024\n"))
        # Erlang's schedulers spin while idle by default: CPU time that is not work. Off, so that the CPU figures
        # count what serving the load cost, as they do for the other two.
        ctl = node.directory / "ejabberdctl.cfg"
        no_spinning = "+sbwt none +sbwtdcpu none +sbwtdio none "
        ctl.write_text(ctl.read_text().replace('ERL_OPTIONS="', f'ERL_OPTIONS="{no_spinning}'))
        node.start()
        await asyncio.to_thread(node.wait_started)
        await asyncio.to_thread(node.register, "bench", "bench-secret")
        self.url, self.c2s_port, self.cert_path = node.bosh_url, node.c2s_port, node.cert_path
        self.pid = node.pid

    async def stop(self) -> None:
        if self.node is not None:
            await asyncio.to_thread(self.node.stop)
            self.node.remove()


async def wait_for_port(port: int) -> None:
    for _attempt in range(200):
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


async def login(http: aiohttp.ClientSession, url: str, resource: str) -> BoshClient:
    client = BoshClient(http, url, wait=60)
    await client.login("bench", "bench-secret", resource=resource)
    return client


async def bounded(count: int, concurrency: int, make: Callable[[int], Awaitable[BoshClient]]) -> list[BoshClient]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(index: int) -> BoshClient:
        async with semaphore:
            return await make(index)

    return list(await asyncio.gather(*(one(index) for index in range(count))))


async def measure(target: Target, args: argparse.Namespace) -> Figures:
    figures = Figures()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        # Logins per second.
        started = time.perf_counter()
        clients = await bounded(args.logins, 20, lambda i: login(http, target.url, f"login{i}"))
        figures.logins_per_second = args.logins / (time.perf_counter() - started)
        print(f"  {target.name}: {figures.logins_per_second:.0f} logins/s", file=sys.stderr)
        await asyncio.gather(*(c.post(c.body(type="terminate")) for c in clients))
        await asyncio.sleep(1)

        # Memory per idle session holding a request.
        baseline = rss_bytes(target.pid)
        idle = await bounded(args.idle_sessions, 50, lambda i: login(http, target.url, f"idle{i}"))
        holders = [asyncio.create_task(c.post(c.body())) for c in idle]
        await asyncio.sleep(3)
        figures.idle_sessions_held = sum(1 for task in holders if not task.done())
        figures.rss_per_1000_idle_mib = (rss_bytes(target.pid) - baseline) / len(idle) * 1000 / 2**20
        print(f"  {target.name}: {figures.idle_sessions_held} held, {figures.rss_per_1000_idle_mib:.1f} MiB/1000",
              file=sys.stderr)
        for task in holders:
            task.cancel()
        await asyncio.gather(*(c.post(c.body(type="terminate")) for c in idle), return_exceptions=True)
        await asyncio.sleep(2)

        # Push latency and CPU per delivered message, at --sessions live sessions.
        live = await bounded(args.sessions, 50, lambda i: login(http, target.url, f"live{i}"))
        # The sender is a TCP client, so its own sending never waits on BOSH request pacing.
        sender = XmppClient("bench@localhost/sender", "bench-secret", port=target.c2s_port, ca_cert=target.cert_path)
        await sender.connect()
        arrivals: dict[str, float] = {}
        pollers = [asyncio.create_task(poll(c, arrivals)) for c in live]
        await asyncio.sleep(2)
        sent: dict[str, float] = {}
        sent_wall: dict[str, float] = {}
        # Run as root: when each response left the server, by the kernel's clock (tests/perf/wire_clock.py) — the
        # latency without the load generator's own queue of a thousand polls.
        wire = WireClock(server_ports=(urlsplit(target.url).port or 80,), pattern=rb"<body>(m\d+)</body>") \
            if WireClock.available() else None
        if wire is not None:
            wire.start()
        cpu_before = cpu_seconds(target.pid)
        for index in range(args.messages):
            token = f"m{index}"
            to = f"bench@localhost/live{index % len(live)}"
            sent[token], sent_wall[token] = time.perf_counter(), time.time()
            sender.xmpp.send_message(mto=to, mbody=token, mtype="chat")
            await asyncio.sleep(1 / args.rate)
        await asyncio.sleep(2)
        cpu_used = cpu_seconds(target.pid) - cpu_before
        if wire is not None:
            on_wire = wire.stop()
            wire_latencies = sorted((min(on_wire[t].values()) - sent_wall[t]) * 1000 for t in sent_wall if t in on_wire)
            if wire_latencies:
                figures.wire_latency_p50_ms = statistics.median(wire_latencies)
                figures.wire_latency_p99_ms = wire_latencies[max(0, int(len(wire_latencies) * 0.99) - 1)]
                figures.wire_latency_max_ms = wire_latencies[-1]
        latencies = sorted((arrivals[t] - sent[t]) * 1000 for t in sent if t in arrivals)
        missing = len(sent) - len(latencies)
        if missing:
            print(f"  {target.name}: {missing} messages not delivered", file=sys.stderr)
        figures.latency_p50_ms = statistics.median(latencies)
        figures.latency_p99_ms = latencies[int(len(latencies) * 0.99) - 1]
        figures.cpu_seconds_per_1000_messages = cpu_used / len(latencies) * 1000
        for task in pollers:
            task.cancel()
        await sender.close()
        if isinstance(target, BoshcmTarget):
            print(f"  {target.name}: {await runtime_figures(http, target)}", file=sys.stderr)
    return figures


async def runtime_figures(http: aiohttp.ClientSession, target: Target) -> dict[str, float]:
    """Event-loop lag and GC pauses over the whole run, from boshcm's /metrics (Prosody: not measured)."""
    if not isinstance(target, BoshcmTarget):
        return dict.fromkeys(("loop lag max bucket (ms)", "GC pauses", "GC pause total (ms)",
                              *(f"GC gen{g} {what}" for g in "012" for what in ("pauses", "longest, bucket (ms)"))),
                             float("nan"))
    async with http.get(f"http://127.0.0.1:{target.metrics_port}/metrics") as response:
        text = await response.text()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    lag = [(float(s.labels["le"]), s.value) for s in samples if s.name == "boshcm_event_loop_lag_seconds_bucket"]
    total = max(value for _le, value in lag)
    worst = min((le for le, value in lag if value >= total), default=float("inf"))   # bucket holding the max
    figures = {"loop lag max bucket (ms)": worst * 1000,
               "GC pauses": sum(s.value for s in samples if s.name == "boshcm_gc_pause_seconds_count"),
               "GC pause total (ms)": 1000 * sum(s.value for s in samples if s.name == "boshcm_gc_pause_seconds_sum")}
    for generation in ("0", "1", "2"):  # the longest pause of each generation (the upper bound of its bucket)
        buckets = [(float(s.labels["le"]), s.value) for s in samples
                   if s.name == "boshcm_gc_pause_seconds_bucket" and s.labels.get("generation") == generation]
        count = max((value for _le, value in buckets), default=0.0)
        figures[f"GC gen{generation} pauses"] = count
        figures[f"GC gen{generation} longest, bucket (ms)"] = 1000 * min(
            (le for le, value in buckets if value >= count), default=float("nan")) if count else 0.0
    return figures


async def poll(client: BoshClient, arrivals: dict[str, float]) -> None:
    while True:
        response = await client.post(client.body())
        now = time.perf_counter()
        for body in response.iter("{jabber:client}body"):
            arrivals[body.text or ""] = now
        if response.get("type") == "terminate":
            return


def print_table(results: dict[str, dict[str, float]], higher_is_better: frozenset[str] = frozenset()) -> None:
    """One column per server measured; with boshcm and a reference, the ratio to the better reference."""
    names = list(results)
    if not names:
        return
    references = [name for name in names if name != "boshcm"]
    compare = "boshcm" in results and bool(references)
    print(f"{'':42}" + "".join(f"{name:>12}" for name in names) + (f"{'vs best':>10}" if compare else ""))
    for label in results[names[0]]:
        values = [results[name][label] for name in names]
        line = f"{label:42}" + "".join(f"{value:12.2f}" for value in values)
        if compare:
            pick = max if label in higher_is_better else min
            best = pick(results[name][label] for name in references)
            line += f"{(results['boshcm'][label] / best if best else float('nan')):10.2f}"
        print(line)


def report(results: dict[str, Figures]) -> None:
    rows = [("logins per second", "logins_per_second"),
            ("RSS per 1,000 idle held sessions (MiB)", "rss_per_1000_idle_mib"),
            ("idle sessions holding a request", "idle_sessions_held"),
            ("push latency p50 (ms)", "latency_p50_ms"),
            ("push latency p99 (ms)", "latency_p99_ms"),
            ("push latency on the wire p50 (ms)", "wire_latency_p50_ms"),
            ("push latency on the wire p99 (ms)", "wire_latency_p99_ms"),
            ("push latency on the wire max (ms)", "wire_latency_max_ms"),
            ("CPU seconds per 1,000 messages", "cpu_seconds_per_1000_messages")]
    print_table({name: {label: float(getattr(figures, field)) for label, field in rows}
                 for name, figures in results.items()},
                higher_is_better=frozenset({"logins per second", "idle sessions holding a request"}))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1000, help="live sessions for the latency phase")
    parser.add_argument("--idle-sessions", type=int, default=1000, help="idle sessions for the memory phase")
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--only", choices=["boshcm", "prosody", "ejabberd"])
    args = parser.parse_args()
    results = await measure_both(args, measure)
    report(results)


if __name__ == "__main__":
    etree.set_default_parser(etree.XMLParser(resolve_entities=False, no_network=True))
    asyncio.run(main())
