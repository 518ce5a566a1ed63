"""BOSH benchmark: boshcm against Prosody's mod_bosh and ejabberd's, measured in the same run on the same machine.

    .venv/bin/python -m tests.perf.bench_bosh [--sessions 1000] [--idle-sessions 1000] [--logins 300]
                                              [--messages 2000] [--rate 200] [--generators 1]
                                              [--generator-nice 0] [--only boshcm|prosody|ejabberd]
    # issue 14's figures, the latency phase spread over two load generator processes:
    .venv/bin/python -m tests.perf.bench_bosh --sessions 10000 --idle-sessions 10000 --generators 2

Each server runs as its own process, started fresh (boshcm: `boshcm serve`; Prosody: tests/interop/prosody.py;
ejabberd: Debian's 23.01 through tests/ejabberd.py), one after the other; all accounts are `bench` with one
resource per session. Three phases per server:

1. Logins: `--logins` full XEP-0206 logins (session creation, SASL PLAIN, restart, bind), 20 at a time.
2. Memory: `--idle-sessions` sessions logged in, each holding one request; the server's RSS growth.
3. Latency: `--sessions` live sessions (resources live0...), each keeping one request held as a client does, and
   one sender over TCP c2s sending `--messages` chat messages at `--rate` per second, round robin over them.
   The sessions are spread over `--generators` load generator processes (interleaved: live<i> is polled by
   generator i mod K; 1, the default, polls them in this process beside the sender); each generator notes when
   each message arrived on CLOCK_MONOTONIC, which every process shares, and hands its arrivals back at the end.
   With 10,000 sessions one Python process re-posting 10,000 polls is itself the bottleneck: use 2 or more.

Rows of the printed table (one column per server; "vs best": boshcm divided by the better of the other two):
- logins per second: phase 1's logins over its wall time; server CPU per login: the server process's user + system CPU
  in phase 1, per login.
- RSS per 1,000 idle held sessions (MiB): phase 2's RSS growth of the server process, per 1,000 sessions.
- idle sessions holding a request: how many of phase 2's requests were still held after 3 s (all, if none was
  answered early).
- push latency p50 / p99 (ms): from the sender's send call to the arrival of the held request's answer at the
  generator that polls the addressee (generator side: includes that generator's own queue).
- push latency on the wire p50 / p99 / max (ms): run as root, from the send call to the moment the answer's TCP
  segment left the server, by the kernel's timestamp on the loopback interface (tests/perf/wire_clock.py): the
  server's latency without any generator's queue. NaN when not root.
- CPU seconds per 1,000 messages: the server process's user + system CPU during phase 3, per 1,000 delivered.
- push latency max (ms): as p50 / p99, the worst message.
- messages not delivered: sent in phase 3 and never seen by a generator.
- sender process CPU (% of a core): this process during phase 3 (the sender; with --generators 1 also the
  generator).
- load generator processes: K.
- load generator CPU, busiest / load generator <k> CPU (% of a core): each generator's CPU during phase 3. Near
  100 % means that generator, not the server, set the generator-side latencies.
On stderr, for boshcm: event-loop lag and GC pauses over the whole run, from its /metrics.
BENCH_BOSHCM_TOML (environment, every bench here): TOML appended to the boshcm target's configuration, after its
[metrics] section, for experiments: BENCH_BOSHCM_TOML='gc_threshold0 = 100000'.
Run on demand, never in the test command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families
from slixmpp import JID

from boshcm.xmpp.accounts import AccountStore
from tests.ejabberd import EjabberdNode, register_in_band
from tests.integration.bosh_client import BoshClient
from tests.integration.xmpp_client import XmppClient
from tests.interop.prosody import Prosody, free_port
from tests.perf.wire_clock import WireClock
from tests.perf.yardstick import yardstick_microseconds

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FiguresT = TypeVar("FiguresT")


@dataclass
class Figures:
    logins_per_second: float = 0.0
    cpu_ms_per_login: float = 0.0
    rss_per_1000_idle_mib: float = 0.0
    idle_sessions_held: int = 0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    latency_max_ms: float = 0.0
    undelivered: int = 0
    wire_latency_p50_ms: float = float("nan")
    wire_latency_p99_ms: float = float("nan")
    wire_latency_max_ms: float = float("nan")
    cpu_seconds_per_1000_messages: float = 0.0
    # During the latency phase, in % of one core: each load generator process and the sender's (this) process.
    generator_cpu_percent: list[float] = field(default_factory=list)
    sender_cpu_percent: float = 0.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# The account every bench signs in with unless it asks for accounts of its own.
BENCH_ACCOUNTS: Mapping[str, str] = {"bench": "bench-secret"}


class Target:
    """One server under test. `accounts` exist on it once `start` returns (each server's own quick way in)."""
    name: str
    url: str
    pid: int
    c2s_port: int
    cert_path: Path
    accounts: Mapping[str, str]

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


async def measure_both(args: argparse.Namespace,
                       measure: Callable[[Target, argparse.Namespace], Awaitable[FiguresT]],
                       accounts: Mapping[str, str] = BENCH_ACCOUNTS) -> dict[str, FiguresT]:
    """boshcm, Prosody, then ejabberd (or `--only` one), each in its own process, in one run, each with `accounts`."""
    results: dict[str, FiguresT] = {}
    with tempfile.TemporaryDirectory() as directory:
        targets: list[Target] = [BoshcmTarget(Path(directory) / "boshcm", accounts),
                                 ProsodyTarget(Path(directory) / "prosody", accounts), EjabberdTarget(accounts)]
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

    def __init__(self, directory: Path, accounts: Mapping[str, str] = BENCH_ACCOUNTS) -> None:
        self.directory = directory
        self.accounts = accounts
        self.port = free_port()
        self.c2s_port = free_port()
        self.metrics_port = free_port()  # bench_muc reads event-loop lag and GC pauses from /metrics
        self.cert_path = directory / "data" / "tls" / "cert.pem"
        self.url = f"http://127.0.0.1:{self.port}/http-bind"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        data = ["--data-dir", str(self.directory / "data")]
        # Written to the account store before the server opens it: thousands in seconds, no process per account.
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        store = AccountStore(self.directory / "data" / "accounts.sqlite")
        for username, password in self.accounts.items():
            store.add(username, password)
        store.close()
        # Every simulated client comes from 127.0.0.1: lift the per-address caps and the rate limit of the bench
        # sender and the quiz bot, which exist for strangers, not for a load generator (Prosody has neither by default).
        config = self.directory / "bench.toml"
        config.write_text("[c2s]\nmax_unauthenticated_per_address = 1000000\n"
                          "stanza_rate_exempt = [\"bench\", \"quiz\"]\n"
                          "[http]\nmax_websockets_per_address = 1000000\n"
                          f"[metrics]\nenabled = true\nlisten = \"127.0.0.1:{self.metrics_port}\"\n"
                          # An experiment's options for the boshcm under test, e.g. "gc_threshold0 = 100000" (they
                          # go into [metrics], the last section: a line "[section]" opens another).
                          + os.environ.get("BENCH_BOSHCM_TOML", "").replace("\\n", "\n") + "\n")
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

    def __init__(self, directory: Path, accounts: Mapping[str, str] = BENCH_ACCOUNTS) -> None:
        self.directory = directory
        self.accounts = accounts

    async def start(self) -> None:
        # Ports are picked only now: the previous target's thousands of client sockets may have used them.
        self.prosody = Prosody(self.directory)
        self.url = self.prosody.bosh_url
        self.c2s_port = self.prosody.c2s_port
        self.cert_path = self.prosody.cert_path
        await self._register()
        await self.prosody.start()
        assert self.prosody._process is not None
        self.pid = self.prosody._process.pid
        await wait_for_port(self.prosody.http_port)

    async def _register(self) -> None:
        """`prosodyctl register`, 8 at once (each is a Lua process of its own, ~0.3 s)."""
        semaphore = asyncio.Semaphore(8)

        async def one(username: str, password: str) -> None:
            async with semaphore:
                await asyncio.to_thread(self.prosody.register, username, password)

        await asyncio.gather(*(one(username, password) for username, password in self.accounts.items()))

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

    def __init__(self, accounts: Mapping[str, str] = BENCH_ACCOUNTS) -> None:
        self.node: EjabberdNode | None = None
        self.accounts = accounts

    async def start(self) -> None:
        # Ports are picked only now (as for Prosody): earlier targets' client sockets may have used them.
        node = self.node = EjabberdNode()
        config = node.directory / "ejabberd.yml"
        text = config.read_text()
        default_muc = "  mod_muc:\n    access_create: muc_create\n    history_size: 20\n"
        http, c2s = "    module: ejabberd_http\n", "    module: ejabberd_c2s\n"
        assert default_muc in text and http in text and c2s in text, "tests/ejabberd.py's configuration changed"
        # A listener's accept queue is 5 by default: a burst of hundreds of BOSH requests would be reset, and a
        # burst of in-band registrations over c2s (bench_quiz) would wait for retransmitted handshakes.
        config.write_text(text.replace(default_muc, EJABBERD_MUC).replace(http, f"{http}    backlog: 1024\n")
                          .replace(c2s, f"{c2s}    backlog: 1024\n"))
        # Erlang's schedulers spin while idle by default: CPU time that is not work. Off, so that the CPU figures
        # count what serving the load cost, as they do for the other two.
        ctl = node.directory / "ejabberdctl.cfg"
        no_spinning = "+sbwt none +sbwtdcpu none +sbwtdio none "
        ctl.write_text(ctl.read_text().replace('ERL_OPTIONS="', f'ERL_OPTIONS="{no_spinning}'))
        node.start()
        await asyncio.to_thread(node.wait_started)
        # XEP-0077 in band over plain c2s, 50 streams at once (the bench's ejabberd allows it from anyone):
        # `ejabberdctl register` would start an Erlang VM per account (~1 s each); in band costs ~8.5 ms of CPU.
        await register_in_band(node, self.accounts, concurrency=50)
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


async def settled(pid: int, *, busy_share: float = 0.05, limit_seconds: float = 120.0) -> None:
    """Until the server is idle again (under 5 % of a core over a second): a server still working through the joins
    or the first polls would otherwise bill that work to the messages, and delay them."""
    deadline = time.perf_counter() + limit_seconds
    before = cpu_seconds(pid)
    while time.perf_counter() < deadline:
        await asyncio.sleep(1)
        now = cpu_seconds(pid)
        if now - before < busy_share:
            return
        before = now


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
        cpu_before = cpu_seconds(target.pid)
        clients = await bounded(args.logins, 20, lambda i: login(http, target.url, f"login{i}"))
        figures.logins_per_second = args.logins / (time.perf_counter() - started)
        figures.cpu_ms_per_login = (cpu_seconds(target.pid) - cpu_before) * 1000 / args.logins
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

        # Push latency and CPU per delivered message, at --sessions live sessions spread over --generators.
        generators: list[Generator] = [LocalGenerator(http)] if args.generators == 1 else \
            [ProcessGenerator(args.generator_nice) for _ in range(args.generators)]
        # Interleaved, so that consecutive messages (to live0, live1, ...) go to different generators.
        shares = [range(k, args.sessions, args.generators) for k in range(args.generators)]
        per_generator = -(-50 // args.generators)  # 50 logins in flight in all, as with one generator
        try:
            await asyncio.gather(*(g.start(target.url, share, per_generator)
                                   for g, share in zip(generators, shares, strict=True)))
            await latency_phase(target, args, figures, generators)
        finally:
            await asyncio.gather(*(g.stop() for g in generators))
        if isinstance(target, BoshcmTarget):
            print(f"  {target.name}: {await runtime_figures(http, target)}", file=sys.stderr)
    return figures


async def latency_phase(target: Target, args: argparse.Namespace, figures: Figures,
                        generators: list[Generator]) -> None:
    """Messages at --rate from one TCP sender to the live sessions, round robin; the generators note arrivals."""
    # The sender is a TCP client, so its own sending never waits on BOSH request pacing.
    sender = XmppClient("bench@localhost/sender", "bench-secret", port=target.c2s_port, ca_cert=target.cert_path)
    await sender.connect()
    await asyncio.sleep(2)
    # The generators have logged in and started their pollers, but thousands of first polls take them seconds to
    # send and the server to hold: messages sent before would wait for their poll (a 0.5-1.3 s "tail" at 10,000
    # sessions, all of it in the phase's first 3 s). Wait until the server is idle, i.e. every poll is held.
    await settled(target.pid)
    sent: dict[str, float] = {}
    sent_wall: dict[str, float] = {}
    # Run as root: when each response left the server, by the kernel's clock (tests/perf/wire_clock.py) — the
    # latency without the load generator's own queue of a thousand polls.
    wire = WireClock(server_ports=(urlsplit(target.url).port or 80,), pattern=rb"<body>(m\d+)</body>") \
        if WireClock.available() else None
    if wire is not None:
        wire.start()
    cpu_before = cpu_seconds(target.pid)
    own_before = cpu_seconds(os.getpid())
    generators_before = [cpu_seconds(g.pid) for g in generators]
    phase_started = monotonic()
    for index in range(args.messages):
        token = f"m{index}"
        to = JID(f"bench@localhost/live{index % args.sessions}")
        sent[token], sent_wall[token] = monotonic(), time.time()
        sender.xmpp.send_message(mto=to, mbody=token, mtype="chat")
        await asyncio.sleep(1 / args.rate)
    await asyncio.sleep(2)
    cpu_used = cpu_seconds(target.pid) - cpu_before
    phase_seconds = monotonic() - phase_started
    figures.sender_cpu_percent = 100 * (cpu_seconds(os.getpid()) - own_before) / phase_seconds
    figures.generator_cpu_percent = [100 * (cpu_seconds(g.pid) - before) / phase_seconds
                                     for g, before in zip(generators, generators_before, strict=True)]
    print(f"  {target.name}: generators' CPU (% of a core) {[round(c) for c in figures.generator_cpu_percent]}, "
          f"sender's {figures.sender_cpu_percent:.0f}", file=sys.stderr)
    if wire is not None:
        on_wire = wire.stop()
        wire_latencies = sorted((min(on_wire[t].values()) - sent_wall[t]) * 1000 for t in sent_wall if t in on_wire)
        if wire_latencies:
            figures.wire_latency_p50_ms = statistics.median(wire_latencies)
            figures.wire_latency_p99_ms = wire_latencies[max(0, int(len(wire_latencies) * 0.99) - 1)]
            figures.wire_latency_max_ms = wire_latencies[-1]
    await sender.close()
    arrivals: dict[str, float] = {}
    for generator in generators:
        arrivals.update(await generator.arrivals())
    latencies = sorted((arrivals[t] - sent[t]) * 1000 for t in sent if t in arrivals)
    figures.undelivered = len(sent) - len(latencies)
    if figures.undelivered:
        print(f"  {target.name}: {figures.undelivered} messages not delivered", file=sys.stderr)
    figures.latency_p50_ms = statistics.median(latencies)
    figures.latency_p99_ms = latencies[int(len(latencies) * 0.99) - 1]
    figures.latency_max_ms = latencies[-1]
    figures.cpu_seconds_per_1000_messages = cpu_used / len(latencies) * 1000


def monotonic() -> float:
    """CLOCK_MONOTONIC is one clock for every process of the machine: the sender's send times and the generator
    processes' arrival times compare."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class Generator:
    """Some of the live sessions: logs them in, keeps one request held for each (as a client does) and notes when
    each message arrives (`monotonic()`)."""

    pid: int

    async def start(self, url: str, indexes: range, concurrency: int) -> None:
        """Returns once every session of `indexes` (resources live<i>) is logged in and polling."""
        raise NotImplementedError

    async def arrivals(self) -> dict[str, float]:
        """Stops polling; when each message token arrived."""
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


class LocalGenerator(Generator):
    """`--generators 1`: the sessions are polled in this process, beside the sender (the bench's first form)."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http, self.pid = http, os.getpid()
        self._arrivals: dict[str, float] = {}
        self._pollers: list[asyncio.Task[None]] = []

    async def start(self, url: str, indexes: range, concurrency: int) -> None:
        clients = await bounded(len(indexes), concurrency, lambda i: login(self.http, url, f"live{indexes[i]}"))
        self._pollers = [asyncio.create_task(poll(c, self._arrivals)) for c in clients]

    async def arrivals(self) -> dict[str, float]:
        await self.stop()
        return self._arrivals

    async def stop(self) -> None:
        await cancelled(self._pollers)


async def cancelled(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the tasks and wait until they are done (a poller's last request is not anybody's concern)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# The load generators share the machine's cores with the server they measure, and on two cores each fan-out's
# writes wake them mid-loop: a 2,000-player quiz's 2,000 responses took 40-50 ms of the server's CPU but 55-165 ms
# of wall time, the server waiting for the cores (docs/performance.md, issue 14, tenth pass). A niceness for the
# generator processes lets the server have the cores first, as if the clients were other machines; every server
# measured gets the same. 0, the default, measures them sharing the cores equally.
def add_generator_nice(parser: argparse.ArgumentParser) -> None:
    """`--generator-nice`, the same in every bench that has `--generators` child processes."""
    parser.add_argument("--generator-nice", type=int, default=0, choices=range(20), metavar="0-19",
                        help="niceness of the --generators child processes (0-19; default 0): 19 gives the measured "
                             "server the cores first, as if the clients were other machines")


class ChildProcess:
    """A load generator in a process of its own (`python -m MODULE FLAG`), told what to do on its stdin and answering
    on its stdout, one JSON line each: its share of the sessions then uses a core of its own. The first line gives
    it its share (`child_task`); it answers with how many sessions it has logged in."""

    def __init__(self, module: str, flag: str, niceness: int = 0) -> None:
        self._module, self._flag, self._niceness = module, flag, niceness
        self._process: asyncio.subprocess.Process | None = None
        self.pid = 0

    async def start(self, url: str, indexes: range, concurrency: int) -> None:
        # limit: the arrivals come back as one line (tens of bytes per message).
        # `nice`: --generator-nice (add_generator_nice).
        nice = ("nice", "-n", str(self._niceness)) if self._niceness else ()
        self._process = await asyncio.create_subprocess_exec(
            *nice, sys.executable, "-m", self._module, self._flag, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=2**28)
        self.pid = self._process.pid
        await self._say({"url": url, "first": indexes.start, "stop": indexes.stop, "step": indexes.step,
                         "concurrency": concurrency})
        ready = await self._hear()
        if ready.get("sessions") != len(indexes):
            raise RuntimeError(f"load generator {self.pid}: {ready}")

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            assert self._process.stdin is not None
            self._process.stdin.close()  # end of input: the child ends, whatever it was doing
            try:
                await asyncio.wait_for(self._process.wait(), 30)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()

    async def _say(self, message: dict[str, object]) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(json.dumps(message).encode() + b"\n")
        await self._process.stdin.drain()

    async def _hear(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = await self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator {self.pid} ended (exit status {await self._process.wait()})")
        heard: dict[str, Any] = json.loads(line)
        return heard


async def child_task() -> tuple[asyncio.StreamReader, dict[str, Any], range]:
    """The child side of ChildProcess: its stdin as a stream, the first line's task, and its share of the indexes."""
    stdin = asyncio.StreamReader(limit=2**20)
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    task: dict[str, Any] = json.loads(await stdin.readline())
    return stdin, task, range(task["first"], task["stop"], task["step"])


class ProcessGenerator(ChildProcess, Generator):
    """`--generators N`: some of the live sessions in a process of their own."""

    def __init__(self, niceness: int = 0) -> None:
        super().__init__("tests.perf.bench_bosh", "--generator", niceness)

    async def arrivals(self) -> dict[str, float]:
        await self._say({"stop": True})
        found: dict[str, float] = (await self._hear())["arrivals"]
        return found


async def generator_main() -> None:
    """The child side of ProcessGenerator: log in, poll, and on the word hand back the arrivals."""
    stdin, task, indexes = await child_task()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        generator = LocalGenerator(http)
        await generator.start(task["url"], indexes, task["concurrency"])
        answer(sessions=len(indexes))
        if await stdin.readline():  # "stop" (or, the parent gone, end of input: then nobody listens)
            answer(arrivals=await generator.arrivals())
        await generator.stop()


def answer(**message: object) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


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
        now = monotonic()
        for body in response.iter("{jabber:client}body"):
            arrivals[body.text or ""] = now
        if response.get("type") == "terminate":
            return


def print_table(results: dict[str, dict[str, float]], higher_is_better: frozenset[str] = frozenset(), *,
                width: int = 42) -> None:
    """One column per server measured; with boshcm and a reference, the ratio to the better reference."""
    names = list(results)
    if not names:
        return
    references = [name for name in names if name != "boshcm"]
    compare = "boshcm" in results and bool(references)
    print(f"{'':{width}}" + "".join(f"{name:>12}" for name in names) + (f"{'vs best':>10}" if compare else ""))
    for label in results[names[0]]:
        values = [results[name][label] for name in names]
        line = f"{label:{width}}" + "".join(f"{value:12.2f}" for value in values)
        if compare:
            pick = max if label in higher_is_better else min
            best = pick(results[name][label] for name in references)
            line += f"{(results['boshcm'][label] / best if best else float('nan')):10.2f}"
        print(line)
    print(f"machine yardstick now (µs; 4.6 at the usual speed, tests/perf/yardstick.py): "
          f"{yardstick_microseconds():.2f}")


def report(results: dict[str, Figures]) -> None:
    rows = [("logins per second", "logins_per_second"),
            ("server CPU per login (ms)", "cpu_ms_per_login"),
            ("RSS per 1,000 idle held sessions (MiB)", "rss_per_1000_idle_mib"),
            ("idle sessions holding a request", "idle_sessions_held"),
            ("push latency p50 (ms)", "latency_p50_ms"),
            ("push latency p99 (ms)", "latency_p99_ms"),
            ("push latency on the wire p50 (ms)", "wire_latency_p50_ms"),
            ("push latency on the wire p99 (ms)", "wire_latency_p99_ms"),
            ("push latency on the wire max (ms)", "wire_latency_max_ms"),
            ("CPU seconds per 1,000 messages", "cpu_seconds_per_1000_messages"),
            ("push latency max (ms)", "latency_max_ms"),
            ("messages not delivered", "undelivered"),
            ("sender process CPU (% of a core)", "sender_cpu_percent")]
    table = {name: {label: float(getattr(figures, attribute)) for label, attribute in rows}
             for name, figures in results.items()}
    for name, figures in results.items():
        # Every load generator's CPU during the latency phase: none near 100 %, or the latencies are the generators'.
        generator_cpu = figures.generator_cpu_percent
        table[name]["load generator processes"] = len(generator_cpu)
        table[name]["load generator CPU, busiest (% of a core)"] = max(generator_cpu, default=float("nan"))
        for index, percent in enumerate(generator_cpu):
            table[name][f"load generator {index + 1} CPU (% of a core)"] = percent
    print_table(table, higher_is_better=frozenset({"logins per second", "idle sessions holding a request"}))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1000, help="live sessions for the latency phase")
    parser.add_argument("--idle-sessions", type=int, default=1000, help="idle sessions for the memory phase")
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--generators", type=int, default=1,
                        help="load generator processes for the latency phase (1: this process)")
    add_generator_nice(parser)
    parser.add_argument("--only", choices=["boshcm", "prosody", "ejabberd"])
    parser.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)  # a ProcessGenerator's child
    args = parser.parse_args()
    if args.generator:
        await generator_main()
        return
    if args.generator_nice:
        print(f"load generator processes at niceness {args.generator_nice}")
    if not 1 <= args.generators <= args.sessions:
        parser.error("--generators must be between 1 and --sessions")
    results = await measure_both(args, measure)
    report(results)


if __name__ == "__main__":
    etree.set_default_parser(etree.XMLParser(resolve_entities=False, no_network=True))
    asyncio.run(main())
