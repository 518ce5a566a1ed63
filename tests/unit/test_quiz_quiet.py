"""When a room the bot owns goes quiet (issue 14): above `quiet_above` occupants it broadcasts only moderators'
presence, and every role again only below half of it, so a room hovering at the threshold does not flap."""

from __future__ import annotations

import random

import pytest

from boshcm.config import load_config
from boshcm.toml_config import ConfigError
from quizbot.bot import BotSettings, QuizBot
from quizbot.events import OccupantPresence, RoomEntered
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


def test_the_bot_counts_the_occupants_it_sees_in_the_room() -> None:
    bot = QuizBot(settings=BotSettings(jid="quiz@localhost", muc_domain="conference.localhost", quiet_above=3),
                  banks=BankSet([]), bank_report=[], rng=random.Random(1))
    bot.handle(RoomEntered(room=ROOM), 0.0, 0.0)
    wanted = []
    for index, nick in enumerate(("Ann", "Ben", "Cat", "Dan")):
        bot.handle(OccupantPresence(room=ROOM, nick=nick, available=True, real_jid=f"p{index}@localhost"), 0.0, 0.0)
        wanted.append(bot.quiet_wanted(ROOM, quiet=False))
    assert wanted == [False, False, False, True]
    for nick in ("Dan", "Cat", "Ben"):
        bot.handle(OccupantPresence(room=ROOM, nick=nick, available=False), 0.0, 0.0)
    assert bot.quiet_wanted(ROOM, quiet=True) is False   # one left: below half of 3
    assert bot.quiet_wanted("elsewhere@conference.localhost", quiet=True) is True   # a room it does not know: as is


def test_quiet_above_defaults_to_one_hundred_and_refuses_negative_values() -> None:
    assert load_config(None, {}).extensions["quizbot"].settings.quiet_above == 100
    assert load_config(None, {"quizbot.quiet_above": 0}).extensions["quizbot"].settings.quiet_above == 0
    with pytest.raises(ConfigError, match=r"^quizbot\.quiet_above: must be 0"):
        load_config(None, {"quizbot.quiet_above": -1})
