"""The quiz night on a cluster (issue 15, docs/scaling.md): nginx round robin in front of two `boshcm serve`
nodes, off-board, in front of a two-node ejabberd cluster; `quizbot run` plays against ejabberd.

Players are spread over both boshcm nodes and both ejabberd nodes: Ann and Ben are slixmpp clients on ejabberd A
and B directly; the boshcm nodes relay to ejabberd A (ejabberd 23.01 resuming a stream on the other cluster node
now and then replaced the resumed stream at once with a `conflict` and refused the next resumption, 1 run in 8
under load: docs/scaling.md); Eve and Fay are BOSH clients with XEP-0198 through nginx, Eve on boshcm node a and
Fay on b;
Gil is a WebSocket client with XEP-0198 through nginx (on whichever node his socket reached); Dan is the quiz
page in headless Chromium through nginx (Strophe.js over BOSH, XEP-0198 in quizbot/web/sm.js).
While question 1 is open the node that holds Dan's session is killed (SIGKILL); after its reveal that node is
started again, and while question 2 is open the other node is stopped (SIGTERM: a drain). Everyone keeps playing:
the page, the BOSH players and Gil reconnect through nginx to the node that is left and resume their streams at
ejabberd (`mod_stream_mgmt`); the answers wait until they have (`everyone_answers` says why). Nothing is lost:
the page, the BOSH players and Gil see every question and every reveal exactly once, the bot counts every answer
of every player, and the final scores each player saw are the points the bot recorded in its store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Response, expect
from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout

from quizbot.payload import NS
from tests.ejabberd import EjabberdCluster, EjabberdNode
from tests.integration.nodes import free_port, write_secret
from tests.integration.quiz_players import BANK, ROOM, Player, player, right_and_wrong
from tests.integration.xmpp_client import XmppClient
from tests.interop.browser import chromium
from tests.interop.cluster import NodeProcess, SmBoshPlayer, SmPlayer, SmWebSocketPlayer, nginx, quiz_page, stop_process

pytestmark = pytest.mark.interop

BOT = "quiz@localhost"
PLAYERS = ("ann", "ben", "dan", "eve", "fay", "gil")
ACCOUNTS = {name: f"{name}-secret" for name in ("quiz", *PLAYERS)}
QUESTIONS = 3
ANSWERS = {q["question"]: q["answer"] for q in BANK["questions"]}  # type: ignore[index]
# The page pings after 1 s of silence and gives up on an answer after 1.5 s (its defaults: 20 s and 10 s).
TIMING = "window.quizTiming = { pingSeconds: 1, timeoutSeconds: 1.5, retrySeconds: 0.3, maxRetrySeconds: 1 };"
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def ejabberd_pair() -> Iterator[tuple[tuple[EjabberdNode, ...], Future[None]]]:
    """The two-node ejabberd cluster and its start, which runs in a thread: the test starts the boshcm nodes, the
    page, nginx and Chromium meanwhile (the cluster's ports are known at once), and awaits it before anything
    speaks XMPP."""
    cluster = EjabberdCluster(ACCOUNTS)
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = pool.submit(cluster.start)
        try:
            yield cluster.nodes, started
        finally:
            concurrent.futures.wait([started])  # a start that failed failed the test, which awaited it
            cluster.stop()


def bot_config(tmp_path: Path, ca_file: Path) -> Path:
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(BANK))
    (tmp_path / "quiz.password").write_text("quiz-secret\n")
    config = tmp_path / "quizbot.toml"
    # Questions stay open long enough that a lost answer would show as a late reveal, never as a skipped one.
    config.write_text(f'[xmpp]\nca_file = "{ca_file}"\n\n[quizbot]\nquestions = ["{bank}"]\n'
                      f'store = "{tmp_path / "quiz.sqlite"}"\n\n[quizbot.game]\nquestion_seconds = 25.0\n'
                      f"reveal_seconds = 0.5\nget_ready_seconds = 0.0\n")
    return config


class PagePlayer:
    """Dan in Chromium: what reached the page over BOSH (its payloads from the bot, its session ids)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.payloads: list[etree._Element] = []
        self.sids: list[str] = []
        self.bodies: list[str] = []
        self.wire: list[str] = []   # every BOSH request and answer, written to page-wire.txt for a failure's story
        self.errors: list[str] = []
        page.on("response", self._response)
        page.on("request", self._request)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _request(self, request: Any) -> None:
        if request.url.endswith("/http-bind"):
            self.bodies.append(request.post_data or "")
            self.wire.append(f"{time.monotonic():.3f} > {request.post_data}")

    async def _response(self, response: Response) -> None:
        if not response.url.endswith("/http-bind"):
            return
        try:
            data = await response.body()
        except PlaywrightError as error:  # a response cut by a killed node has no body
            self.wire.append(f"{time.monotonic():.3f} < {response.status} {error!r}")
            return
        self.wire.append(f"{time.monotonic():.3f} < {response.status} {data.decode(errors='replace')}")
        if response.status != 200:
            return
        body = etree.fromstring(data)
        if body.get("sid") and body.get("sid") not in self.sids:
            self.sids.append(body.get("sid", ""))
        for message in body.iter("{jabber:client}message"):
            if message.get("from") == f"{ROOM}/Quizbot":
                self.payloads += [p for p in message if etree.QName(p).namespace == NS]

    async def next(self, name: str, **attrs: str) -> etree._Element:
        async with asyncio.timeout(WAIT_MS / 1000):
            while True:
                for payload in self.payloads:
                    if etree.QName(payload).localname == name and all(payload.get(k) == v for k, v in attrs.items()):
                        return payload
                await asyncio.sleep(0.05)

    def seen(self, name: str, key: str) -> Counter[str]:
        return Counter(p.get(key, "") for p in self.payloads if etree.QName(p).localname == name)

    async def log_in(self, url: str) -> None:
        page = self.page
        await page.add_init_script(TIMING)
        await page.goto(url)
        await page.wait_for_load_state("networkidle")  # app.js has its config and listens: the form is its own
        await page.get_by_label("Nickname").fill("Dan")
        await page.get_by_text("Log in with an account").click()
        await page.get_by_label("Address (name@server)").fill("dan@localhost")
        await page.get_by_label("Password").fill("dan-secret")
        await page.get_by_role("button", name="Log in", exact=True).click()
        await page.get_by_role("button", name="Join the public quiz room").click()
        await expect(page.locator("#connection")).to_have_text("Connected.", timeout=WAIT_MS)

    async def say(self, text: str) -> None:
        await self.page.locator("#chat-input").fill(text)
        await self.page.locator("#chat-input").press("Enter")

    async def answer_right(self) -> None:
        page = self.page
        text = await page.locator("#q-text").inner_text()
        choices = page.locator("#choices button")
        if await choices.count():
            await choices.filter(has_text=f") {ANSWERS[text]}").click()
        else:
            await page.locator("#answer").fill(ANSWERS[text])
            await page.locator("#answer").press("Enter")

    @property
    def node(self) -> str:
        """The boshcm node that owns the page's current BOSH session."""
        return self.sids[-1].partition(".")[0]


async def question(index: int, ann: Player, ben: Player, sm: Sequence[SmPlayer], dan: PagePlayer) -> Any:
    """Question `index` reached everyone; as Ann got it."""
    asked = await ann.next("question", lambda q: q.get("index") == str(index))
    await ben.next("question", lambda q: q.get("index") == str(index))
    for one in sm:
        await one.next("question", index=str(index))
    await expect(dan.page.locator("#q-index")).to_have_text(f"Question {index} of {QUESTIONS}", timeout=WAIT_MS)
    return asked


async def everyone_answers(asked: Any, ann: Player, ben: Player, sm: Sequence[SmPlayer], dan: PagePlayer) -> None:
    """After a node went away: the room stays quiet until every stream it held has been resumed (`synced`, then
    the page's answer counted). ejabberd bounces a groupchat message that reaches a full JID while its session is
    being resumed (the old session is closed before the new one is open), and its room then removes that occupant
    for "sending an error" (ejabberd issue 3661): a race of ejabberd's, which the test must not run into."""
    right, wrong = right_and_wrong(asked)
    await asyncio.gather(*(one.synced() for one in sm))
    await dan.answer_right()  # the page may not have noticed yet that its node went away
    await expect(dan.page.locator("#received")).to_have_text("Answer received ✓", timeout=WAIT_MS)
    ann.say(right)
    ben.say(wrong)
    for one in sm:
        one.say(right)
    reveal = await ann.next("reveal", lambda r: r.get("question") == asked.get("id"))
    await ben.next("reveal", lambda r: r.get("question") == asked.get("id"))
    for one in sm:
        await one.next("reveal", question=asked.get("id", ""))
    await expect(dan.page.locator("#reveal .answer")).to_contain_text(reveal.get("answer", ""), timeout=WAIT_MS)
    scorers = {s.get("nick") for s in reveal.findall(f"{{{NS}}}scorer")}
    assert scorers == {"Ann", "Dan", "Eve", "Fay", "Gil"}, etree.tostring(reveal)  # every answer arrived, in time


def xmpp_links(pair: tuple[EjabberdNode, ...]) -> dict[int, Counter[str]]:
    """The c2s connections to each ejabberd node, by the pid of the process on the other end (`ss`)."""
    names = {node.c2s_port: node.name for node in pair}
    found: dict[int, Counter[str]] = {}
    listing = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=True)
    for line in listing.stdout.splitlines():
        fields = line.split()
        peer, users = fields[3], " ".join(fields[4:])
        pid = re.search(r"pid=(\d+)", users)
        port = int(peer.rpartition(":")[2])
        if port in names and pid is not None:
            found.setdefault(int(pid.group(1)), Counter())[names[port]] += 1
    return found


def recorded(store: Path) -> tuple[dict[str, int], dict[str, int]]:
    """What the bot recorded for the game: points per nick (its ledger), and answers counted per player."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        games = db.execute("SELECT id FROM games").fetchall()
        assert len(games) == 1, games
        points = db.execute("SELECT nick, SUM(points) FROM ledger WHERE game_id = ? GROUP BY player",
                            (games[0][0],)).fetchall()
        answers = db.execute("SELECT player, COUNT(*) FROM answers WHERE game_id = ? GROUP BY player",
                             (games[0][0],)).fetchall()
    return {nick: int(total) for nick, total in points}, {player: int(count) for player, count in answers}


def final_points(scores: Any) -> dict[str, int]:
    return {p.get("nick"): int(p.get("points", "")) for p in scores.findall(f"{{{NS}}}player")}


async def test_quiz_night_survives_losing_a_boshcm_node(
        ejabberd_pair: tuple[tuple[EjabberdNode, ...], Future[None]], tmp_path: Path) -> None:
    pair, ejabberd_started = ejabberd_pair
    a_xmpp, b_xmpp = pair
    upstreams = [f"127.0.0.1:{a_xmpp.c2s_port}"]  # one ejabberd node behind both boshcm nodes (the docstring says why)
    internal_ports = {"a": free_port(), "b": free_port()}
    secret_file = write_secret(tmp_path / "cluster")
    nodes = {name: NodeProcess(tmp_path, name, upstreams=upstreams, internal_ports=internal_ports,
                               secret_file=secret_file) for name in ("a", "b")}
    bot_log = (tmp_path / "quizbot.log").open("wb")
    bot: asyncio.subprocess.Process | None = None
    made: list[XmppClient] = []
    bosh: list[SmBoshPlayer] = []
    sm: list[SmBoshPlayer | SmWebSocketPlayer] = []  # the BOSH players and Gil on WebSocket
    dan: PagePlayer | None = None
    try:
        # While ejabberd starts: the boshcm nodes (they reach ejabberd only when a client logs in), the page, the
        # front and Chromium.
        await asyncio.gather(*(node.start() for node in nodes.values()))
        async with (quiz_page(BOT, ROOM) as page_port, aiohttp.ClientSession() as http,
                    chromium(tmp_path) as browser):
            with nginx(tmp_path / "nginx", nodes=[n.http_port for n in nodes.values()], page=page_port) as front:
                await asyncio.wrap_future(ejabberd_started)
                bot = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "quizbot", "run", "--config", str(bot_config(tmp_path, a_xmpp.cert_path)),
                    "--jid", f"{BOT}/bot", "--password-file", str(tmp_path / "quiz.password"), "--server",
                    upstreams[0], "--rooms", ROOM, stdin=asyncio.subprocess.DEVNULL, stdout=bot_log, stderr=bot_log,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
                try:
                    ann_client = XmppClient("ann@localhost/quiz", "ann-secret", port=a_xmpp.c2s_port,
                                            ca_cert=a_xmpp.cert_path, plugins=("xep_0045",))
                    made.append(ann_client)
                    await ann_client.connect()
                    await room_ready(ann_client)  # the bot made and configured the room before anyone else joins
                    await ann_client.close()
                    # Dan logs in (through the front) while Ann and Ben do (straight to ejabberd).
                    context = await browser.new_context(locale="en-GB")
                    dan = PagePlayer(await context.new_page())
                    ann, ben, _ = await asyncio.gather(
                        player(a_xmpp.c2s_port, a_xmpp.cert_path, made, "ann"),
                        player(b_xmpp.c2s_port, b_xmpp.cert_path, made, "ben"),
                        dan.log_in(f"http://127.0.0.1:{front}/"))
                    url = f"http://127.0.0.1:{front}/http-bind"
                    bosh = [SmBoshPlayer(http, url, name, room=ROOM, bot_nick="Quizbot") for name in ("eve", "fay")]
                    gil = SmWebSocketPlayer(http, f"ws://127.0.0.1:{front}/xmpp-websocket", "gil", room=ROOM,
                                            bot_nick="Quizbot")
                    sm.append(gil)
                    # One after the other: two players each looking for its node through the front's round robin
                    # can miss in lockstep, and every miss holds an unauthenticated slot of 127.0.0.1's.
                    await bosh[0].start("a")
                    await bosh[1].start("b")
                    await gil.start()
                    sm += bosh

                    # The spread: BOSH sessions on both boshcm nodes, XMPP sessions on both ejabberd nodes.
                    assert [one.sids[0].partition(".")[0] for one in bosh] == ["a", "b"]
                    links = xmpp_links(pair)
                    assert links[os.getpid()] == Counter({a_xmpp.name: 1, b_xmpp.name: 1}), links  # Ann and Ben
                    assert links[bot.pid] == Counter({a_xmpp.name: 1}), links
                    through = [links.get(node.pid, Counter()) for node in nodes.values()]
                    assert all(through) and sum(through, Counter()).total() == 4, links  # Dan, Eve, Fay and Gil

                    ann.say(f"!quiz live {QUESTIONS} mixed")
                    await ann.next("game", lambda g: g.get("state") == "lobby")
                    ben.say("!join")
                    for one in sm:
                        one.say("!join")
                    await dan.say("!join")
                    await ann.next("game", lambda g: len(g) == len(PLAYERS))
                    ann.say("!start")

                    # Question 1 open: the node holding the page's session is killed.
                    asked = await question(1, ann, ben, sm, dan)
                    killed = dan.node
                    other = "b" if killed == "a" else "a"
                    assert await nodes[killed].signal(signal.SIGKILL) == -signal.SIGKILL
                    await everyone_answers(asked, ann, ben, sm, dan)

                    # Question 2 open, the killed node back: the other one drains.
                    await nodes[killed].start()
                    asked = await question(2, ann, ben, sm, dan)
                    moved_to = dan.node
                    assert await nodes[other].signal(signal.SIGTERM) == 0
                    await everyone_answers(asked, ann, ben, sm, dan)

                    asked = await question(3, ann, ben, sm, dan)
                    await everyone_answers(asked, ann, ben, sm, dan)

                    final = await ann.next("scores", lambda s: s.get("final") == "true")
                    seen = {"Ann": final_points(final),
                            "Ben": final_points(await ben.next("scores", lambda s: s.get("final") == "true"))}
                    for one in sm:
                        seen[one.nick] = final_points(await one.next("scores", final="true"))
                    await expect(dan.page.locator("#scores li[data-nick='Dan']")).to_have_attribute(
                        "data-points", str(seen["Ann"]["Dan"]), timeout=WAIT_MS)
                    seen["Dan"] = final_points(await dan.next("scores", final="true"))

                    # Nothing lost, nothing twice: every question and every reveal reached every player once.
                    ids = list(bosh[0].seen("question", "id"))
                    assert len(ids) == QUESTIONS
                    once = Counter(ids)
                    for one in sm:
                        assert one.seen("question", "id") == once, one.name
                        assert one.seen("reveal", "question") == once, one.name
                    assert dan.seen("question", "id") == once
                    assert dan.seen("reveal", "question") == once
                    # Those on BOSH moved: each resumed at ejabberd whenever its node went (never a fresh login): the
                    # one on the killed node twice (to the other node, back to the restarted one), the other once.
                    assert sorted(one.resumed for one in bosh) == [1, 2], [(one.name, one.losses) for one in bosh]
                    assert gil.resumed in (1, 2) and gil.connections == gil.resumed + 1, gil.losses  # its socket's node
                    assert not dan.errors
                    assert (moved_to, dan.node) == (other, killed)
                    assert sum("<resume" in body for body in dan.bodies) == 2
                    assert sum("<bind" in body for body in dan.bodies) == 1
                    await context.close()
                finally:
                    for one in sm:
                        (tmp_path / f"{one.name}-wire.txt").write_text("\n".join(one.wire))
                    # Before the HTTP client session closes: the players end their sessions with it.
                    await asyncio.gather(*(one.close() for one in sm), return_exceptions=True)
    finally:
        if dan is not None:
            (tmp_path / "page-wire.txt").write_text("\n".join(dan.wire + dan.errors))
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)
        if bot is not None:
            await stop_process(bot)
        bot_log.close()
        for node in nodes.values():
            await node.close()
    # The bot's store, now closed: every answer of every player counted, and its points are what everyone saw.
    points, answers = recorded(tmp_path / "quiz.sqlite")
    assert answers == {f"{name}@localhost": QUESTIONS for name in PLAYERS}
    assert set(points) == {"Ann", "Dan", "Eve", "Fay", "Gil"}  # Ben answers wrongly
    for nick, standings in seen.items():
        assert {n: p for n, p in standings.items() if p} == points, nick


async def room_ready(client: XmppClient) -> None:
    """Wait until the bot's room exists and is configured (disco#info answers; a locked room does not)."""
    for _ in range(200):
        try:
            await client.xmpp.plugin["xep_0030"].get_info(jid=JID(ROOM), timeout=2)
            return
        except (IqError, IqTimeout):  # item-not-found until the bot has made the room
            await asyncio.sleep(0.1)
    raise AssertionError("the bot's room did not appear")
