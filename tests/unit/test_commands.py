"""The chat command grammar: English names, German aliases, usage hints for anything malformed."""

from __future__ import annotations

from dataclasses import fields
from typing import assert_never

import pytest

from quizbot.commands import (
    ADMIN_ACTIONS,
    Admin,
    AdminAccept,
    AdminBan,
    AdminGive,
    AdminJoin,
    AdminReview,
    AdminRooms,
    Categories,
    Command,
    Help,
    Hint,
    Invite,
    Join,
    Lang,
    NewGame,
    Period,
    Pin,
    Quiz,
    Repeat,
    Report,
    Score,
    Skip,
    Start,
    Stats,
    Stop,
    Submit,
    Top,
    UsageError,
    admin_line,
    may_run,
    parse,
    skip_is_direct,
)
from quizbot.game import Mode


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!help", Help()),
        ("!hilfe", Help()),
        ("!quiz", Quiz(mode=Mode.CLASSIC)),
        ("!quiz live 10 geografie de", Quiz(mode=Mode.LIVE, count=10, category="geografie", language="de")),
        ("!spiel sixbreak 12", Quiz(mode=Mode.SIXBREAK, count=12)),
        ("!QUIZ en Music", Quiz(mode=Mode.CLASSIC, category="music", language="en")),
        ("!mitmachen", Join()),
        ("!tipp", Hint()),
        ("!stopp", Stop()),
        ("!top week 5", Top(period=Period.WEEK, count=5)),
        ("!bestenliste woche", Top(period=Period.WEEK, count=10)),
        ("!top", Top(period=Period.ALL, count=10)),
        ("!sprache de", Lang(language="de")),
        ("!kategorien EN", Categories(language="en")),
        ("!categories", Categories(language=None)),
        ("!melden The answer is wrong", Report(text="The answer is wrong")),
        (
            "!submit Capital of France? | Paris | Lyon | Nice | Lille | https://en.wikipedia.org/wiki/Paris",
            Submit(question="Capital of France?", answer="Paris", wrong=("Lyon", "Nice", "Lille"),
                   source="https://en.wikipedia.org/wiki/Paris"),
        ),
        ("!neuesspiel Quiz Night", NewGame(name="Quiz Night")),
        ("!newgame", NewGame(name=None)),
        ("!spielpin 123456", Pin(pin="123456")),
        ("!einladen bob@localhost carol@localhost", Invite(jids=("bob@localhost", "carol@localhost"))),
        ("!admin give bob@localhost 50", Admin(action=AdminGive(jid="bob@localhost", points=50))),
        ("!admin give bob@localhost -7", Admin(action=AdminGive(jid="bob@localhost", points=-7))),
        ("!admin JOIN Quiz@Conference.Localhost", Admin(action=AdminJoin(room="quiz@conference.localhost"))),
        ("!admin ban bob@localhost", Admin(action=AdminBan(jid="bob@localhost"))),
        ("!admin accept 12", Admin(action=AdminAccept(id=12))),
        ("!admin review", Admin(action=AdminReview())),
        ("!admin rooms", Admin(action=AdminRooms())),
    ],
)
def test_commands_parse(text: str, expected: Command) -> None:
    assert parse(text) == expected


def test_admin_actions_read_back_as_normalised_command_lines() -> None:
    assert admin_line(AdminGive(jid="bob@localhost", points=-7)) == "give bob@localhost -7"
    assert admin_line(AdminAccept(id=12)) == "accept 12"
    assert admin_line(AdminRooms()) == "rooms"


def test_every_admin_action_word_parses_into_its_own_class_with_its_arity() -> None:
    sample = {0: [], 1: ["7"], 2: ["bob@localhost", "3"]}
    for word, arity in ADMIN_ACTIONS.items():
        arguments = sample[arity] if word not in ("join", "leave", "stop", "ban", "unban") else ["bob@localhost"]
        parsed = parse(" ".join(["!admin", word, *arguments]))
        assert isinstance(parsed, Admin), word
        assert parsed.action.name == word and len(fields(parsed.action)) == arity
        assert admin_line(parsed.action) == " ".join([word, *arguments])


def test_commands_are_frozen_and_carry_only_their_own_arguments() -> None:
    quiz = parse("!quiz live 5")
    assert isinstance(quiz, Quiz)
    assert not hasattr(quiz, "__dict__")  # slotted: no stray attributes
    with pytest.raises(AttributeError):
        quiz.count = 6  # type: ignore[misc]
    assert not hasattr(Top(period=Period.ALL, count=3), "text")


def _describe(command: Command) -> str:
    """A consumer in the style of the bot: mypy fails this file if a command class is left unhandled."""
    match command:
        case Quiz(mode=mode):
            return f"quiz {mode.value}"
        case Top(period=period, count=count):
            return f"top {period.value} {count}"
        case Admin(action=action):
            return f"admin {admin_line(action)}"
        case (Help() | Join() | Start() | Stop() | Skip() | Hint() | Repeat() | Score() | Stats() | Categories()
              | Lang() | Report() | Submit() | NewGame() | Invite() | Pin()):
            return type(command).__name__.casefold()
        case _:
            assert_never(command)


def test_every_parsed_command_is_one_of_the_union() -> None:
    assert _describe(Quiz(mode=Mode.LIVE)) == "quiz live"
    texts = ["!help", "!join", "!start", "!stop", "!skip", "!hint", "!repeat", "!score", "!stats", "!categories",
             "!lang en", "!report x", "!newgame", "!invite a@b", "!pin 123456", "!top day 3", "!admin stats"]
    described = []
    for text in texts:
        command = parse(text)
        assert command is not None and not isinstance(command, UsageError), text
        described.append(_describe(command))
    assert described[-2:] == ["top day 3", "admin stats"]


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("!frobnicate", "frobnicate"),
        ("!quiz live live", "quiz"),
        ("!quiz 999", "quiz"),
        ("!lang fr", "lang"),
        ("!report", "report"),
        ("!submit only | three | fields", "submit"),
        ("!submit q | a | w1 | w2 | w3 | not-a-url", "submit"),
        ("!invite bob", "invite"),
        ("!admin", "admin"),
        ("!admin give bob@localhost lots", "admin"),
        ("!admin explode", "admin"),
        ("!top month", "top"),
        ("!hint now please", "hint"),
    ],
)
def test_malformed_commands_get_a_one_line_usage_hint(text: str, command: str) -> None:
    result = parse(text)
    assert isinstance(result, UsageError) and result.command == command
    assert result.hint and "\n" not in result.hint


@pytest.mark.parametrize("text", ["hello", "Paris", "", "!"])
def test_ordinary_chat_is_not_a_command(text: str) -> None:
    assert parse(text) is None


def test_admin_commands_only_for_bot_admins_and_start_only_for_the_opener_or_moderators() -> None:
    admin = parse("!admin stats")
    start = parse("!start")
    assert isinstance(admin, Admin) and isinstance(start, Start)
    assert not may_run(admin, is_admin=False, is_opener=True, is_moderator=True)
    assert may_run(admin, is_admin=True, is_opener=False, is_moderator=False)
    assert not may_run(start, is_admin=False, is_opener=False, is_moderator=False)
    assert may_run(start, is_admin=False, is_opener=True, is_moderator=False)
    assert not skip_is_direct(is_admin=False, is_opener=False, is_moderator=False)
    assert skip_is_direct(is_admin=False, is_opener=False, is_moderator=True)
