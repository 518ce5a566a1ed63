"""Where a MUC post and a MUC join spend their time, without sockets: the server's own router, conference service
and hub (boshcm/app.py `Server`, real account store), with one BOSH session machine per occupant as the hub's sink.

    .venv/bin/python -m tests.perf.profile_fanout [--occupants 500] [--posts 20] [--profile post|join]
                                                  [--broadcast moderator] [--sort tottime]

Prints the CPU time of one groupchat message reflected to every occupant (room, router, hub, each occupant's
BOSH machine wrapping its copy into a response) and of one join into a room of that size; `--profile` prints a
cProfile of the chosen phase. This is the unit-level counterpart of bench_muc (which adds HTTP and the clients).
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import tempfile
import time
from pathlib import Path

from lxml import etree

from boshcm.app import Server, open_accounts
from boshcm.bosh.body import RequestBody, parse_request
from boshcm.bosh.session import BoshLimits, BoshSession, RequestArrived, Respond, ServerStanzas, UpstreamOpened
from boshcm.config import load_config
from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import Element, is_shared
from boshcm.xml.writer import serialize, serialize_to

ROOM = "bench@conference.localhost"
HTTPBIND = "http://jabber.org/protocol/httpbind"


def request_body(attrs: dict[str, str]) -> RequestBody:
    rendered = " ".join(f"{k}='{v}'" for k, v in attrs.items())
    return parse_request(etree.fromstring(f"<body xmlns='{HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' {rendered}/>"))


class BoshSink:
    """The hub's sink for one occupant: its BOSH session machine, one request always held (as a live client)."""

    _ids = itertools.count(1)

    def __init__(self, jid: JID) -> None:
        self.jid = jid
        self.rid = 1000
        first = RequestArrived(request_id=next(self._ids), body=request_body(
            {"rid": str(self.rid), "to": "localhost", "wait": "60", "hold": "1", "ver": "1.11"}), origin=None)
        self.session = BoshSession(sid="s", first=first, now=0.0, limits=BoshLimits(), serialize=serialize)
        self.session.start(0.0)
        self.session.handle(UpstreamOpened(stream_id="x", domain="localhost"), 0.0)
        self.responses = 0
        self.rearm()

    def rearm(self) -> None:
        self.rid += 1
        body = request_body({"rid": str(self.rid), "sid": "s"})
        self.session.handle(RequestArrived(request_id=next(self._ids), body=body, origin=None), 0.0)

    def deliver(self, stanza: Element) -> None:
        # What OnboardLink.write_element hands on: a shared stanza already written for this session's JID.
        written = serialize_to(stanza, self.jid) if is_shared(stanza) else stanza
        for action in self.session.handle(ServerStanzas(stanzas=(written,)), 0.0):
            if isinstance(action, Respond):
                self.responses += 1

    def disconnect(self, condition: StreamErrorCondition) -> None:
        pass


def occupant_jid(index: int) -> str:
    """Each occupant its own account, as in bench_muc: not the room owner, so a moderator-only broadcast skips it."""
    return f"o{index}@localhost/bench"


def broadcast_field(roles: str | None) -> str:
    """The muc#roomconfig_presencebroadcast field (XEP-0045 §10.2) for a comma-separated list of roles, or nothing."""
    if roles is None:
        return ""
    values = "".join(f"<value>{role}</value>" for role in roles.split(","))
    return f"<field var='muc#roomconfig_presencebroadcast'>{values}</field>"


class Bench:
    def __init__(self, directory: Path, occupants: int, broadcast: str | None = None) -> None:
        config = load_config(None, {"server.data_dir": str(directory)})
        accounts = open_accounts(config)
        accounts.add("bench", "bench-secret")
        for index in range(occupants):   # without their accounts, every copy would be bounced as for a stranger
            accounts.add(JID.parse(occupant_jid(index)).local or "", "bench-secret")
        accounts.close()
        self.server = Server(config)
        self.router, self.hub = self.server.router, self.server.hub
        self.sinks: dict[JID, BoshSink] = {}
        self.owner = self.bind("bench@localhost/owner")
        self.send(self.owner, f"<presence to='{ROOM}/Quizmaster'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        self.send(self.owner, f"<iq to='{ROOM}' type='set' id='cfg'><query xmlns='http://jabber.org/protocol/muc#owner'>"
                              f"<x xmlns='jabber:x:data' type='submit'>{broadcast_field(broadcast)}</x></query></iq>")

    def bind(self, full_jid: str) -> JID:
        jid = JID.parse(full_jid)
        self.hub.perform(self.router.bind(jid, 0.0))
        sink = self.sinks[jid] = BoshSink(jid)
        self.hub.register(jid, sink)
        return jid

    def send(self, sender: JID, text: str) -> None:
        stanza = etree.fromstring(f"<x xmlns='jabber:client'>{text}</x>")[0]
        self.hub.perform(self.router.handle_stanza(sender, stanza, 0.0))

    def rearm_all(self) -> None:
        for sink in self.sinks.values():
            while not self.server_holds(sink):
                sink.rearm()

    @staticmethod
    def server_holds(sink: BoshSink) -> bool:
        return bool(sink.session._held)

    def join(self, index: int) -> None:
        self.send(JID.parse(occupant_jid(index)),
                  f"<presence to='{ROOM}/player{index}'><x xmlns='http://jabber.org/protocol/muc'>"
                  "<history maxstanzas='0'/></x></presence>")

    def post(self, index: int) -> None:
        self.send(self.owner, f"<message to='{ROOM}' type='groupchat' id='q{index}'><body>question-{index}</body>"
                              "</message>")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--occupants", type=int, default=500)
    parser.add_argument("--posts", type=int, default=20)
    parser.add_argument("--profile", choices=["post", "join"])
    parser.add_argument("--sort", default="cumulative", help="pstats order of the profile: cumulative, tottime, ...")
    parser.add_argument("--broadcast", help="roles whose presence the room broadcasts, e.g. moderator")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        bench = Bench(Path(directory), args.occupants, args.broadcast)
        for index in range(args.occupants - 1):
            bench.bind(occupant_jid(index))
            bench.join(index)
            bench.rearm_all()
        last = args.occupants - 1
        bench.bind(occupant_jid(last))
        bench.rearm_all()
        profiler = cProfile.Profile()
        started = time.process_time()
        if args.profile == "join":
            profiler.enable()
        bench.join(last)
        profiler.disable()
        join_ms = (time.process_time() - started) * 1000
        bench.rearm_all()
        post_cpu = 0.0
        for index in range(args.posts):
            started = time.process_time()
            if args.profile == "post":
                profiler.enable()
            bench.post(index)
            profiler.disable()
            post_cpu += time.process_time() - started
            bench.rearm_all()
        print(f"one join into a room of {args.occupants - 1}: {join_ms:.1f} ms CPU")
        print(f"one groupchat message to {args.occupants}: {post_cpu / args.posts * 1000:.1f} ms CPU "
              f"(mean of {args.posts})")
        if args.profile:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(35)


if __name__ == "__main__":
    main()
