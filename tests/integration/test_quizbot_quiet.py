"""A crowded quiz room goes quiet (issue 14): the bot, owner of its room, sets boshcm's room field
`{urn:boshcm:muc:0}roomconfig_quietabove` from `[quizbot] quiet_above`, and above that many players the room itself
broadcasts only moderators' presence (XEP-0045 §10.2), switching at the join that crosses it. Players then see the
bot and themselves only; the bot, a moderator, still sees and scores everyone. Real slixmpp clients, embedded
server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boshcm.app import Server
from boshcm.jid import JID
from boshcm.xmpp.muc import visibility
from quizbot.extension import QuizExtension
from tests.integration.quiz_players import (
    BOT_NICK,
    QUESTION_SECONDS,
    ROOM,
    Player,
    right_and_wrong,
    running_quiz_server,
    seat,
    wait_until,
)
from tests.integration.xmpp_client import XmppClient

NAMES = ("ann", "ben", "cat", "dan", "eve")


@pytest.fixture
async def quiet_server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_quiz_server(tmp_path, accounts=NAMES, overrides={
            "quizbot.game.question_seconds": QUESTION_SECONDS, "quizbot.game.reveal_seconds": 0.5,
            "quizbot.quiet_above": 3}) as server:
        yield server


def broadcast(server: Server) -> tuple[str, ...]:
    """The roles whose presence the room broadcasts now (its form's, or only moderators' while crowded)."""
    assert server.muc is not None
    room = server.muc.room(JID.parse(ROOM))
    assert room is not None
    return tuple(visibility.broadcast_roles(room.config, crowded=room.crowded))


def quiet_above(server: Server) -> int:
    assert server.muc is not None
    room = server.muc.room(JID.parse(ROOM))
    return room.config.quiet_above if room is not None else 0


def nicks_seen(player: Player) -> set[str]:
    """The occupants a player's client lists (slixmpp's MUC roster: joins minus leaves)."""
    return set(player.client.xmpp.plugin["xep_0045"].get_roster(ROOM) or ())


async def test_a_crowded_room_goes_quiet_players_see_the_bot_and_themselves_and_everyone_is_scored(
        quiet_server: Server) -> None:
    made: list[XmppClient] = []
    try:
        ann, ben, cat = [await seat(quiet_server, made, name) for name in NAMES[:3]]
        await wait_until(lambda: quiet_above(quiet_server) == 4)  # three players and the bot
        assert broadcast(quiet_server) == ("moderator", "participant", "visitor")  # three: not above quiet_above
        dan = await seat(quiet_server, made, "dan")
        assert broadcast(quiet_server) == ("moderator",)  # the fourth player: above 3, at once
        # Those who were listed before vanish from each other's lists (the room sends them unavailable).
        await wait_until(lambda: nicks_seen(ann) == {BOT_NICK, "Ann"})
        eve = await seat(quiet_server, made, "eve")
        assert nicks_seen(eve) == {BOT_NICK, "Eve"}   # her join view: the bot (a moderator) and herself
        bot = quiet_server.extension(QuizExtension).client
        assert bot is not None
        await wait_until(lambda: "Eve" in bot.bot.rooms[ROOM].occupants)   # the bot sees her come
        # Eve's join reached nobody else: Ann's next stanza from the room after it is Eve's message, not her presence.
        eve.say("hello")
        while (await ann.client.next_message())["body"] != "hello":
            pass
        assert "Eve" not in nicks_seen(ann) and "Eve" not in nicks_seen(dan)

        # A live question is still scored for everyone, Eve included.
        players = (ann, ben, cat, dan, eve)
        ann.say("!quiz live 1 choices")
        await ann.next("game", lambda g: g.get("state") == "lobby")
        for player in players[1:]:
            player.say("!join")
        await ann.next("game", lambda g: len(g) == len(players))
        ann.say("!start")
        question = await eve.next("question")
        right, _wrong = right_and_wrong(question)
        for player in players:
            player.say(right)
        final = await eve.next("scores", lambda s: s.get("final") == "true")
        points = {p.get("nick"): int(p.get("points", "")) for p in final}
        assert set(points) == {"Ann", "Ben", "Cat", "Dan", "Eve"} and min(points.values()) > 0
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)


async def test_the_room_is_broadcast_again_when_it_empties_below_half(quiet_server: Server) -> None:
    made: list[XmppClient] = []
    try:
        players = [await seat(quiet_server, made, name) for name in NAMES[:4]]
        await wait_until(lambda: broadcast(quiet_server) == ("moderator",))
        for player in players[:0:-1]:
            await player.client.close()
        # One player and the bot: not fewer than half of the room's 4 (quiet_above 3 and the bot).
        assert broadcast(quiet_server) == ("moderator",)
        await players[0].client.close()
        await wait_until(lambda: broadcast(quiet_server) == ("moderator", "participant", "visitor"))
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)
