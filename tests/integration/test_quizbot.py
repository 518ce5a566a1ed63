"""The quiz bot on the embedded server with three real slixmpp players: live, classic and sixbreak games,
!newgame and !invite, admin refusals. Scores are checked against the rules from the bot's own payloads.

One server and bot serve the whole file (two: the fast timers have their own). Tests do not meet: each gets a room
of its own (the bot is in all of them from the start) and accounts of its own (the bot limits commands per account),
and counts in the bot's store are compared with what they were when the test began."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from boshcm.app import Server
from boshcm.config import load_config
from boshcm.jid import JID
from boshcm.tls import SELF_SIGNED_CERT
from quizbot.extension import QuizExtension
from quizbot.payload import NS
from tests.integration.quiz_players import (
    ANSWERS,
    BANK,
    BOT,
    QUESTION_SECONDS,
    ROOM,
    Player,
    join,
    open_game,
    play_live_game,
    right_and_wrong,
    wait_until,
)
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient, trusting_only

pytestmark = pytest.mark.asyncio(loop_scope="module")

TABLES = 12  # rooms for the tests on the shared server that play in one, besides the bot's own ROOM
FAST_TABLES = 2
_serial = itertools.count(1)  # numbers the tests' accounts: ann1, ben1, ...


class Shared:
    """A server and bot for the whole file, with rooms to hand out to tests and a TLS context for their clients."""

    def __init__(self, server: Server, rooms: list[str]) -> None:
        self.server, self.rooms = server, iter(rooms)
        self.tls = trusting_only(server.config.data_path / SELF_SIGNED_CERT)


class Table:
    """One test's room on a shared server (taken when first used) and its players' accounts (made on demand,
    numbered for this test)."""

    def __init__(self, shared: Shared) -> None:
        self.shared, self.serial = shared, next(_serial)
        self._room: str | None = None
        self.made: list[XmppClient] = []

    @property
    def room(self) -> str:
        if self._room is None:
            self._room = next(self.shared.rooms, None)
            assert self._room is not None, "more tests than rooms: raise TABLES"
        return self._room

    async def join(self, name: str, *, in_room: bool = True) -> Player:
        """A player of this test: its nick from `name`, its account made now; in this test's room or none."""
        account = f"{name}{self.serial}"
        self.shared.server.accounts.add(account, f"{account}-secret")
        return await join(self.shared.server, self.made, name, join=in_room, room=self.room if in_room else ROOM,
                          account=account, ssl_context=self.shared.tls)

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self.made), return_exceptions=True)


async def start_shared(tmp_path: Path, rooms: list[str], overrides: dict[str, object]) -> Server:
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(BANK))
    server = Server(load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "c2s.listen": "127.0.0.1:0", "http.listen": "127.0.0.1:0",
        "quizbot.questions": [str(bank)], "quizbot.rooms": rooms, "quizbot.game.question_seconds": QUESTION_SECONDS,
        # A short reveal: no test sends anything during one, and each waits for the next question.
        "quizbot.game.reveal_seconds": 0.2, "quizbot.game.get_ready_seconds": 0.0,  # the first question at once
        "quizbot.process": "inline", **overrides}))  # inline: tests look inside
    await server.start()
    client = server.extension(QuizExtension).client
    assert client is not None
    await wait_until(lambda: {ROOM, *rooms} <= client.entered)
    return server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    rooms = [f"table-{n}@conference.localhost" for n in range(1, TABLES + 1)]
    server = await start_shared(tmp_path_factory.mktemp("quiz"), rooms, {
        "quizbot.admins": ["root@localhost"], "quizbot.game.hint_interval_seconds": 4.0,
        "quizbot.game.break_seconds": 1.0, "quizbot.self_ping_seconds": 1.0})
    server.accounts.add("root", "root-secret")
    yield Shared(server, rooms)
    await server.stop()


@pytest.fixture
def quiz_server(shared: Shared) -> Server:
    return shared.server


@pytest_asyncio.fixture(loop_scope="module")
async def table(shared: Shared) -> AsyncIterator[Table]:
    made = Table(shared)
    yield made
    await made.close()


@pytest_asyncio.fixture(loop_scope="module")
async def players(table: Table) -> tuple[Player, Player, Player]:
    return await table.join("ann"), await table.join("ben"), await table.join("cat")


def store_counts(server: Server) -> dict[str, int]:
    client = server.extension(QuizExtension).client
    assert client is not None
    return dict(client.store.counts())


def counted_since(server: Server, before: dict[str, int]) -> dict[str, int]:
    return {name: count - before.get(name, 0) for name, count in store_counts(server).items()}


async def test_live_game_of_three_kinds_scores_by_the_rules(players: tuple[Player, Player, Player]) -> None:
    await play_live_game(*players)


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


async def test_newgame_and_invite_bring_friends_into_a_private_room(table: Table) -> None:
    ann = await table.join("ann", in_room=False)
    ben = await table.join("ben", in_room=False)
    invitations: asyncio.Queue[Any] = asyncio.Queue()
    ben.client.xmpp.add_event_handler("groupchat_direct_invite", invitations.put_nowait)
    ann_invites: asyncio.Queue[Any] = asyncio.Queue()
    ann.client.xmpp.add_event_handler("groupchat_direct_invite", ann_invites.put_nowait)

    ann.say("!newgame", to=BOT)
    made_room = await ann.next("room")
    room = made_room.get("jid", "")
    invite = await asyncio.wait_for(ann_invites.get(), TIMEOUT_SECONDS)
    assert str(invite["groupchat_invite"]["jid"]) == room
    presence, *_ = await ann.client.xmpp.plugin["xep_0045"].join_muc_wait(room, "Ann", maxstanzas=0,
                                                                          timeout=TIMEOUT_SECONDS)
    assert presence["muc"]["affiliation"] == "owner"  # the requester owns the room

    ann.say(f"!invite {ben.jid}", to=BOT)
    invite = await asyncio.wait_for(invitations.get(), TIMEOUT_SECONDS)
    assert str(invite["groupchat_invite"]["jid"]) == room
    await ben.client.xmpp.plugin["xep_0045"].join_muc_wait(room, "Ben", maxstanzas=0, timeout=TIMEOUT_SECONDS)
    ann.client.xmpp.send_message(mto=room, mbody="!quiz live 1 mixed", mtype="groupchat")
    lobby = await ben.next("game", lambda g: g.get("state") == "lobby")
    assert lobby.get("opener") == "Ann"


async def test_admin_commands_are_refused_to_players_and_answered_for_admins(
        players: tuple[Player, Player, Player], table: Table) -> None:
    ann, _ben, _cat = players
    ann.say("!admin rooms", to=BOT)
    assert "only bot administrators" in await ann.body_containing("administrators")
    ann.say("!admin stop quiz@conference.localhost")
    assert "only bot administrators" in await ann.body_containing("administrators")
    root = await join(table.shared.server, table.made, "root", join=False, ssl_context=table.shared.tls)
    root.say("!admin rooms", to=BOT)
    assert ROOM in await root.body_containing("Rooms:")


async def test_the_bots_room_is_public_and_persistent_and_listed(quiz_server: Server, table: Table) -> None:
    assert quiz_server.muc is not None
    room = quiz_server.muc.room(JID.parse(ROOM))
    assert room is not None and room.config.persistent and room.config.public
    ann = await table.join("ann", in_room=False)
    items = await ann.client.xmpp.plugin["xep_0030"].get_items(jid="conference.localhost")
    assert ROOM in {str(item[0]) for item in items["disco_items"]["items"]}


async def test_self_ping_brings_the_bot_back_when_the_room_forgot_it(quiz_server: Server) -> None:
    assert quiz_server.muc is not None and quiz_server.extension(QuizExtension).client is not None
    room = quiz_server.muc.room(JID.parse(ROOM))
    assert room is not None and "Quizbot" in room._occupants
    # What a MUC service restart looks like to the bot: no presence, it is simply no longer in the room.
    bot = room._occupants.pop("Quizbot")
    for real_jid in bot.real_jids:
        room._nick_of.pop(real_jid, None)
    await wait_until(lambda: "Quizbot" in room._occupants)  # XEP-0410 self-ping noticed and it rejoined


async def test_delayed_messages_such_as_history_are_not_commands(players: tuple[Player, Player, Player]) -> None:
    ann, _ben, _cat = players
    stale = ann.client.xmpp.make_message(mto=ann.room, mbody="!quiz live 3 mixed", mtype="groupchat")
    stale.append(ElementTree.fromstring("<delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/>"))
    stale.send()
    ann.say("!top")
    top = await ann.next("top")  # the bot answered the fresh command ...
    assert top.get("period") == "all"
    ann.say("!quiz live 3 mixed")
    lobby = await ann.next("game")  # ... and opens a lobby now: the delayed one did not open one before
    assert lobby.get("state") == "lobby"


async def test_admin_ad_hoc_commands_answer_admins_and_refuse_others(quiz_server: Server, table: Table) -> None:
    root = await join(quiz_server, table.made, "root", join=False, ssl_context=table.shared.tls)
    ann = await table.join("ann", in_room=False)
    for client in (root.client, ann.client):
        client.xmpp.register_plugin("xep_0050")
        client.xmpp.register_plugin("xep_0004")
    commands = await root.client.xmpp.plugin["xep_0050"].get_commands(jid=f"{BOT}/bot")
    nodes = {item[1] for item in commands["disco_items"]["items"]}
    assert {"quizbot-admin-rooms", "quizbot-admin-give"} <= nodes

    result = await root.client.xmpp.plugin["xep_0050"].send_command(f"{BOT}/bot", "quizbot-admin-rooms")
    assert ROOM in str(result["command"]["form"]["values"]["result"])
    refused = await ann.client.xmpp.plugin["xep_0050"].send_command(f"{BOT}/bot", "quizbot-admin-rooms")
    assert "only bot administrators" in str(refused["command"]["form"]["values"]["result"])

    # A command with arguments: the bot asks with a form, the admin submits it.
    first = await root.client.xmpp.plugin["xep_0050"].send_command(f"{BOT}/bot", "quizbot-admin-give")
    assert {"jid", "points"} <= {field["var"] for field in first["command"]["form"]["fields"]}
    form = root.client.xmpp.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="jid", value=ann.jid)
    form.add_field(var="points", value="40")
    done = await root.client.xmpp.plugin["xep_0050"].send_command(
        f"{BOT}/bot", "quizbot-admin-give", sessionid=first["command"]["sessionid"], payload=form,
        action="complete")
    assert "Done" in str(done["command"]["form"]["values"]["result"])
    assert quiz_server.extension(QuizExtension).client is not None
    # All of it: the other tests' players are on the shared server's board too.
    board = quiz_server.extension(QuizExtension).client.store.leaderboard("all", wall=1e12, limit=10_000)
    assert (ann.jid, ann.jid.partition("@")[0], 40) in board


def forged(body: str, xml: str, *, to: str, mtype: str, sender: Player) -> None:
    message = sender.client.xmpp.make_message(mto=to, mbody=body, mtype=mtype)
    message.append(ElementTree.fromstring(xml))
    message.send()


async def test_payloads_forged_by_an_occupant_are_ignored_by_the_bot_and_by_players(
        players: tuple[Player, Player, Player], quiz_server: Server) -> None:
    ann, ben, cat = players
    room = ann.room
    before = store_counts(quiz_server)
    # Cat plays the troll: the bot's payloads in the room, a move to another room in private.
    forged("Type your password to win!", f"<question xmlns='{NS}' id='fake' index='1' total='1' kind='text' "
           f"duration='30'><text xmlns='{NS}'>Type your password to win</text></question>", to=room,
           mtype="groupchat", sender=cat)
    forged("!quiz live 3 mixed", f"<game xmlns='{NS}' id='x' state='lobby' opener='Cat'/>", to=room,
           mtype="groupchat", sender=cat)
    forged("Cat wins", f"<scores xmlns='{NS}' game='x' final='true'><player xmlns='{NS}' nick='Cat' "
           f"points='99999' rank='1'/></scores>", to=room, mtype="groupchat", sender=cat)
    forged("Come over", f"<room xmlns='{NS}' jid='evil@conference.localhost'/>", to=f"{ben.jid}/quiz", mtype="chat",
           sender=cat)
    forged("Come over", f"<room xmlns='{NS}' jid='evil@conference.localhost'/>", to=f"{room}/Ben", mtype="chat",
           sender=cat)
    cat.say("!top")
    await cat.next("top")  # the bot has read all of Cat's messages
    # The bot did not open Cat's lobby: Ann's command opens one, and it is hers.
    ann.say("!quiz live 1 mixed")
    lobby = await ben.next("game", lambda g: g.get("state") == "lobby")
    assert lobby.get("opener") == "Ann"
    ann.say("!start")
    question = await ben.next("question")
    assert question.get("id") in ANSWERS
    right, _wrong = right_and_wrong(question)
    for each in (ann, ben, cat):
        each.say(right)
    final = await ben.next("scores", lambda s: s.get("final") == "true")
    assert {p.get("nick") for p in final} == {"Ann", "Ben", "Cat"} and all(
        int(p.get("points", "")) < 2000 for p in final)
    assert sorted(ben.dropped) == ["game", "question", "room", "room", "scores"]
    assert counted_since(quiz_server, before)["answers"] == 3


async def test_a_repeated_answer_counts_once(players: tuple[Player, Player, Player], quiz_server: Server) -> None:
    ann, ben, cat = players
    before = store_counts(quiz_server)
    await open_game(ann, ben, cat, "!quiz live 1 mixed")
    question = await ann.next("question")
    right, wrong = right_and_wrong(question)
    ann.say(right)
    ann.say(right, to=BOT)
    ann.say(right)
    ben.say(wrong)
    ben.say(right, to=BOT)
    await asyncio.sleep(0.3)
    cat.say(right)
    reveal = await ann.next("reveal")
    scorers = {s.get("nick"): int(s.get("points", "")) for s in reveal.findall(f"{{{NS}}}scorer")}
    assert set(scorers) == {"Ann", "Cat"}
    final = await ann.next("scores", lambda s: s.get("final") == "true")
    assert {p.get("nick"): int(p.get("points", "")) for p in final} == {**scorers, "Ben": 0}
    counts = counted_since(quiz_server, before)
    assert counts["answers"] == 3 and counts["correct"] == 2


# --- the bot as players meet it (docs/quiz.md) -------------------------------------------------------------

def bot_in(room: str) -> str:
    """The bot's occupant JID: a private message there goes through the room."""
    return f"{room}/Quizbot"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fast_shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    """A hint every half second and a break after every question, so both come in a short game."""
    rooms = [f"fast-{n}@conference.localhost" for n in range(1, FAST_TABLES + 1)]
    server = await start_shared(tmp_path_factory.mktemp("fast"), rooms, {
        "quizbot.game.hint_interval_seconds": 0.5, "quizbot.game.break_every": 1, "quizbot.game.break_seconds": 0.5})
    yield Shared(server, rooms)
    await server.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def fast_table(fast_shared: Shared) -> AsyncIterator[Table]:
    made = Table(fast_shared)
    yield made
    await made.close()


async def test_private_messages_through_the_room_are_answers_and_commands(
        players: tuple[Player, Player, Player]) -> None:
    ann, ben, cat = players
    # Two questions: !score asks about the running game, and after the last reveal there is none (the second
    # question stays open for question_seconds, time enough however slow the machine).
    await open_game(ann, ben, cat, "!quiz live 2 choices")
    question = await ben.next("question")
    right, wrong = right_and_wrong(question)
    ben.say(right, to=bot_in(ben.room))
    ann.say(wrong)
    cat.say(wrong)
    reveal = await ann.next("reveal")
    assert [s.get("nick") for s in reveal.findall(f"{{{NS}}}scorer")] == ["Ben"]
    ben.say("!score", to=bot_in(ben.room))
    assert "Ben" in await ben.body_containing("Scores")
    cat.say("!help", to=bot_in(cat.room))
    assert "!quiz" in await cat.body_containing("Quiz commands")


async def test_classic_hints_arrive_on_their_own(fast_table: Table) -> None:
    ann, ben, cat = [await fast_table.join(name) for name in ("ann", "ben", "cat")]
    await open_game(ann, ben, cat, "!quiz classic 1 mixed")
    question = await ann.next("question")
    hint = await ann.next("hint")  # nobody asked for it: hint_interval_seconds (0.5 s) passed
    assert hint.get("question") == question.get("id") and hint.get("points") == "50"


async def test_an_answer_payload_without_a_body_counts(players: tuple[Player, Player, Player]) -> None:
    ann, ben, cat = players
    await open_game(ann, ben, cat, "!quiz live 1 choices")
    question = await ben.next("question")
    right, wrong = right_and_wrong(question)
    received: asyncio.Queue[Any] = asyncio.Queue()  # slixmpp's "message" event needs a body; <received/> has none
    ben.client.xmpp.register_handler(Callback("received", MatchXPath(f"{{jabber:client}}message/{{{NS}}}received"),
                                              received.put_nowait))
    message = ben.client.xmpp.make_message(mto=BOT, mtype="chat")
    message.append(ElementTree.fromstring(f"<answer xmlns='{NS}' question='{question.get('id')}' choice='{right}'/>"))
    message.send()
    ack = await asyncio.wait_for(received.get(), TIMEOUT_SECONDS)
    assert ack["from"] == f"{BOT}/bot" and ack.xml.find(f"{{{NS}}}received").get("question") == question.get("id")
    ann.say(wrong)
    cat.say(wrong)
    reveal = await ann.next("reveal")
    assert [s.get("nick") for s in reveal.findall(f"{{{NS}}}scorer")] == ["Ben"]


async def test_one_game_id_from_lobby_to_end_and_running_again_after_a_sixbreak_pause(
        fast_table: Table) -> None:
    ann, ben, cat = [await fast_table.join(name) for name in ("ann", "ben", "cat")]
    ann.say("!quiz sixbreak 2 choices")
    lobby = await cat.next("game", lambda g: g.get("state") == "lobby")
    game_id = lobby.get("id")
    ben.say("!join")
    await cat.next("game", lambda g: len(g) == 2)
    ann.say("!start")
    running = await cat.next("game", lambda g: g.get("state") == "running")
    assert running.get("id") == game_id
    first = await cat.next("question")
    assert first.get("game") == game_id
    right, _wrong = right_and_wrong(first)
    ann.say(right)
    ben.say(right)
    paused = await cat.next("game", lambda g: g.get("state") == "paused")
    assert paused.get("id") == game_id
    again = await cat.next("game", lambda g: g.get("state") == "running")  # the break is over
    assert again.get("id") == game_id
    message = again.getparent()  # the bot says it beside the next question
    beside = message.find(f"{{{NS}}}question") if message is not None else None
    second = beside if beside is not None else await cat.next("question")
    assert second.get("index") == "2" and second.get("game") == game_id
    right, wrong = right_and_wrong(second)
    ann.say(right)
    ben.say(wrong)  # out: Ann is the last one standing
    final = await cat.next("scores", lambda s: s.get("final") == "true")
    assert final.get("game") == game_id


async def test_command_payloads_without_a_body_steer_the_game(players: tuple[Player, Player, Player]) -> None:
    ann, ben, cat = players

    def command(who: Player, name: str, arguments: str = "", to: str = ann.room) -> None:
        message = who.client.xmpp.make_message(mto=to, mtype="groupchat" if to == ann.room else "chat")
        message.append(ElementTree.fromstring(f"<command xmlns='{NS}' name='{name}'>{arguments}</command>"))
        message.send()

    command(ann, "quiz", "live 1 choices")
    await ann.next("game", lambda g: g.get("state") == "lobby")
    command(ben, "join")
    command(cat, "join")
    await ann.next("game", lambda g: len(g) == 3)
    command(ann, "start")
    question = await cat.next("question")
    command(cat, "repeat", to=bot_in(cat.room))   # privately through the room: the answer comes back that way
    assert question.get("index") == "1" and "1/1" in await cat.body_containing("1/1")


# --- quiz night (issue 17): PINs, readable rooms, "N of M answered", ad-hoc commands ---------------------


async def test_a_game_pin_brings_a_friend_into_a_readable_private_room(table: Table) -> None:
    ann = await table.join("ann", in_room=False)
    ben = await table.join("ben", in_room=False)
    ann.say("!newgame", to=BOT)
    made_room = await ann.next("room")
    room, pin = made_room.get("jid", ""), made_room.get("pin", "")
    name = f"{ann.jid.partition('@')[0]}'s quiz"  # the requester's account name
    assert made_room.get("name") == name and len(pin) == 6 and pin.isdigit()
    assert re.fullmatch(r"[a-z]+-[a-z]+-[0-9]{4}@conference\.localhost", room)
    await ann.client.xmpp.plugin["xep_0045"].join_muc_wait(room, "Ann", maxstanzas=0, timeout=TIMEOUT_SECONDS)
    # Clients show the room's name (muc#roomconfig_roomname), not its address.
    ben.client.xmpp.register_plugin("xep_0030")
    info = await ben.client.xmpp.plugin["xep_0030"].get_info(jid=room, timeout=TIMEOUT_SECONDS)
    identities = {(category, kind, name) for category, kind, _lang, name in info["disco_info"]["identities"]}
    assert ("conference", "text", name) in identities

    # Ben types the PIN on the start page: the page asks the bot with a <command/> and follows its <room/>.
    message = ben.client.xmpp.make_message(mto=BOT, mtype="chat")
    message.append(ElementTree.fromstring(f"<command xmlns='{NS}' name='pin'>{pin}</command>"))
    message.send()
    found = await ben.next("room")
    assert (found.get("jid"), found.get("pin"), found.get("name")) == (room, pin, name)
    ben.say("!pin 100000" if pin != "100000" else "!pin 100001", to=BOT)
    assert "No game has the PIN" in await ben.body_containing("PIN")
    await ben.client.xmpp.plugin["xep_0045"].join_muc_wait(room, "Ben", maxstanzas=0, timeout=TIMEOUT_SECONDS)
    ann.client.xmpp.send_message(mto=room, mbody="!quiz live 1 mixed", mtype="groupchat")
    lobby = await ben.next("game", lambda g: g.get("state") == "lobby")
    assert (lobby.get("pin"), lobby.get("name")) == (pin, name)


async def test_the_room_hears_how_many_have_answered(players: tuple[Player, Player, Player]) -> None:
    ann, ben, cat = players
    # A <progress/> has no body (no chat line a second), and slixmpp's "message" event wants one.
    cat.client.xmpp.register_handler(Callback(
        "progress", MatchXPath(f"{{jabber:client}}message/{{{NS}}}progress"),
        lambda message: None if message["body"] else cat.client.messages.put_nowait(message)))
    await open_game(ann, ben, cat, "!quiz live 1 choices")
    question = await cat.next("question")
    right, wrong = right_and_wrong(question)
    ann.say(right, to=BOT)  # privately: the room learns that someone answered, not who or what
    first = await cat.next("progress")
    assert (first.get("question"), first.get("answered"), first.get("players")) == (question.get("id"), "1", "3")
    ben.say(wrong)
    cat.say(right)
    last = await cat.next("progress")  # within the second: no message of its own, but beside the reveal at once
    assert (last.get("answered"), last.get("players")) == ("3", "3")


async def test_ad_hoc_commands_are_listed_at_the_full_jid_and_through_the_room(
        table: Table, players: tuple[Player, Player, Player]) -> None:
    root = await join(table.shared.server, table.made, "root", room=table.room, ssl_context=table.shared.tls)
    root.client.xmpp.register_plugin("xep_0050")
    adhoc = root.client.xmpp.plugin["xep_0050"]
    full = {item[1] for item in (await adhoc.get_commands(jid=f"{BOT}/bot"))["disco_items"]["items"]}
    assert "quizbot-admin-rooms" in full
    # XEP-0045 §7.5: the room forwards an iq to an occupant's JID, so the bot's nick in the room reaches the bot.
    via_room = await adhoc.get_commands(jid=bot_in(table.room))
    assert {item[1] for item in via_room["disco_items"]["items"]} == full
    # And running one that way: the room shows the bot the occupant's real JID, and that is what counts.
    result = await adhoc.send_command(bot_in(table.room), "quizbot-admin-rooms")
    assert ROOM in str(result["command"]["form"]["values"]["result"])
    ann = players[0]
    ann.client.xmpp.register_plugin("xep_0050")
    refused = await ann.client.xmpp.plugin["xep_0050"].send_command(bot_in(table.room), "quizbot-admin-rooms")
    assert "only bot administrators" in str(refused["command"]["form"]["values"]["result"])
    # The bare JID is the account: the server answers for it (RFC 6120 §10.5.4), with an error to whoever
    # does not share presence with the bot, and never with the bot's commands.
    with pytest.raises(IqError) as refused:
        await adhoc.get_commands(jid=BOT)
    assert refused.value.iq["error"]["condition"] == "service-unavailable"


# --- the bot in a process of its own (`[quizbot] process = "child"`, the default) --------------------------
