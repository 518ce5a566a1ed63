"""The quiz bot on the embedded server with three real slixmpp players: live, classic and sixbreak games,
!newgame and !invite, admin refusals. Scores are checked against the rules from the bot's own payloads."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from boshcm.app import Server
from boshcm.config import load_config
from boshcm.tls import SELF_SIGNED_CERT
from quizbot.payload import NS
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient

ROOM = "quiz@conference.localhost"
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
]}
ANSWERS = {q["id"]: q["answer"] for q in BANK["questions"]}
WRONG = {"m-text": "Lyon", "m-number": "6"}


@pytest.fixture
async def quiz_server(tmp_path: Path) -> AsyncIterator[Server]:
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(BANK))
    config = load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "c2s.listen": "127.0.0.1:0", "http.listen": "127.0.0.1:0",
        "quizbot.questions": [str(bank)], "quizbot.admins": ["root@localhost"],
        "quizbot.game.question_seconds": QUESTION_SECONDS, "quizbot.game.reveal_seconds": 0.5,
        "quizbot.game.hint_interval_seconds": 4.0, "quizbot.game.break_seconds": 1.0})
    server = Server(config)
    for name in ("ann", "ben", "cat", "root"):
        server.accounts.add(name, f"{name}-secret")
    await server.start()
    assert server.quizbot is not None
    await wait_until(lambda: ROOM in server.quizbot.client.entered)  # type: ignore[union-attr]
    yield server
    await server.stop()


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(int(TIMEOUT_SECONDS * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


class Player:
    def __init__(self, client: XmppClient, nick: str) -> None:
        self.client, self.nick = client, nick

    def say(self, body: str, to: str = ROOM) -> None:
        self.client.xmpp.send_message(mto=to, mbody=body, mtype="groupchat" if to == ROOM else "chat")

    async def next(self, name: str, where: Callable[[etree._Element], bool] = lambda _e: True) -> etree._Element:
        """The next quiz payload of this name the player receives (from the room or privately)."""
        while True:
            message = await asyncio.wait_for(self.client.messages.get(), TIMEOUT_SECONDS + QUESTION_SECONDS)
            element = etree.fromstring(ElementTree.tostring(message.xml))
            found = element.find(f"{{{NS}}}{name}")
            if found is not None and where(found):
                return found

    async def body_containing(self, text: str) -> str:
        while True:
            message = await asyncio.wait_for(self.client.messages.get(), TIMEOUT_SECONDS)
            if text in message["body"]:
                return str(message["body"])


async def player(server: Server, clients: list[XmppClient], name: str, *, join: bool = True) -> Player:
    client = XmppClient(f"{name}@localhost/quiz", f"{name}-secret", port=server.c2s.port,
                        ca_cert=server.config.data_path / SELF_SIGNED_CERT, plugins=("xep_0045", "xep_0249"))
    clients.append(client)
    await client.connect()
    client.xmpp.send_presence()
    if join:
        await client.xmpp.plugin["xep_0045"].join_muc_wait(ROOM, name.title(), maxstanzas=0,
                                                           timeout=TIMEOUT_SECONDS)
    return Player(client, name.title())


@pytest.fixture
async def players(quiz_server: Server) -> AsyncIterator[tuple[Player, Player, Player]]:
    made: list[XmppClient] = []
    trio = (await player(quiz_server, made, "ann"), await player(quiz_server, made, "ben"),
            await player(quiz_server, made, "cat"))
    yield trio
    await asyncio.gather(*(client.close() for client in made), return_exceptions=True)


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


async def test_live_game_of_three_kinds_scores_by_the_rules(players: tuple[Player, Player, Player]) -> None:
    ann, ben, cat = players
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
        ben.say(right, to="quiz@localhost")  # privately to the bot, so nobody can copy
        cat.say(wrong)
        reveal = await cat.next("reveal", lambda r, q=question: r.get("question") == q.get("id"))  # type: ignore[misc]
        scorers = {s.get("nick"): s for s in reveal.findall(f"{{{NS}}}scorer")}
        assert set(scorers) == {"Ann", "Ben"}, etree.tostring(reveal)
        for nick, scorer in scorers.items():
            points = int(scorer.get("points", ""))
            assert points == speed_points(float(scorer.get("seconds", "")), int(scorer.get("streak", "")))
            totals[nick] = totals.get(nick, 0) + points
        assert float(scorers["Ben"].get("seconds", "")) > float(scorers["Ann"].get("seconds", ""))
        assert int(scorers["Ann"].get("points", "")) > int(scorers["Ben"].get("points", ""))
    assert sorted(kinds) == ["choice", "number", "text"]
    final = await cat.next("scores", lambda s: s.get("final") == "true")
    assert {p.get("nick"): int(p.get("points", "")) for p in final} == {**totals, "Cat": 0}
    assert [p.get("nick") for p in final] == ["Ann", "Ben", "Cat"]


async def test_classic_game_first_correct_answer_wins(players: tuple[Player, Player, Player]) -> None:
    ann, ben, cat = players
    await open_game(ann, ben, cat, "!quiz classic 2 mixed")
    won: dict[str, int] = {}
    for index in (1, 2):
        question = await ann.next("question", lambda q, i=index: q.get("index") == str(i))  # type: ignore[misc]
        right, wrong = right_and_wrong(question)
        cat.say(wrong)
        await asyncio.sleep(0.3)
        winner = ben if index == 1 else ann
        winner.say(right)
        reveal = await cat.next("reveal", lambda r, q=question: r.get("question") == q.get("id"))  # type: ignore[misc]
        ((nick, points),) = [(s.get("nick"), int(s.get("points", ""))) for s in reveal.findall(f"{{{NS}}}scorer")]
        assert nick == winner.nick and points == 100  # before the first hint: full points
        won[nick] = points
    final = await ann.next("scores", lambda s: s.get("final") == "true")
    assert {p.get("nick"): int(p.get("points", "")) for p in final} == {"Ann": 100, "Ben": 100, "Cat": 0}


async def test_sixbreak_eliminates_wrong_answers_until_one_is_left(players: tuple[Player, Player, Player]) -> None:
    ann, ben, cat = players
    await open_game(ann, ben, cat, "!quiz sixbreak 3 choices")
    first = await ann.next("question")
    right, wrong = right_and_wrong(first)
    ann.say(right)
    ben.say(right)
    cat.say(wrong)
    out = await ann.next("eliminated")
    assert out.get("nick") == "Cat"
    second = await ann.next("question", lambda q: q.get("index") == "2")
    right, wrong = right_and_wrong(second)
    ann.say(right)
    ben.say(wrong)
    assert (await ann.next("eliminated")).get("nick") == "Ben"
    final = await cat.next("scores", lambda s: s.get("final") == "true")
    assert final.get("reason") == "last-standing"
    assert final[0].get("nick") == "Ann" and int(final[0].get("points", "")) >= 2000


async def test_newgame_and_invite_bring_friends_into_a_private_room(quiz_server: Server) -> None:
    made: list[XmppClient] = []
    try:
        ann = await player(quiz_server, made, "ann", join=False)
        ben = await player(quiz_server, made, "ben", join=False)
        invitations: asyncio.Queue[Any] = asyncio.Queue()
        ben.client.xmpp.add_event_handler("groupchat_direct_invite", invitations.put_nowait)
        ann_invites: asyncio.Queue[Any] = asyncio.Queue()
        ann.client.xmpp.add_event_handler("groupchat_direct_invite", ann_invites.put_nowait)

        ann.say("!newgame", to="quiz@localhost")
        made_room = await ann.next("room")
        room = made_room.get("jid", "")
        invite = await asyncio.wait_for(ann_invites.get(), TIMEOUT_SECONDS)
        assert str(invite["groupchat_invite"]["jid"]) == room
        presence, *_ = await ann.client.xmpp.plugin["xep_0045"].join_muc_wait(room, "Ann", maxstanzas=0,
                                                                              timeout=TIMEOUT_SECONDS)
        assert presence["muc"]["affiliation"] == "owner"  # the requester owns the room

        ann.say("!invite ben@localhost", to="quiz@localhost")
        invite = await asyncio.wait_for(invitations.get(), TIMEOUT_SECONDS)
        assert str(invite["groupchat_invite"]["jid"]) == room
        await ben.client.xmpp.plugin["xep_0045"].join_muc_wait(room, "Ben", maxstanzas=0, timeout=TIMEOUT_SECONDS)
        ann.client.xmpp.send_message(mto=room, mbody="!quiz live 1 mixed", mtype="groupchat")
        lobby = await ben.next("game", lambda g: g.get("state") == "lobby")
        assert lobby.get("opener") == "Ann"
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)


async def test_admin_commands_are_refused_to_players_and_answered_for_admins(
        players: tuple[Player, Player, Player], quiz_server: Server) -> None:
    ann, _ben, _cat = players
    ann.say("!admin rooms", to="quiz@localhost")
    assert "only bot administrators" in await ann.body_containing("administrators")
    ann.say("!admin stop quiz@conference.localhost")
    assert "only bot administrators" in await ann.body_containing("administrators")
    made: list[XmppClient] = []
    try:
        root = await player(quiz_server, made, "root", join=False)
        root.say("!admin rooms", to="quiz@localhost")
        assert ROOM in await root.body_containing("Rooms:")
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)
