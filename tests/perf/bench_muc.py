"""MUC benchmark: one groupchat message to a room of N occupants connected over BOSH, boshcm vs Prosody and ejabberd.

    .venv/bin/python -m tests.perf.bench_muc [--occupants 1000] [--messages 50] [--broadcast moderator]
                                             [--generators 2] [--generator-nice 0]
                                             [--only boshcm|prosody|ejabberd]

For each message, the spread between the first and the last occupant receiving it; prints p50/p99 of the
spreads and of the full latency (send to last arrival), for the three servers measured in the same run; the
time for all occupants to join; and the server process's CPU time (user + system, from /proc) per join and per
message, which a machine shared with other work disturbs far less than the wall-clock figures; during the joins,
how busy this process (the load generator) and the server were, as a share of one core, to tell whose speed the
joins' time is. `--generators N` plays the occupants in N processes of their own (one clock, CLOCK_MONOTONIC, for
all), so that one Python process is no longer what the joins wait for. For boshcm also
the event-loop lag and GC pauses, from its /metrics. Run as root, the spreads and latencies also "on the wire": by
the kernel's receive timestamps on the loopback interface (`tests/perf/wire_clock.py`), without the load
generator's own queue.
Each occupant is an account of its own (o0 ... o<N-1>, given to every server before it starts), as players are;
the room's owner is `bench`, over TCP.
`--broadcast moderator` configures the room's muc#roomconfig_presencebroadcast (XEP-0045 §10.2) first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from urllib.parse import urlsplit

import aiohttp
from slixmpp import JID

from tests.integration.bosh_client import BoshClient
from tests.integration.xmpp_client import XmppClient
from tests.perf.bench_bosh import (
    BENCH_ACCOUNTS,
    ChildProcess,
    Target,
    add_generator_nice,
    answer,
    bounded,
    cancelled,
    child_task,
    cpu_seconds,
    measure_both,
    monotonic,
    print_table,
    runtime_figures,
    settled,
)
from tests.perf.wire_clock import WireClock

ROOM = JID("bench@conference.localhost")
OCCUPANT_PASSWORD = "occupant-secret"


def occupant_accounts(occupants: int) -> dict[str, str]:
    """The room owner (`bench`) and one account per occupant, as players have: occupants of the owner's own account
    would all be owners, hence moderators, and a moderator-only presence broadcast would still reach everyone."""
    return {**BENCH_ACCOUNTS, **{f"o{index}": OCCUPANT_PASSWORD for index in range(occupants)}}


async def login_occupant(http: aiohttp.ClientSession, url: str, index: int) -> BoshClient:
    client = BoshClient(http, url, wait=60)
    await client.login(f"o{index}", OCCUPANT_PASSWORD, resource="bench")
    return client


async def join(client: BoshClient, nick: str) -> None:
    await client.send(f"<presence xmlns='jabber:client' to='{ROOM}/{nick}'>"
                      "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>")


async def poll(client: BoshClient, arrivals: dict[str, list[float]], index: int) -> None:
    while True:
        try:
            response = await client.post(client.body())
        except aiohttp.ClientError:
            return   # the server went away (a failed run): its figures are reported as failed, not these tracebacks
        now = monotonic()
        for body in response.iter("{jabber:client}body"):
            arrivals.setdefault(body.text or "", []).append(now)
        if response.find(".//{http://jabber.org/protocol/muc#user}status[@code='110']") is not None:
            arrivals.setdefault(f"joined-{index}", []).append(now)   # its own presence: joined
        if response.get("type") == "terminate":
            return


class OccupantGroup:
    """Some of the occupants, in this process: logged in and polling, they join on the word and note when each
    message arrives (`monotonic()`, one clock for every process)."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http, self.pid = http, os.getpid()
        self.arrivals: dict[str, list[float]] = {}
        self._clients: list[tuple[int, BoshClient]] = []
        self._pollers: list[asyncio.Task[None]] = []

    async def start(self, url: str, indexes: range, concurrency: int) -> None:
        clients = await bounded(len(indexes), concurrency, lambda i: login_occupant(self.http, url, indexes[i]))
        self._clients = list(zip(indexes, clients, strict=True))
        self._pollers = [asyncio.create_task(poll(c, self.arrivals, i)) for i, c in self._clients]

    async def join(self, timeout_seconds: float) -> dict[int, float]:
        """Every occupant of the group sends its join at once; when each saw its own presence (those that did)."""
        started = monotonic()
        joined = {index: self.arrivals.setdefault(f"joined-{index}", []) for index, _ in self._clients}
        await asyncio.gather(*(join(client, f"player{index}") for index, client in self._clients))
        while not all(joined.values()) and monotonic() - started < timeout_seconds:
            await asyncio.sleep(0.01)
        return {index: times[0] for index, times in joined.items() if times}

    async def collect(self) -> dict[str, list[float]]:
        """Stops polling; when each message token arrived, at each occupant."""
        await self.stop()
        return self.arrivals

    async def stop(self) -> None:
        await cancelled(self._pollers)


class ProcessOccupantGroup(ChildProcess):
    """The same in a process of its own (`python -m tests.perf.bench_muc --group`): with `--generators N` the
    occupants' polls use more than one core, so that the joins and arrivals measure the server, not one Python
    process playing every occupant."""

    def __init__(self, niceness: int = 0) -> None:
        super().__init__("tests.perf.bench_muc", "--group", niceness)

    async def join(self, timeout_seconds: float) -> dict[int, float]:
        await self._say({"join": timeout_seconds})
        return {int(index): when for index, when in (await self._hear())["joined"].items()}

    async def collect(self) -> dict[str, list[float]]:
        await self._say({"stop": True})
        found: dict[str, list[float]] = (await self._hear())["arrivals"]
        return found


async def group_main() -> None:
    """The child side of ProcessOccupantGroup."""
    stdin, task, indexes = await child_task()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as http:
        group = OccupantGroup(http)
        await group.start(task["url"], indexes, task["concurrency"])
        answer(sessions=len(indexes))
        while line := await stdin.readline():   # end of input: the parent is gone
            order = json.loads(line)
            if "join" in order:
                answer(joined=await group.join(order["join"]))
            else:
                answer(arrivals=await group.collect())
                break
        await group.stop()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)]


async def measure(target: Target, args: argparse.Namespace) -> dict[str, float]:
    owner = XmppClient("bench@localhost/owner", "bench-secret", port=target.c2s_port, ca_cert=target.cert_path,
                       plugins=("xep_0045", "xep_0004"))
    await owner.connect()
    muc = owner.xmpp.plugin["xep_0045"]
    await muc.join_muc_wait(ROOM, "Quizmaster", maxstanzas=0, timeout=30)
    form = owner.xmpp.plugin["xep_0004"].make_form(ftype="submit")  # type: ignore[no-untyped-call]
    # Prosody refuses a form with fields but without its FORM_TYPE (XEP-0068).
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/muc#roomconfig")
    if args.broadcast:
        form.add_field(var="muc#roomconfig_presencebroadcast", ftype="list-multi", value=args.broadcast.split(","))
    await muc.set_room_config(ROOM, form)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as http:
        groups: list[OccupantGroup | ProcessOccupantGroup] = [OccupantGroup(http)] if args.generators == 1 else \
            [ProcessOccupantGroup(args.generator_nice) for _ in range(args.generators)]
        shares = [range(k, args.occupants, args.generators) for k in range(args.generators)]
        concurrency = -(-50 // args.generators)   # 50 logins in flight in all, as with one process
        try:
            await asyncio.gather(*(g.start(target.url, share, concurrency)
                                   for g, share in zip(groups, shares, strict=True)))
            figures = await occupants_phase(target, args, owner, groups)
            runtime = await runtime_figures(http, target)
        finally:
            for group in groups:
                await group.stop()
    await owner.close()
    return {**figures, **runtime}


async def occupants_phase(target: Target, args: argparse.Namespace, owner: XmppClient,
                          groups: list[OccupantGroup | ProcessOccupantGroup]) -> dict[str, float]:
    """The joins, all at once, then --messages posts, with every group's occupants polling."""
    await asyncio.sleep(1)
    generator_pids = sorted({group.pid for group in groups})
    cpu_before_joins = cpu_seconds(target.pid)
    generators_before_joins = sum(cpu_seconds(pid) for pid in generator_pids)
    started = monotonic()
    joined: dict[int, float] = {}
    for found in await asyncio.gather(*(group.join(args.join_timeout) for group in groups)):
        joined.update(found)
    join_seconds = (max(joined.values()) if len(joined) == args.occupants else monotonic()) - started
    # Which side the joins wait for: the load generator (the occupants' processes) busy the whole time, or the
    # server. A share above 100 % is more than one core.
    generator_share = (sum(cpu_seconds(pid) for pid in generator_pids) - generators_before_joins) \
        / (monotonic() - started) * 100
    server_share = (cpu_seconds(target.pid) - cpu_before_joins) / (monotonic() - started) * 100
    await settled(target.pid)   # the presences still on their way are part of the joins' cost
    join_cpu = cpu_seconds(target.pid) - cpu_before_joins
    print(f"  {target.name}: {len(joined)} of {args.occupants} joined in {join_seconds:.2f} s, {join_cpu:.2f} s CPU",
          file=sys.stderr)
    sent: dict[str, float] = {}
    sent_wall: dict[str, float] = {}  # on the kernel's clock, for the arrivals on the wire
    # Run as root: each message's arrival at each occupant's connection by the kernel's receive timestamp, the
    # figure without the load generator's own queue (Python processes reading every occupant).
    wire = WireClock(server_ports=(urlsplit(target.url).port or 80,), pattern=rb"<body>(question-\d+)</body>") \
        if WireClock.available() else None
    if wire is not None:
        wire.start()
    cpu_before_posts = cpu_seconds(target.pid)
    for index in range(args.messages):
        token = f"question-{index}"
        sent[token], sent_wall[token] = monotonic(), time.time()
        owner.xmpp.send_message(mto=ROOM, mbody=token, mtype="groupchat")
        await asyncio.sleep(args.interval)
    await asyncio.sleep(3)
    post_cpu = cpu_seconds(target.pid) - cpu_before_posts
    on_wire = wire.stop() if wire is not None else {}
    arrivals: dict[str, list[float]] = {}
    for group in groups:
        for token, times in (await group.collect()).items():
            arrivals.setdefault(token, []).extend(times)
    wire_spreads = [(max(t.values()) - min(t.values())) * 1000 for t in on_wire.values()]
    wire_lasts = [(max(on_wire[t].values()) - sent_wall[t]) * 1000 for t in sent_wall if t in on_wire]
    spreads = [(max(times) - min(times)) * 1000 for token, times in arrivals.items() if token in sent]
    lasts = [(max(arrivals[t]) - sent[t]) * 1000 for t in sent if t in arrivals]
    complete = sum(1 for t in sent if len(arrivals.get(t, ())) == args.occupants)
    return {"joins, all (s)": join_seconds, "CPU per join (ms)": join_cpu / args.occupants * 1000,
            "during the joins: load generator CPU (% of a core)": generator_share,
            "during the joins: server CPU (% of a core)": server_share,
            "CPU per message (ms)": post_cpu / args.messages * 1000,
            "messages reaching every occupant": complete, "spread p50 (ms)": statistics.median(spreads),
            "spread p99 (ms)": percentile(spreads, 0.99), "send to last arrival p50 (ms)": statistics.median(lasts),
            "send to last arrival p99 (ms)": percentile(lasts, 0.99),
            "on the wire: messages to every occupant": sum(1 for t in on_wire.values() if len(t) == args.occupants),
            "on the wire: spread p50 (ms)": statistics.median(wire_spreads) if wire_spreads else float("nan"),
            "on the wire: spread p99 (ms)": percentile(wire_spreads, 0.99) if wire_spreads else float("nan"),
            "on the wire: send to last arrival p50 (ms)": statistics.median(wire_lasts) if wire_lasts else float("nan"),
            "on the wire: send to last arrival p99 (ms)": percentile(wire_lasts, 0.99) if wire_lasts else float("nan")}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--occupants", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between messages")
    parser.add_argument("--join-timeout", type=float, default=300.0, help="seconds to wait for every join")
    parser.add_argument("--only", choices=["boshcm", "prosody", "ejabberd"])
    parser.add_argument("--broadcast", help="roles whose presence the room broadcasts, e.g. moderator")
    parser.add_argument("--generators", type=int, default=1,
                        help="processes playing the occupants (1: this one, beside the owner)")
    add_generator_nice(parser)
    parser.add_argument("--group", action="store_true", help=argparse.SUPPRESS)  # a ProcessOccupantGroup's child
    args = parser.parse_args()
    if args.group:
        await group_main()
        return
    if args.generator_nice:
        print(f"occupant processes at niceness {args.generator_nice}")
    results = await measure_both(args, measure, occupant_accounts(args.occupants))
    print_table(results, higher_is_better=frozenset({"messages reaching every occupant"}))


if __name__ == "__main__":
    asyncio.run(main())
