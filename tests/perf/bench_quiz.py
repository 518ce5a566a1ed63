"""Quiz benchmark: a live game with N players over BOSH or WebSocket, on boshcm, Prosody and ejabberd, the same bot.

    .venv/bin/python -m tests.perf.bench_quiz [--players 200] [--questions 10] [--question-seconds 10]
                                              [--transport bosh|websocket] [--wave 250]
                                              [--only boshcm|prosody|ejabberd] [--bot-log FILE] [--generators 1]
                                              [--generator-nice 0]
    # issue 14's live quiz, each transport, the players in two processes:
    .venv/bin/python -m tests.perf.bench_quiz --players 2000 --questions 5 --transport bosh --generators 2
    .venv/bin/python -m tests.perf.bench_quiz --players 2000 --questions 5 --transport websocket --generators 2
    # the same with the player processes leaving the server the cores first (bench_bosh's add_generator_nice):
    .venv/bin/python -m tests.perf.bench_quiz --players 2000 --questions 5 --transport bosh --generators 2 \
        --generator-nice 10

The three servers run one after the other, each started fresh as its own process (boshcm: `boshcm serve`;
Prosody: tests/interop/prosody.py, with mod_websocket; ejabberd: Debian's 23.01 through bench_bosh's
EjabberdTarget, mod_bosh and ejabberd_http_ws). The bot is the same process against each: `quizbot run`, a TCP c2s
client (STARTTLS), which joins bench@conference.localhost, creates it if it is not there (the owner's form:
room name, persistent, public; every server accepts it) and runs the game; its CPU time is read from /proc.
Every player is its own account, p0 ... p<N-1>: boshcm's are written to its account store before it starts;
Prosody's registered with `prosodyctl register` (8 at once); ejabberd's by XEP-0077 in-band registration over
plain c2s, 50 streams at once (tests/ejabberd.py's `register_in_band`; the bench's ejabberd allows registration
from anyone with `registration_timeout: infinity`, and its c2s listener's accept queue is raised to 1,024): a few
milliseconds of ejabberd's CPU per account, where `ejabberdctl register` starts an Erlang VM per account (~1 s).
Players log in over BOSH or WebSocket (RFC 7395; SASL PLAIN; in waves of `--wave`, 25 at a time), send initial
presence, join the room, and answer every question privately to the bot (with the <answer/> payload) after a
random 0.2-3 s; a starter account opens the game (`!quiz live N`, `!start`).

Rows (one column per server; "vs best": boshcm divided by the better of the other two; for the counts the
higher is better, for the rest the lower):
- players, questions revealed: what was asked and how many of the questions' reveals the starter saw.
- players receiving each question (min); players who got every question: as the load generator read them.
- question spread p50 / p99 (ms): per question, the first to the last player's arrival, as the load generator saw
  it (its own queue included); p99 by nearest rank (with 5 questions, the worst).
- players polling only after the question (max, BOSH): per question, the players whose request that brought it was
  posted after the question's first arrival at any player: they held no request when the server fanned it out, so
  their arrival waited for the load generator, whatever the server did; the worst question.
- players reached per question by the wire (min); question spread on the wire p50 / p99 (ms): run as root, the
  same by the kernel's receive timestamps on the loopback interface (tests/perf/wire_clock.py), without the load
  generator's queue. NaN / 0 when not root.
- 99 % of players on the wire within, p50 / worst question (ms): per question, how long after the first player 99 %
  of the players had it on the wire (the nearest-rank 99th percentile of the arrival offsets): the spread without
  its last 1 %, e.g. players whose poll was still on its way to a busy server.
- answers sent; answers acknowledged (<received/>); answers scored (reveal's scorers); answers with a <result/>;
  answers scored (% of sent): every answer must be acknowledged, scored and get its private result.
- game seconds: from `!quiz live` to the last reveal.
- server CPU (s, % of one core); bot CPU (s, per question): user + system CPU over the game; and of each while the
  players log in and join, until the server is idle (the room's presences: loud joins, the room going quiet).
- load generator processes, their niceness (`--generator-nice`); load generator CPU, busiest (% of one core): over
  the game, this process and each `--generators` process (each plays an interleaved share of the players: p<i> in
  process i mod K; 1, the default, plays them all here). Near 100 % a generator's own queue makes its answers and
  polls late, and the figures are its own, not the server's: one process playing 2,000 BOSH players used 89 % of a
  core on a slow machine, and a fifth of the answers came too late to score.
- loop lag (boshcm only, from its /metrics): the bucket holding the largest event-loop lag over the whole run,
  and the p99 / max bucket during the game; GC pauses during the game.
On stderr: per question who scored and the spreads, the players whose poll was posted less than RECENT_SECONDS
before the question's first arrival on the wire (a poll the server may not yet have read when it fanned the
question out), error stanzas the players got, and streams that ended.

Known, ejabberd 23.01: a BOSH request whose rid is one beyond the next expected (n+2 before n+1, both within the
window) stalls the session; about 90 s later both are answered, the session terminated with `other-request`. The
players, like Strophe, post a pong or an answer and their next poll at the same moment on two connections, so on
a loaded machine a few ejabberd players may end that way (the "players whose stream ended" line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

import aiohttp
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families
from slixmpp import JID

from quizbot.payload import NS
from tests.integration.bosh_client import BoshClient
from tests.integration.xmpp_client import XmppClient
from tests.perf.bench_bosh import (
    BoshcmTarget,
    ChildProcess,
    EjabberdTarget,
    ProsodyTarget,
    Target,
    add_generator_nice,
    answer,
    child_task,
    print_table,
    runtime_figures,
    settled,
    wait_for_port,
)
from tests.perf.wire_clock import WireClock

ROOM = "bench@conference.localhost"
RECENT_SECONDS = 0.2  # stderr: the players whose poll was posted this little before a question's first arrival
ROOM_JID = JID(ROOM)
# Available, as the page and every chat client is: what the bot says to a player's bare JID (its <result/> and
# <standing/>) reaches available resources only (RFC 6121 §8.5.2.1).
INITIAL_PRESENCE = "<presence xmlns='jabber:client'/>"
QUESTION_MARKER = rb"<question [^>]*?id=['\"]([^'\"]+)"
BOT = "quiz@localhost"
TICKS = os.sysconf("SC_CLK_TCK")
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
OPEN = f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>"


def bank(count: int) -> dict[str, object]:
    return {"language": "en", "questions": [
        {"id": f"b{i}", "category": "bench", "kind": "text", "question": f"Bench question {i}: say word{i}",
         "answer": f"word{i}", "source": "https://example.org"} for i in range(count)]}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class Player:
    """One player: records when each question arrives and answers it privately to the bot after 0.2-3 s."""

    def __init__(self, nick: str, arrivals: dict[str, list[float]]) -> None:
        self.nick, self.arrivals = nick, arrivals
        self.received = 0
        self.results = 0  # <result/>s: the bot's private word on each answer it counted, after the reveal
        self.answers_sent = 0
        self.questions: set[str] = set()
        self.ended: str | None = None  # why its reading stopped before the end of the game
        self.errors: Counter[str] = Counter()  # error stanzas it got, by "<kind> <condition>"
        self.tasks: set[asyncio.Task[None]] = set()  # its answers and pongs on their way, cancelled at the end
        # BOSH: when the request that brought each question was posted. Posted after the question's first arrival
        # anywhere, it was not held when the server fanned the question out: this player's lateness is the
        # generator's, not the server's.
        self.question_posted: dict[str, float] = {}

    def spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def take(self, stanzas: Iterable[etree._Element], posted: float | None = None) -> None:
        now = time.perf_counter()
        for message in stanzas:
            if message.get("type") == "error":
                condition = next((etree.QName(c).localname for c in message.iterfind("{*}error/*")), "?")
                self.errors[f"{etree.QName(message).localname} {condition}"] += 1
            if message.tag == "{jabber:client}iq" and message.get("type") == "get" \
                    and message.find("{urn:xmpp:ping}ping") is not None:
                # The bot times each player's round trip through the room (XEP-0199), as clients answer.
                self.spawn(self.send(
                    f"<iq xmlns='jabber:client' type='result' id={quoteattr(message.get('id', ''))} "
                    f"to={quoteattr(message.get('from', ''))}/>"))
            if message.tag != "{jabber:client}message":
                continue
            question = message.find(f"{{{NS}}}question")
            if question is not None:
                self.arrivals.setdefault(question.get("id", ""), []).append(now)
                self.questions.add(question.get("id", ""))
                if posted is not None:
                    self.question_posted[question.get("id", "")] = posted
                self.spawn(self.answer(question.get("id", "")))
            if message.find(f"{{{NS}}}received") is not None:
                self.received += 1
            if message.find(f"{{{NS}}}result") is not None:
                self.results += 1

    async def answer(self, question_id: str) -> None:
        await asyncio.sleep(random.uniform(0.2, 3.0))
        answer = question_id.replace("b", "word")
        self.answers_sent += 1
        # As the page sends it: with XEP-0334's <no-permanent-store/>, so that no archive keeps it.
        await self.send(f"<message xmlns='jabber:client' to='{BOT}' type='chat'><body>{answer}</body>"
                        f"<answer xmlns='{NS}' question='{question_id}'/>"
                        "<no-permanent-store xmlns='urn:xmpp:hints'/></message>")

    def join(self) -> str:
        return (f"<presence xmlns='jabber:client' to='{ROOM}/{self.nick}'>"
                "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>")

    async def send(self, payload: str) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        raise NotImplementedError


class BoshPlayer(Player):
    """Like Strophe.js: one request held for the server, and what the player sends meanwhile in one more request at
    a time (an answer and a pong together) — never more than XEP-0124's 'requests'."""

    def __init__(self, client: BoshClient, nick: str, arrivals: dict[str, list[float]]) -> None:
        super().__init__(nick, arrivals)
        self.client = client
        self._outbox: list[str] = []
        self._sending = False

    async def send(self, payload: str) -> None:
        self._outbox.append(payload)
        if self._sending:
            return
        self._sending = True
        try:
            while self._outbox:
                batch, self._outbox = "".join(self._outbox), []
                posted = time.perf_counter()
                self.take(await self.client.send(batch), posted)
        finally:
            self._sending = False

    async def run(self) -> None:
        while True:
            posted = time.perf_counter()
            try:
                response = await self.client.post(self.client.body())
            except (aiohttp.ClientError, AssertionError) as error:  # AssertionError: an HTTP status other than 200
                self.ended = repr(error)
                return
            self.take(response, posted)
            if response.get("type") == "terminate":
                self.ended = f"terminate {response.get('condition')}"
                return


class WebSocketPlayer(Player):
    """RFC 7395: one stanza per text frame, <open/> and <close/> framing, SASL PLAIN then resource binding."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, nick: str, arrivals: dict[str, list[float]]) -> None:
        super().__init__(nick, arrivals)
        self.ws = ws

    @classmethod
    async def login(cls, http: aiohttp.ClientSession, url: str, user: str, password: str, nick: str,
                    arrivals: dict[str, list[float]]) -> WebSocketPlayer:
        ws = await http.ws_connect(url, protocols=("xmpp",), max_msg_size=0)
        player = cls(ws, nick, arrivals)
        await player._open()
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await ws.send_str(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        success = await player._frame()
        assert success.tag == f"{{{NS_SASL}}}success", etree.tostring(success)
        await player._open()
        await ws.send_str("<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:"
                          "xmpp-bind'><resource>web</resource></bind></iq>")
        bound = await player._frame()
        assert bound.findtext(".//{urn:ietf:params:xml:ns:xmpp-bind}jid"), etree.tostring(bound)
        await ws.send_str(INITIAL_PRESENCE)
        return player

    async def _open(self) -> None:
        await self.ws.send_str(OPEN)
        opened = await self._frame()
        assert opened.tag == f"{{{NS_FRAMING}}}open", etree.tostring(opened)
        features = await self._frame()
        assert features.tag == "{http://etherx.jabber.org/streams}features", etree.tostring(features)

    async def _frame(self) -> etree._Element:
        message = await self.ws.receive(timeout=60)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        return etree.fromstring(message.data.encode())

    async def send(self, payload: str) -> None:
        await self.ws.send_str(payload)

    async def run(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                self.ended = f"{message.type.name} {message.data!r}"
                return
            self.take([etree.fromstring(message.data.encode())])


class Players:
    """The players one process plays: logged in and joined in waves, each reading and answering; what they saw."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self._http, self._url = http, url
        self.arrivals: dict[str, list[float]] = {}
        self.players: list[Player] = []
        self._runners: list[asyncio.Task[None]] = []

    async def _login(self, index: int) -> Player:
        if self._url.startswith("ws"):
            return await WebSocketPlayer.login(self._http, self._url, f"p{index}", "player-secret", f"P{index}",
                                               self.arrivals)
        client = BoshClient(self._http, self._url, wait=60)
        await client.login(f"p{index}", "player-secret", resource="web")
        await client.send(INITIAL_PRESENCE)
        return BoshPlayer(client, f"P{index}", self.arrivals)

    async def join(self, indexes: range, wave: int, concurrency: int,
                   progress: Callable[[int], None] = lambda _joined: None) -> None:
        """In waves: each wave logs in (`concurrency` at a time), starts reading and joins before the next one logs
        in, so that the joins' presences never stall the next logins."""
        for first in range(0, len(indexes), wave):
            joined = await bounded_players(indexes[first:first + wave], concurrency, self._login)
            self._runners += [asyncio.create_task(player.run()) for player in joined]
            await asyncio.gather(*(player.send(player.join()) for player in joined))
            self.players += joined
            progress(len(self.players))

    async def finish(self) -> dict[str, Any]:
        """Stop reading and answering (what is still on its way, such as the bot's last pings, is not part of the
        game); what every player saw, as JSON."""
        leftovers = [*self._runners, *(task for player in self.players for task in player.tasks)]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        return {"arrivals": self.arrivals, "wall_offset": time.time() - time.perf_counter(), "players": [
            {"sent": p.answers_sent, "received": p.received, "results": p.results, "questions": len(p.questions),
             "posted": p.question_posted, "errors": dict(p.errors), "ended": p.ended} for p in self.players]}


class PlayerProcess(ChildProcess):
    """`--generators N`: some of the players in a process of their own (`python -m tests.perf.bench_quiz --group`),
    so that one Python process playing 2,000 players is not what the figures measure."""

    def __init__(self, niceness: int = 0) -> None:
        super().__init__("tests.perf.bench_quiz", "--group", niceness)

    async def join(self, wave: int) -> int:
        await self._say({"join": wave})
        joined: int = (await self._hear())["joined"]
        return joined

    async def finish(self) -> dict[str, Any]:
        await self._say({"stop": True})
        seen: dict[str, Any] = (await self._hear())["seen"]
        return seen


def player_http() -> aiohttp.ClientSession:
    # Idle pooled connections are dropped well before the server's 15 s keep-alive ([http] idle_timeout_seconds):
    # reusing one the server is closing at that moment gets a reset, and a reset poll would lose the player.
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=5)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600))


async def group_main() -> None:
    """The child side of PlayerProcess."""
    stdin, task, indexes = await child_task()
    async with player_http() as http:
        players = Players(http, task["url"])
        answer(sessions=len(indexes))
        while line := await stdin.readline():   # end of input: the parent is gone
            order = json.loads(line)
            if "join" in order:
                await players.join(indexes, order["join"], task["concurrency"])
                answer(joined=len(players.players))
            else:
                answer(seen=await players.finish())
                return
        await players.finish()


async def start_bot(target: Target, directory: Path, args: argparse.Namespace) -> asyncio.subprocess.Process:
    (directory / "bank.json").write_text(json.dumps(bank(args.questions)))
    (directory / "password").write_text("quiz-secret")
    (directory / "quizbot.toml").write_text(f"""
[xmpp]
jid = "{BOT}/bot"
password_file = "{directory / 'password'}"
server = "127.0.0.1:{target.c2s_port}"
ca_file = "{target.cert_path}"
[quizbot]
rooms = ["{ROOM}"]
questions = ["{directory / 'bank.json'}"]
store = "{directory / 'quiz.sqlite'}"
[quizbot.game]
question_seconds = {args.question_seconds}
reveal_seconds = 3.0
""")
    log = Path(args.bot_log).open("ab") if args.bot_log else None  # noqa: SIM115 - the child writes to it
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "quizbot", "run", "--config",
                                                 str(directory / "quizbot.toml"),
                                                 "--log-level", "info" if log else "warning", stderr=log)


async def measure(target: Target, args: argparse.Namespace, directory: Path) -> dict[str, float]:
    bot = await start_bot(target, directory, args)
    try:
        return await play(target, args, bot)
    finally:
        if bot.returncode is None:
            bot.terminate()
        await bot.wait()


async def play(target: Target, args: argparse.Namespace, bot: asyncio.subprocess.Process) -> dict[str, float]:
    """The game itself, with the bot running: players in, `!quiz live`, `!start`, until every question's reveal."""
    starter = XmppClient("starter@localhost/desk", "starter-secret", port=target.c2s_port, ca_cert=target.cert_path,
                         plugins=("xep_0045",))
    await starter.connect()
    muc = starter.xmpp.plugin["xep_0045"]
    for _attempt in range(100):  # the bot creates the room; join once it is there
        await asyncio.sleep(0.2)
        try:
            _presence, _subject, occupants, _history = await muc.join_muc_wait(ROOM_JID, "Starter", maxstanzas=0,
                                                                              timeout=5)
        except Exception:  # not there yet (or still locked)
            continue
        if any(str(o["from"]).endswith("/Quizbot") for o in occupants):
            break
        muc.leave_muc(ROOM_JID, "Starter")
    url = ws_url(target) if args.transport == "websocket" else target.url
    login_started = time.perf_counter()

    def progress(joined: int) -> None:
        print(f"  {target.name}: {joined} players in ({time.perf_counter() - login_started:.0f} s)", file=sys.stderr)

    async with player_http() as http:
        # One process plays every player, or `--generators` processes each an interleaved share (25 logins in flight
        # in all, waves of --wave in all).
        local = Players(http, url) if args.generators == 1 else None
        groups = [PlayerProcess(args.generator_nice) for _ in range(args.generators)] if local is None else []
        joins_cpu_before = cpu_seconds(target.pid), cpu_seconds(bot.pid)
        if local is not None:
            await local.join(range(args.players), args.wave, 25, progress)
        else:
            shares = [range(k, args.players, args.generators) for k in range(args.generators)]
            await asyncio.gather(*(group.start(url, share, -(-25 // args.generators))
                                   for group, share in zip(groups, shares, strict=True)))
            joined = await asyncio.gather(*(group.join(-(-args.wave // args.generators)) for group in groups))
            progress(sum(joined))
        await settled(target.pid, limit_seconds=300)
        print(f"  {target.name}: joined and settled after {time.perf_counter() - login_started:.0f} s",
              file=sys.stderr)
        joins_cpu = cpu_seconds(target.pid) - joins_cpu_before[0], cpu_seconds(bot.pid) - joins_cpu_before[1]
        reveals: list[etree._Element] = []

        def on_message(message: object) -> None:
            element = etree.fromstring(str(message).encode())
            found = element.find(f"{{{NS}}}reveal")
            if found is not None:
                reveals.append(found)

        starter.xmpp.add_event_handler("groupchat_message", on_message)
        # The kernel's arrival times of each question at each player's connection (root only): the spread the
        # server made, without the load generator's own queue.
        wire = WireClock(server_ports=(urlsplit(url).port or 80,), pattern=QUESTION_MARKER) \
            if WireClock.available() else None
        if wire is not None:
            wire.start()
        lag_before = await runtime_figures(http, target)
        buckets_before = await lag_buckets(http, target)
        bot_before, server_before = cpu_seconds(bot.pid), cpu_seconds(target.pid)
        generator_pids = [os.getpid(), *(group.pid for group in groups)]
        generators_before = [cpu_seconds(pid) for pid in generator_pids]
        started = time.perf_counter()
        starter.xmpp.send_message(mto=ROOM_JID, mbody=f"!quiz live {args.questions}", mtype="groupchat")
        await asyncio.sleep(1)
        starter.xmpp.send_message(mto=ROOM_JID, mbody="!start", mtype="groupchat")
        deadline = time.perf_counter() + args.questions * (args.question_seconds + 10) + 30
        while len(reveals) < args.questions and time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - started
        on_wire = wire.stop() if wire is not None else {}
        bot_cpu, server_cpu = cpu_seconds(bot.pid) - bot_before, cpu_seconds(target.pid) - server_before
        generator_cpu = [cpu_seconds(pid) - before for pid, before in zip(generator_pids, generators_before,
                                                                           strict=True)]
        lag = await runtime_figures(http, target)
        game_lag = {le: count - buckets_before.get(le, 0) for le, count in (await lag_buckets(http, target)).items()}
        # The bot sends each player's <result/> after the reveal: the last question's need a moment more to arrive
        # (outside the figures above), or every server would seem to lose them.
        await asyncio.sleep(3)
        if local is not None:
            seen = [await local.finish()]
        else:
            seen = list(await asyncio.gather(*(group.finish() for group in groups)))
            await asyncio.gather(*(group.stop() for group in groups))
    arrivals: dict[str, list[float]] = {}
    for part in seen:
        for question, times in part["arrivals"].items():
            arrivals.setdefault(question, []).extend(times)
    players = [player for part in seen for player in part["players"]]
    # BOSH, on the wire: per question, the players whose request carrying it was posted less than RECENT_SECONDS
    # before its first arrival on the wire. Posted that late, it may still have been unread when the server fanned
    # the question out (the server busy with what came before), and the question reached them later.
    posted_wall = [{q: posted + part["wall_offset"] for q, posted in player["posted"].items()}
                   for part in seen for player in part["players"]]
    recent_polls = [sum(1 for posted in posted_wall if 0 <= min(t.values()) - posted.get(q, 0.0) < RECENT_SECONDS)
                    for q, t in on_wire.items()]
    spreads = [(max(t) - min(t)) * 1000 for t in arrivals.values()]
    # BOSH: per question, the players whose request carrying it was posted after its first arrival anywhere.
    late_polls = [sum(1 for p in players if p["posted"].get(q, 0.0) > min(t)) for q, t in arrivals.items()]
    wire_spreads = [(max(t.values()) - min(t.values())) * 1000 for t in on_wire.values()]
    # How long after the first player 99 % of the players had it: the spread without the last 1 %.
    wire_p99_offsets = [nearest_rank([(x - min(t.values())) * 1000 for x in t.values()], 0.99)
                        for t in on_wire.values()]
    # The reveal names the first few scorers and says how many scored in all (`scorers`).
    scored = sum(int(r.get("scorers", len(r.findall(f"{{{NS}}}scorer")))) for r in reveals)
    print(f"  {target.name}: {len(reveals)} questions in {elapsed:.1f} s, scored per question "
          f"{[r.get('scorers') for r in reveals]}, spreads (ms) {[round(x) for x in spreads]}, on the wire "
          f"{[round(x) for x in wire_spreads]}, players whose "
          f"poll came after the question (BOSH) {late_polls}, posted less than {RECENT_SECONDS * 1000:.0f} ms "
          f"before it on the wire {recent_polls}",
          file=sys.stderr)
    await starter.close()
    sent = sum(p["sent"] for p in players)
    ended = Counter(p["ended"] for p in players if p["ended"] is not None)
    errors = sum((Counter(p["errors"]) for p in players), Counter[str]())
    if errors:
        print(f"  {target.name}: error stanzas the players got: {dict(errors)}", file=sys.stderr)
    if ended:
        print(f"  {target.name}: players whose stream ended during the run: {dict(ended)}", file=sys.stderr)
    return {"players": args.players, "questions revealed": len(reveals),
            "players receiving each question (min)": min((len(t) for t in arrivals.values()), default=0),
            "players who got every question": sum(1 for p in players if p["questions"] >= len(arrivals)),
            "question spread p50 (ms)": statistics.median(spreads) if spreads else float("nan"),
            "question spread p99 (ms)": nearest_rank(spreads, 0.99),
            "players reached per question by the wire (min)": min((len(t) for t in on_wire.values()), default=0),
            "question spread on the wire p50 (ms)": statistics.median(wire_spreads) if wire_spreads else float("nan"),
            "question spread on the wire p99 (ms)": nearest_rank(wire_spreads, 0.99),
            "99 % of players on the wire within, p50 (ms)":
                statistics.median(wire_p99_offsets) if wire_p99_offsets else float("nan"),
            "99 % of players on the wire within, worst question (ms)": max(wire_p99_offsets, default=float("nan")),
            "players polling only after the question (max, BOSH)": max(late_polls, default=0),
            "answers sent": sent, "answers acknowledged (<received/>)": sum(p["received"] for p in players),
            "answers scored (reveal's scorers)": scored,
            "answers with a <result/>": sum(p["results"] for p in players),
            "answers scored (% of sent)": 100 * scored / max(1, sent),
            "game seconds": elapsed,
            "server CPU (s)": server_cpu, "server CPU (% of one core)": 100 * server_cpu / elapsed,
            "bot CPU (s)": bot_cpu, "bot CPU per question (ms)": 1000 * bot_cpu / max(1, len(reveals)),
            "load generator processes": args.generators,
            "load generator processes' niceness": args.generator_nice if args.generators > 1 else 0,
            "load generator CPU, busiest (% of one core)": 100 * max(generator_cpu) / elapsed,
            "server CPU while the players join (s)": joins_cpu[0], "bot CPU while the players join (s)": joins_cpu[1],
            "loop lag max bucket (ms), whole run": lag["loop lag max bucket (ms)"],
            "loop lag p99 bucket (ms), game": lag_quantile(game_lag, 0.99),
            "loop lag max bucket (ms), game": lag_quantile(game_lag, 1.0),
            "GC pauses during the game": lag["GC pauses"] - lag_before["GC pauses"]}


def nearest_rank(values: list[float], share: float) -> float:
    """The nearest-rank percentile: with 5 questions, p99 is the worst question."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else float("nan")


async def lag_buckets(http: aiohttp.ClientSession, target: Target) -> dict[float, float]:
    """boshcm's cumulative event-loop lag histogram (upper bound in s: count); Prosody has none."""
    if not isinstance(target, BoshcmTarget):
        return {}
    async with http.get(f"http://127.0.0.1:{target.metrics_port}/metrics") as response:
        text = await response.text()
    return {float(s.labels["le"]): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "boshcm_event_loop_lag_seconds_bucket"}


def lag_quantile(buckets: dict[float, float], share: float) -> float:
    """The upper bound (ms) of the bucket holding this share of the samples (inf: beyond the last bucket)."""
    total = max(buckets.values(), default=0.0)
    if not total:
        return float("nan")
    return 1000 * min(le for le, count in buckets.items() if count >= share * total)


def ws_url(target: Target) -> str:
    if isinstance(target, ProsodyTarget):
        return target.prosody.websocket_url
    if isinstance(target, EjabberdTarget):
        assert target.node is not None
        return target.node.websocket_url
    assert isinstance(target, BoshcmTarget)
    return f"ws://127.0.0.1:{target.port}/xmpp-websocket"


async def bounded_players(indexes: Iterable[int], concurrency: int,
                          make: Callable[[int], Awaitable[Player]]) -> list[Player]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(index: int) -> Player:
        async with semaphore:
            return await make(index)

    return list(await asyncio.gather(*(one(index) for index in indexes)))


def accounts(players: int) -> dict[str, str]:
    return {"quiz": "quiz-secret", "starter": "starter-secret", **{f"p{i}": "player-secret" for i in range(players)}}


def make_targets(directory: Path, players: int) -> dict[str, Target]:
    """boshcm, Prosody and ejabberd, each to be given every player's account as it starts (tests/perf/bench_bosh.py)."""
    every = accounts(players)
    return {"boshcm": BoshcmTarget(directory / "boshcm", every), "prosody": ProsodyTarget(directory / "prosody", every),
            "ejabberd": EjabberdTarget(every)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--players", type=int, default=200)
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--question-seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=["boshcm", "prosody", "ejabberd"])
    parser.add_argument("--transport", choices=["bosh", "websocket"], default="bosh")
    parser.add_argument("--wave", type=int, default=250, help="players logged in and joined per wave")
    parser.add_argument("--bot-log", help="append the bot's log (level info) to this file")
    parser.add_argument("--generators", type=int, default=1,
                        help="processes playing the players, each an interleaved share (1: this process)")
    add_generator_nice(parser)
    parser.add_argument("--group", action="store_true", help=argparse.SUPPRESS)  # a PlayerProcess's child
    args = parser.parse_args()
    if args.group:
        await group_main()
        return
    if not 1 <= args.generators <= args.players:
        parser.error("--generators must be between 1 and --players")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name, target in make_targets(directory, args.players).items():
            if args.only and name != args.only:
                continue
            started = time.perf_counter()
            await target.start()
            print(f"  {name}: started with {args.players + 2} accounts in {time.perf_counter() - started:.1f} s",
                  file=sys.stderr)
            try:
                await wait_for_port(target.c2s_port)
                bot_directory = directory / f"bot-{name}"
                bot_directory.mkdir()
                print(f"measuring {name} ...", file=sys.stderr)
                results[name] = await measure(target, args, bot_directory)
                print(f"  {results[name]}", file=sys.stderr)
            except Exception:  # one server failing must not lose the others' figures (as bench_bosh)
                print(f"  {name} failed:", file=sys.stderr)
                traceback.print_exc()
            finally:
                await target.stop()
    print_table(results, higher_is_better=HIGHER_IS_BETTER, width=48)


# The counts: more is better; every other row (spreads, CPU, lag) less is.
HIGHER_IS_BETTER = frozenset({
    "questions revealed", "players receiving each question (min)", "players who got every question",
    "players reached per question by the wire (min)", "answers acknowledged (<received/>)",
    "answers scored (reveal's scorers)", "answers with a <result/>", "answers scored (% of sent)"})


if __name__ == "__main__":
    asyncio.run(main())
