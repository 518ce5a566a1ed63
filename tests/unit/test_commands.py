"""The chat command grammar: English names, German aliases, usage hints for anything malformed."""

from __future__ import annotations

import pytest

from quizbot.commands import Command, UsageError, may_run, parse, skip_is_direct


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!help", Command(name="help")),
        ("!hilfe", Command(name="help")),
        ("!quiz", Command(name="quiz", mode="classic")),
        (
            "!quiz live 10 geografie de",
            Command(name="quiz", mode="live", count=10, category="geografie", language="de"),
        ),
        ("!spiel sixbreak 12", Command(name="quiz", mode="sixbreak", count=12)),
        ("!QUIZ en Music", Command(name="quiz", mode="classic", category="music", language="en")),
        ("!mitmachen", Command(name="join")),
        ("!tipp", Command(name="hint")),
        ("!stopp", Command(name="stop")),
        ("!top week 5", Command(name="top", period="week", count=5)),
        ("!bestenliste woche", Command(name="top", period="week", count=10)),
        ("!top", Command(name="top", period="all", count=10)),
        ("!sprache de", Command(name="lang", language="de")),
        ("!melden The answer is wrong", Command(name="report", text="The answer is wrong")),
        (
            "!submit Capital of France? | Paris | Lyon | Nice | Lille | https://en.wikipedia.org/wiki/Paris",
            Command(
                name="submit",
                fields=("Capital of France?", "Paris", "Lyon", "Nice", "Lille", "https://en.wikipedia.org/wiki/Paris"),
            ),
        ),
        ("!einladen bob@localhost carol@localhost", Command(name="invite", jids=("bob@localhost", "carol@localhost"))),
        ("!admin give bob@localhost 50", Command(name="admin", action="give", arguments=("bob@localhost", "50"))),
        ("!admin rooms", Command(name="admin", action="rooms")),
    ],
)
def test_commands_parse(text: str, expected: Command) -> None:
    assert parse(text) == expected


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
    assert isinstance(admin, Command) and isinstance(start, Command)
    assert not may_run(admin, is_admin=False, is_opener=True, is_moderator=True)
    assert may_run(admin, is_admin=True, is_opener=False, is_moderator=False)
    assert not may_run(start, is_admin=False, is_opener=False, is_moderator=False)
    assert may_run(start, is_admin=False, is_opener=True, is_moderator=False)
    assert not skip_is_direct(is_admin=False, is_opener=False, is_moderator=False)
    assert skip_is_direct(is_admin=False, is_opener=False, is_moderator=True)
