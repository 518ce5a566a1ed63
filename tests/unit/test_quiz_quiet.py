"""A crowd in a quiz room (issue 14): above `quiet_above` occupants the bot answers commands privately (the room
itself goes quiet: boshcm's `{urn:boshcm:muc:0}roomconfig_quietabove`, which the bot sets in rooms it owns,
tests/integration/test_quizbot_quiet.py)."""

from __future__ import annotations

import random

import pytest
from lxml import etree

from boshcm.config import load_config
from boshcm.toml_config import ConfigError
from quizbot.bot import BotSettings, QuizBot
from quizbot.events import OccupantPresence, Order, RoomEntered, RoomMessage, Send
from quizbot.questions import BankSet

ROOM = "quiz@conference.localhost"


def make_bot(quiet_above: int = 3) -> QuizBot:
    bot = QuizBot(settings=BotSettings(jid="quiz@localhost", muc_domain="conference.localhost",
                                       quiet_above=quiet_above), banks=BankSet([]), bank_report=[],
                  rng=random.Random(1))
    bot.handle(RoomEntered(room=ROOM), 0.0, 0.0)
    return bot


def arrive(bot: QuizBot, nick: str, room: str = ROOM) -> list[Order]:
    return bot.handle(OccupantPresence(room=room, nick=nick, available=True, real_jid=f"{nick.lower()}@localhost"),
                      0.0, 0.0)


def test_quiet_above_defaults_to_one_hundred_and_refuses_negative_values() -> None:
    assert load_config(None, {}).extensions["quizbot"].settings.quiet_above == 100
    assert load_config(None, {"quizbot.quiet_above": 0}).extensions["quizbot"].settings.quiet_above == 0
    with pytest.raises(ConfigError, match=r"^quizbot\.quiet_above: must be 0"):
        load_config(None, {"quizbot.quiet_above": -1})


def replies(orders: list[Order]) -> list[tuple[str, bool]]:
    return [(order.to, order.groupchat) for order in orders if isinstance(order, Send)]


@pytest.mark.parametrize("command", ["!frobnicate", "!stop", "!join", "!start", "!hint", "!quiz live 3 nosuchcategory"])
def test_in_a_crowded_room_a_command_is_answered_to_its_sender_alone(command: str) -> None:
    """Above quiet_above occupants a reply to the room would make each player's command (6 per 10 s each) a
    message to the whole crowd: an amplifier for anyone in it. Below, the room hears the reply as before."""
    bot = make_bot(quiet_above=3)
    for nick in ("Ann", "Ben", "Cat"):
        arrive(bot, nick)
    assert replies(bot.handle(RoomMessage(room=ROOM, nick="Cat", body=command), 0.0, 0.0)) == [(ROOM, True)]
    arrive(bot, "Dan")   # four: a crowd
    assert replies(bot.handle(RoomMessage(room=ROOM, nick="Cat", body=command), 20.0, 20.0)) == [
        ("cat@localhost", False)]


def lobby_announcements(orders: list[Order]) -> list[tuple[str, bool, str | None]]:
    """(to, groupchat, players) of each message carrying the lobby's <game/>."""
    return [(order.to, order.groupchat, game.get("players")) for order in orders if isinstance(order, Send)
            for game in order.payload if etree.QName(game).localname == "game" and game.get("state") == "lobby"]


def test_in_a_crowded_room_the_lobby_is_announced_paced_not_once_per_join() -> None:
    """Each !join announced to the room is a message to the whole room: N² for a lobby of N players (4 million for
    2,000). In a crowd the joiner is told privately at once and the room at most once an interval, as <progress/>."""
    bot = make_bot(quiet_above=3)
    nicks = ["Ann", "Ben", "Cat", "Dan", "Eve", "Fay"]
    for nick in nicks:
        arrive(bot, nick)
    bot.handle(RoomMessage(room=ROOM, nick="Ann", body="!quiz classic 3"), 0.0, 0.0)
    to_room: list[tuple[str, bool, str | None]] = []
    for n, nick in enumerate(nicks[1:], start=1):
        announced = lobby_announcements(bot.handle(RoomMessage(room=ROOM, nick=nick, body="!join"), n / 10, n / 10))
        # The joiner, privately, at once (the opener is in the lobby already).
        assert (f"{nick.lower()}@localhost", False, str(n + 1)) in announced
        to_room += [a for a in announced if a[0] == ROOM]
    assert to_room == [(ROOM, True, "2")]  # the first join; then nothing for an interval
    deadline = bot.next_deadline()
    assert deadline is not None and deadline <= 1.1
    assert lobby_announcements(bot.tick(deadline, deadline)) == [(ROOM, True, "6")]
    assert bot.next_deadline() is None


def test_below_the_crowd_every_join_is_announced_to_the_room() -> None:
    bot = make_bot(quiet_above=10)
    for nick in ("Ann", "Ben", "Cat"):
        arrive(bot, nick)
    bot.handle(RoomMessage(room=ROOM, nick="Ann", body="!quiz classic 3"), 0.0, 0.0)
    for n, nick in enumerate(("Ben", "Cat"), start=1):
        assert lobby_announcements(bot.handle(RoomMessage(room=ROOM, nick=nick, body="!join"), n / 10, n / 10)) == [
            (ROOM, True, str(n + 1))]
