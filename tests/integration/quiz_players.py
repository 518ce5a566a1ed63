"""Quiz players for the integration and interop tests: real slixmpp clients that read the bot's payloads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from boshcm.app import Server
from boshcm.tls import SELF_SIGNED_CERT
from quizbot.payload import NS
from quizbot.trust import BotWatch, has_quiz_payload
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient, trusting_only

ROOM = "quiz@conference.localhost"
BOT = "quiz@localhost"
BOT_NICK = "Quizbot"
QUESTION_SECONDS = 6.0

BANK = {"language": "en", "questions": [
    {"id": "m-text", "category": "mixed", "kind": "text", "question": "Which city is the capital of France?",
     "answer": "Paris", "source": "https://en.wikipedia.org/wiki/Paris"},
    {"id": "m-number", "category": "mixed", "kind": "number", "question": "How many legs has a spider?",
     "answer": "8", "source": "https://en.wikipedia.org/wiki/Spider"},
    {"id": "m-choice", "category": "mixed", "kind": "choice", "question": "Who composed The Magic Flute?",
     "answer": "Mozart", "wrong": ["Bach", "Haydn", "Handel"],
     "source": "https://en.wikipedia.org/wiki/The_Magic_Flute"},
] + [
    {"id": f"c-{n}", "category": "choices", "kind": "choice", "question": f"Which planet is number {n + 1}?",
     "answer": planet, "wrong": [p for p in ("Mercury", "Venus", "Earth", "Mars", "Jupiter") if p != planet][:3],
     "source": "https://en.wikipedia.org/wiki/Solar_System"}
    for n, planet in enumerate(("Mercury", "Venus", "Earth"))
] + [
    # Text that markup would change: shown as written, never as markup and never as entities.
    {"id": "x-markup", "category": "tricky", "kind": "choice",
     "question": "Which one's <b>bold</b> &amp; \"quoted\"?", "answer": "Rock 'n' Roll & <Blues>",
     "wrong": ["Bach's <i>Fugue</i>", "A &amp; B", "<script>alert(1)</script>"],
     "source": "https://en.wikipedia.org/wiki/HTML"},
]}
ANSWERS = {q["id"]: q["answer"] for q in BANK["questions"]}
WRONG = {"m-text": "Lyon", "m-number": "6"}


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(int(TIMEOUT_SECONDS * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def _lxml(stanza: Any) -> etree._Element:
    return etree.fromstring(ElementTree.tostring(stanza.xml))


class Player:
    """Believes quiz payloads only from the bot (quizbot/trust.py); `dropped` names the ones it refused."""

    def __init__(self, client: XmppClient, nick: str, watch: BotWatch, room: str = ROOM) -> None:
        self.client, self.nick, self.watch, self.room = client, nick, watch, room
        self.dropped: list[str] = []

    @property
    def jid(self) -> str:
        """The player's bare JID (its account)."""
        return str(self.client.xmpp.boundjid.bare)

    def say(self, body: str, to: str | None = None) -> None:
        """To the player's room (by default) as groupchat, anywhere else as chat."""
        to = self.room if to is None else to
        self.client.xmpp.send_message(mto=to, mbody=body, mtype="groupchat" if to == self.room else "chat")

    async def _message(self, timeout: float) -> Any:
        """The next message, skipping (whole) any that carries quiz payloads not from the bot."""
        while True:
            message = await asyncio.wait_for(self.client.messages.get(), timeout)
            element = _lxml(message)
            if not has_quiz_payload(element) or self.watch.trusted(element):
                return message
            self.dropped += [etree.QName(child).localname for child in element
                             if isinstance(child.tag, str) and etree.QName(child).namespace == NS]

    async def next(self, name: str, where: Callable[[etree._Element], bool] = lambda _e: True) -> etree._Element:
        """The next quiz payload of this name the player receives (from the room or privately)."""
        while True:
            element = _lxml(await self._message(TIMEOUT_SECONDS + QUESTION_SECONDS))
            found = element.find(f"{{{NS}}}{name}")
            if found is not None and where(found):
                return found

    async def body_containing(self, text: str) -> str:
        while True:
            message = await self._message(TIMEOUT_SECONDS)
            if text in message["body"]:
                return str(message["body"])


async def player(port: int, ca_cert: Path, clients: list[XmppClient], name: str, *, join: bool = True,
                 room: str = ROOM, account: str | None = None, ssl_context: ssl.SSLContext | None = None) -> Player:
    """`name` gives the nick (title-cased) and, unless `account` is given, the account (password: account-secret).
    Tests that share a server give each test its own `room` and accounts: the bot limits commands per account."""
    account = account or name
    client = XmppClient(f"{account}@localhost/quiz", f"{account}-secret", port=port, ca_cert=ca_cert,
                        plugins=("xep_0045", "xep_0249"), ssl_context=ssl_context)
    watch = BotWatch(bot_jid=BOT, bot_nick=BOT_NICK)
    client.xmpp.add_event_handler("groupchat_presence", lambda presence: watch.presence(_lxml(presence)))
    clients.append(client)
    await client.connect()
    client.xmpp.send_presence()
    if join:
        await client.xmpp.plugin["xep_0045"].join_muc_wait(room, name.title(), maxstanzas=0,
                                                           timeout=TIMEOUT_SECONDS)
    return Player(client, name.title(), watch, room)


async def seat(server: Server, made: list[XmppClient], name: str, *, in_room: bool = True) -> Player:
    """`join`, with a TLS context that trusts the server's certificate alone (slixmpp's own loads the system's CA
    store: about 0.1 s of CPU a client)."""
    return await join(server, made, name, join=in_room,
                      ssl_context=trusting_only(server.config.data_path / SELF_SIGNED_CERT))


def right_and_wrong(question: etree._Element) -> tuple[str, str]:
    """What a player types to answer right and wrong."""
    answer = ANSWERS[question.get("id", "")]
    choices = {c.text: c.get("key", "") for c in question.findall(f"{{{NS}}}choice")}
    if choices:
        return choices[answer], next(key for text, key in choices.items() if text != answer)
    return answer.lower(), WRONG[question.get("id", "")]


def speed_points(seconds: float, streak: int) -> int:
    base = 1000 if seconds < 0.5 else round(1000 * (1 - min(seconds, QUESTION_SECONDS) / (2 * QUESTION_SECONDS)))
    return base + min(50 * (streak - 1), 250)


async def open_game(ann: Player, ben: Player, cat: Player, command: str) -> None:
    ann.say(command)
    await ann.next("game", lambda g: g.get("state") == "lobby")
    for joiner in (ben, cat):
        joiner.say("!join")
    await ann.next("game", lambda g: len(g) == 3)
    ann.say("!start")


async def play_live_game(ann: Player, ben: Player, cat: Player) -> None:
    """A live game of three questions, one of each kind: Ann answers at once, Ben privately 0.8 s later, Cat
    wrongly; the points must follow the speed formula and add up to the final scores."""
    await open_game(ann, ben, cat, "!quiz live 3 mixed")
    totals: dict[str, int] = {}
    kinds = []
    for index in (1, 2, 3):
        question = await ann.next("question", lambda q, i=index: q.get("index") == str(i))  # type: ignore[misc]
        await ben.next("question", lambda q, i=index: q.get("index") == str(i))  # type: ignore[misc]
        kinds.append(question.get("kind"))
        right, wrong = right_and_wrong(question)
        ann.say(right)
        await asyncio.sleep(0.8)
        ben.say(right, to=BOT)  # privately to the bot, so nobody can copy
        cat.say(wrong)
        reveal = await cat.next("reveal", lambda r, q=question: r.get("question") == q.get("id"))  # type: ignore[misc]
        scorers = {s.get("nick"): s for s in reveal.findall(f"{{{NS}}}scorer")}
        assert set(scorers) == {"Ann", "Ben"}, etree.tostring(reveal)
        for nick, scorer in scorers.items():
            points = int(scorer.get("points", ""))
            assert points == speed_points(float(scorer.get("seconds", "")), int(scorer.get("streak", "")))
            totals[nick] = totals.get(nick, 0) + points
        assert float(scorers["Ben"].get("seconds", "")) > float(scorers["Ann"].get("seconds", ""))
        # Faster never scores less; both can score full points when a loaded machine measures a long round trip for
        # Ben, whose credit (half of it, at most 0.5 s, plus the grace) then brings him under the full-points time.
        assert int(scorers["Ann"].get("points", "")) >= int(scorers["Ben"].get("points", ""))
    assert sorted(kinds) == ["choice", "number", "text"]
    final = await cat.next("scores", lambda s: s.get("final") == "true")
    assert {p.get("nick"): int(p.get("points", "")) for p in final} == {**totals, "Cat": 0}
    assert [p.get("nick") for p in final] == ["Ann", "Ben", "Cat"]


async def join(server: Server, made: list[XmppClient], name: str, *, join: bool = True, room: str = ROOM,
               account: str | None = None, ssl_context: ssl.SSLContext | None = None) -> Player:
    """A player logged in to the embedded server (its c2s port and self-signed certificate), in the room."""
    return await player(server.c2s.port, server.config.data_path / SELF_SIGNED_CERT, made, name, join=join,
                        room=room, account=account, ssl_context=ssl_context)


# The browser page tests' server: BOSH's (keys, re-attach; the page's default is WebSocket); each question ends when
# everyone has answered, so the 15 s are a margin that never runs out.
PAGE_QUIZ: dict[str, object] = {"quizbot.game.question_seconds": 15.0, "http.quiz_page_transport": "bosh"}


@contextlib.asynccontextmanager
async def running_quiz_server(tmp_path: Path, *, accounts: Iterable[str],
                              overrides: Mapping[str, object]) -> AsyncIterator[Server]:
    """The embedded server with BANK and the bot inline (tests look inside it) in ROOM, `accounts` made (password:
    name-secret), `overrides` as dotted configuration keys; yielded once the bot is in its room."""
    from boshcm.config import load_config
    from quizbot.extension import QuizExtension

    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(BANK))
    server = Server(load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "c2s.listen": "127.0.0.1:0", "http.listen": "127.0.0.1:0",
        # The first question with the start, unless `overrides` says otherwise: no test waits for a get-ready pause.
        "quizbot.questions": [str(bank)], "quizbot.process": "inline", "quizbot.game.get_ready_seconds": 0.0,
        **overrides}))
    for name in accounts:
        server.accounts.add(name, f"{name}-secret")
    await server.start()
    try:
        client = server.extension(QuizExtension).client
        assert client is not None
        await wait_until(lambda: ROOM in client.entered)
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def fresh_quiz_server(tmp_path: Path) -> AsyncIterator[Server]:
    """A server of its own with the accounts ann, ben, cat and root, for a test in another file that needs the
    quiz room as it is at start (tests/integration/test_quizbot.py shares one)."""
    async with running_quiz_server(tmp_path, accounts=("ann", "ben", "cat", "root"), overrides={
            "quizbot.admins": ["root@localhost"], "quizbot.game.question_seconds": QUESTION_SECONDS,
            "quizbot.game.reveal_seconds": 0.5}) as server:
        yield server
