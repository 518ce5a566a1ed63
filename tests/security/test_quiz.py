"""The quiz bot under attack, without sockets: out-of-range command arguments, fuzzed command lines, repeated
answers, and quiz payloads forged by other occupants. (Over real sockets: tests/integration/test_quizbot.py;
in a browser: tests/interop/test_quiz_page_security.py.)"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from quizbot.commands import ADMIN_ACTIONS, ALIASES, UsageError, parse
from quizbot.events import PrivateMessage, RoomMessage, Send
from quizbot.matching import match_choice, parse_number
from quizbot.payload import NS, AnswerPayload
from quizbot.store import QuizStore
from tests.unit.test_quiz_bot import PLAYERS, ROOM, Harness, payload, sends

HUGE = "9" * 10_000
ADMIN = ("Root", "root@localhost", "participant")


@pytest.mark.parametrize("text", [
    f"!top all {HUGE}", f"!top {HUGE}", "!top ²", "!top ١٢",
    f"!quiz live {HUGE}", "!quiz live ²", f"!quiz live 5 {'c' * 1000}",
    f"!report {'x' * 5000}",
    f"!submit {'q' * 5000} | a | b | c | d | https://example.org/",
    f"!submit q | a | b | c | d | https://example.org/{'x' * 5000}",
    "!invite " + " ".join(f"friend{n}@localhost" for n in range(100)),
    "!invite a@b@c", "!invite @localhost", f"!invite {'x' * 5000}@localhost",
    f"!admin give bob@localhost {HUGE}", "!admin give bob@localhost ²", "!admin give bob@localhost 99999999999",
    "!admin give not-a-jid 5", "!admin accept ²", f"!admin accept {HUGE}", "!admin reject 99999999999999999999",
    f"!admin ban {'x' * 5000}", "!admin join not a room", "!admin join a@b@c",
])
def test_out_of_range_arguments_get_the_usage_hint(text: str) -> None:
    result = parse(text)
    assert isinstance(result, UsageError), result
    assert result.hint and "\n" not in result.hint and len(result.hint) < 200


@pytest.mark.parametrize("text", [f"!top all {HUGE}", "!admin accept 99999999999999999999", "!admin give "
                                  f"bob@localhost {HUGE}", "!admin accept ²", "!quiz live ²"])
def test_the_bot_answers_out_of_range_arguments_with_a_usage_line(text: str) -> None:
    h = Harness()
    h.enter(*PLAYERS, ADMIN)
    replies = sends(h.say("Root", text))
    assert len(replies) == 1 and replies[0].body.startswith("Usage: !")


def test_a_long_digit_string_is_no_choice_and_no_crash() -> None:
    assert match_choice("1" * 5000, ["a", "b", "c", "d"], 0, "en") is None
    match_choice("²", ["a", "b", "c", "d"], 0, "en")  # NFKD reads it as "2": choice B, and no exception
    assert parse_number("hundert" * 1400, "de") is None  # was a RecursionError


@pytest.mark.parametrize("answer", ["1" * 5000, "hundert" * 1400, "Paris " * 2000, "²"])
def test_huge_answers_to_any_kind_of_question_are_ignored_without_an_exception(answer: str) -> None:
    h = Harness()
    h.enter(*PLAYERS)
    for category in ("geo", "music"):
        h.say("Ann", f"!quiz live 1 {category}")
        h.say("Ann", "!start")
        h.say("Ben", answer)
        h.feed(PrivateMessage(sender="ann@localhost/x", body=answer, answer=AnswerPayload(question_id=None,
                                                                                         choice=None)))
        h.say("Ann", "!stop")
        h.advance(5.0)


COMMAND_WORDS = sorted(ALIASES)  # the canonical names; the aliases map to them
NUMBER = st.one_of(st.sampled_from(["²", "½", "١٢", "0", "-1", HUGE]), st.from_regex(r"-?[0-9]{1,30}", fullmatch=True),
                   st.integers(1, 10_000).map(lambda n: "9" * n),
                   st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=12))
ARGUMENT = st.one_of(st.sampled_from([*COMMAND_WORDS, *ADMIN_ACTIONS, "live", "sixbreak", "de", "en", "all", "week",
                                      "|", "bob@localhost", "a@b@c", "https://x.org/", "-"]),
                     NUMBER, NUMBER, st.text(max_size=40))
LINE = st.one_of(
    st.text(max_size=10_000).map(lambda text: "!" + text),
    st.builds(lambda word, args: " ".join([f"!{word}", *args]), st.sampled_from(COMMAND_WORDS),
              st.lists(ARGUMENT, max_size=4)),
    st.builds(lambda word, args, tail: " ".join([f"!{word}", *args, tail]), st.sampled_from(COMMAND_WORDS),
              st.lists(ARGUMENT, max_size=3), st.text(max_size=10_000)),
    st.builds(lambda action, args: " ".join(["!admin", action, *args]), st.sampled_from(sorted(ADMIN_ACTIONS)),
              st.lists(ARGUMENT, max_size=3)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=LINE, private=st.booleans(), in_game=st.booleans())
def test_any_command_line_gets_a_reply_or_nothing_never_an_exception(line: str, private: bool,
                                                                     in_game: bool) -> None:
    h = Harness()
    h.enter(*PLAYERS, ADMIN)
    if in_game:
        h.say("Ann", "!quiz live 2 geo")
        h.say("Ann", "!start")
    fact = (PrivateMessage(sender="root@localhost/desk", body=line) if private
            else RoomMessage(room=ROOM, nick="Root", body=line))
    orders = h.feed(fact)
    for send in sends(orders):
        assert isinstance(send, Send) and "Traceback" not in send.body
    parse(line)  # the grammar alone, too


# --- repeated answers ------------------------------------------------------------------------------


def test_the_store_records_one_answer_per_player_and_question() -> None:
    store = QuizStore(":memory:")
    for _ in range(3):
        store.answer(game_id="g", question_id="q1", player="ann@localhost", correct=True, points=0, seconds=None,
                     wall=1.0)
    store.answer(game_id="g", question_id="q2", player="ann@localhost", correct=False, points=0, seconds=None,
                 wall=2.0)
    store.answer(game_id="g", question_id="q1", player="ben@localhost", correct=False, points=0, seconds=None,
                 wall=3.0)
    counts = store.counts()
    assert counts["answers"] == 3 and counts["correct"] == 1


def test_a_repeated_answer_writes_no_second_row_and_changes_no_points() -> None:
    h = Harness(QuizStore(":memory:"))
    h.enter(*PLAYERS, ("Cat", "cat@localhost", "participant"))
    h.say("Ann", "!quiz live 1 geo")
    question = payload(h.say("Ann", "!start"), "question")
    h.clock.advance(1.0)
    h.say("Ann", "Paris")
    for _ in range(2):  # the same right answer again, by chat and as a payload, within the rate limit
        h.clock.advance(1.0)
        h.say("Ann", "Paris", AnswerPayload(question_id=question.get("id"), choice=None))
    h.say("Ben", "Lyon")
    h.clock.advance(1.0)
    h.say("Ben", "Paris")  # too late: his first attempt counts
    counts = h.store.counts()
    assert counts["answers"] == 2 and counts["correct"] == 1
    reveal = payload(h.say("Cat", "paris"), "reveal")
    points = {s.get("nick"): int(s.get("points", "")) for s in reveal.findall(f"{{{NS}}}scorer")}
    assert set(points) == {"Ann", "Cat"}
    assert h.store.counts()["correct"] == 2
    board = {player: pts for player, _nick, pts in h.store.leaderboard("all", wall=h.clock.wall())}
    assert board == {"ann@localhost": points["Ann"], "cat@localhost": points["Cat"]}


# --- payloads only from the bot ----------------------------------------------------------------------


def forged(name: str, **attributes: str) -> etree._Element:
    element = etree.Element(f"{{{NS}}}{name}", nsmap={None: NS})
    for key, value in attributes.items():
        element.set(key, value)
    return element


def test_the_bot_ignores_room_messages_carrying_bot_payloads_from_others() -> None:
    h = Harness(QuizStore(":memory:"))
    h.enter(*PLAYERS)
    h.say("Ann", "!quiz live 1 geo")
    question = payload(h.say("Ann", "!start"), "question")
    h.clock.advance(1.0)
    # Ben forges the bot's payloads; the bot neither answers, nor counts, nor stores anything from them.
    assert h.feed(RoomMessage(room=ROOM, nick="Ben", body="!score", quiz_payloads=("scores",))) == []
    assert h.feed(RoomMessage(room=ROOM, nick="Ben", body="Paris", quiz_payloads=("question",),
                              reflected_question=question.get("id"))) == []
    assert h.store.counts()["answers"] == 0
    # his ordinary answer still counts
    orders = h.say("Ben", "Paris")
    assert h.store.counts()["correct"] == 1, orders
