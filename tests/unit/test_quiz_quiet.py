"""When a room the bot owns goes quiet (issue 14): above `quiet_above` occupants it broadcasts only moderators'
presence, and every role again only below half of it, so a room hovering at the threshold does not flap."""

from __future__ import annotations

import random

import pytest

from boshcm.config import load_config
from boshcm.toml_config import ConfigError
from quizbot.bot import BotSettings, QuizBot
from quizbot.events import (
    OccupantPresence,
    Order,
    RoomEntered,
    RoomLeft,
    RoomMessage,
    RoomQuietKnown,
    RoomQuietSet,
    Send,
    SetRoomQuiet,
)
from quizbot.questions import BankSet
from quizbot.room import quiet_wanted

ROOM = "quiz@conference.localhost"


def test_a_room_goes_quiet_above_the_threshold_and_loud_only_below_half_of_it() -> None:
    assert [quiet_wanted(n, quiet_above=100, quiet=False) for n in (99, 100, 101)] == [False, False, True]
    # Once quiet it stays so down to half: a crowd of 100 coming and going around the threshold costs no forms.
    assert [quiet_wanted(n, quiet_above=100, quiet=True) for n in (101, 100, 51, 50, 49)] == [
        True, True, True, True, False]


def test_zero_means_never_quiet() -> None:
    assert not quiet_wanted(5_000, quiet_above=0, quiet=False)
    assert not quiet_wanted(5_000, quiet_above=0, quiet=True)   # and a quiet room is opened again


def make_bot(quiet_above: int = 3) -> QuizBot:
    bot = QuizBot(settings=BotSettings(jid="quiz@localhost", muc_domain="conference.localhost",
                                       quiet_above=quiet_above), banks=BankSet([]), bank_report=[],
                  rng=random.Random(1))
    bot.handle(RoomEntered(room=ROOM), 0.0, 0.0)
    return bot


def arrive(bot: QuizBot, nick: str, room: str = ROOM) -> list[Order]:
    return bot.handle(OccupantPresence(room=room, nick=nick, available=True, real_jid=f"{nick.lower()}@localhost"),
                      0.0, 0.0)


def leave(bot: QuizBot, nick: str, room: str = ROOM) -> list[Order]:
    return bot.handle(OccupantPresence(room=room, nick=nick, available=False), 0.0, 0.0)


def quiet_orders(orders: list[Order]) -> list[SetRoomQuiet]:
    return [order for order in orders if isinstance(order, SetRoomQuiet)]


def test_the_bot_orders_a_room_quiet_above_the_threshold_and_loud_only_below_half_of_it() -> None:
    bot = make_bot()
    assert quiet_orders(bot.handle(RoomQuietKnown(room=ROOM, may_quiet=True, quiet=False), 0.0, 0.0)) == []
    assert [quiet_orders(arrive(bot, nick)) for nick in ("Ann", "Ben", "Cat")] == [[], [], []]
    assert quiet_orders(arrive(bot, "Dan")) == [SetRoomQuiet(room=ROOM, quiet=True)]   # four: above 3
    assert quiet_orders(bot.handle(RoomQuietSet(room=ROOM, quiet=True, ok=True), 0.0, 0.0)) == []
    # Two left of four: not below half of 3 yet; one more leaving is.
    assert [quiet_orders(leave(bot, nick)) for nick in ("Dan", "Cat")] == [[], []]
    assert quiet_orders(leave(bot, "Ben")) == [SetRoomQuiet(room=ROOM, quiet=False)]
    assert quiet_orders(bot.handle(RoomQuietSet(room=ROOM, quiet=False, ok=True), 0.0, 0.0)) == []
    assert quiet_orders(arrive(bot, "Ben")) == []


def test_a_room_already_quiet_when_learnt_is_opened_at_once_if_nearly_empty() -> None:
    bot = make_bot()
    arrive(bot, "Ann")
    orders = bot.handle(RoomQuietKnown(room=ROOM, may_quiet=True, quiet=True), 0.0, 0.0)
    assert quiet_orders(orders) == [SetRoomQuiet(room=ROOM, quiet=False)]


def test_no_second_order_while_one_is_in_flight() -> None:
    bot = make_bot()
    bot.handle(RoomQuietKnown(room=ROOM, may_quiet=True, quiet=False), 0.0, 0.0)
    for nick in ("Ann", "Ben", "Cat"):
        arrive(bot, nick)
    assert quiet_orders(arrive(bot, "Dan")) == [SetRoomQuiet(room=ROOM, quiet=True)]
    assert [quiet_orders(arrive(bot, nick)) for nick in ("Eve", "Fay")] == [[], []]   # the form is on its way


def test_occupancy_that_moved_while_in_flight_is_checked_again_when_the_change_is_done() -> None:
    bot = make_bot()
    bot.handle(RoomQuietKnown(room=ROOM, may_quiet=True, quiet=False), 0.0, 0.0)
    for nick in ("Ann", "Ben", "Cat"):
        arrive(bot, nick)
    assert quiet_orders(arrive(bot, "Dan")) == [SetRoomQuiet(room=ROOM, quiet=True)]
    for nick in ("Dan", "Cat", "Ben"):   # the crowd left before the room answered
        assert quiet_orders(leave(bot, nick)) == []
    orders = bot.handle(RoomQuietSet(room=ROOM, quiet=True, ok=True), 0.0, 0.0)
    assert quiet_orders(orders) == [SetRoomQuiet(room=ROOM, quiet=False)]


def test_a_failed_change_stops_the_bot_managing_that_room() -> None:
    bot = make_bot()
    bot.handle(RoomQuietKnown(room=ROOM, may_quiet=True, quiet=False), 0.0, 0.0)
    for nick in ("Ann", "Ben", "Cat"):
        arrive(bot, nick)
    assert quiet_orders(arrive(bot, "Dan")) == [SetRoomQuiet(room=ROOM, quiet=True)]
    assert quiet_orders(bot.handle(RoomQuietSet(room=ROOM, quiet=True, ok=False), 0.0, 0.0)) == []
    # Each try would cost the room a form: neither more players nor an empty room bring another order.
    assert quiet_orders(arrive(bot, "Eve")) == []
    assert [quiet_orders(leave(bot, nick)) for nick in ("Eve", "Dan", "Cat", "Ben", "Ann")] == [[]] * 5


def test_a_room_without_the_feature_never_gets_the_order() -> None:
    bot = make_bot()
    other = "other@conference.localhost"
    bot.handle(RoomEntered(room=other), 0.0, 0.0)
    # ROOM: the adapter found no urn:boshcm:muc:moderators-see-all:0; `other`: the adapter never said anything.
    bot.handle(RoomQuietKnown(room=ROOM, may_quiet=False, quiet=False), 0.0, 0.0)
    orders = [order for nick in ("Ann", "Ben", "Cat", "Dan", "Eve") for room in (ROOM, other)
              for order in arrive(bot, nick, room)]
    assert quiet_orders(orders) == []


def test_a_room_the_bot_left_or_lost_ownership_of_is_no_longer_managed() -> None:
    bot = make_bot()
    bot.handle(RoomQuietKnown(room=ROOM, may_quiet=True, quiet=False), 0.0, 0.0)
    bot.handle(RoomLeft(room=ROOM), 0.0, 0.0)
    bot.handle(RoomEntered(room=ROOM), 0.0, 0.0)
    assert quiet_orders([order for nick in ("Ann", "Ben", "Cat", "Dan") for order in arrive(bot, nick)]) == []
    # Learnt again after the rejoin, then the ownership is lost (the adapter says it may no longer).
    assert quiet_orders(bot.handle(RoomQuietKnown(room=ROOM, may_quiet=True, quiet=False), 0.0, 0.0)) == [
        SetRoomQuiet(room=ROOM, quiet=True)]
    bot.handle(RoomQuietSet(room=ROOM, quiet=True, ok=True), 0.0, 0.0)
    bot.handle(RoomQuietKnown(room=ROOM, may_quiet=False, quiet=False), 0.0, 0.0)
    assert [quiet_orders(leave(bot, nick)) for nick in ("Dan", "Cat", "Ben", "Ann")] == [[]] * 4


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
