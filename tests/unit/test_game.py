"""The quiz game machine with explicit time: classic, live and sixbreak."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from boshcm.toml_config import ConfigError
from quizbot.game import (
    AnswerGiven,
    AskQuestion,
    AwardPoints,
    Begin,
    Eliminate,
    GameEnded,
    GameSettings,
    GetReady,
    HintRequested,
    Mode,
    Pause,
    PlayerJoined,
    PlayerLeft,
    QuestionReflected,
    QuizGame,
    RevealAnswer,
    RoundTripMeasured,
    ShowHint,
    SkipRequested,
    StopRequested,
)
from quizbot.questions import Question, QuestionKind


def text_question(n: int, answer: str = "Zugspitze") -> Question:
    return Question(
        id=f"q{n}",
        language="de",
        category="geo",
        difficulty=1,
        kind=QuestionKind.TEXT,
        question=f"Frage {n}?",
        answer=answer,
        source="https://example.org",
    )


def choice_question(n: int) -> Question:
    return Question(
        id=f"c{n}",
        language="en",
        category="music",
        difficulty=1,
        kind=QuestionKind.CHOICE,
        question=f"Choice {n}?",
        answer="Mozart",
        wrong=("Bach", "Haydn", "Handel"),
        source="https://example.org",
    )


# Without the get-ready pause, the first question comes with Begin; the pause has tests of its own at the end.
SETTINGS = GameSettings(question_seconds=20, hint_interval_seconds=5, reveal_seconds=3, break_seconds=30,
                        get_ready_seconds=0)


def game(mode: Mode, questions: list[Question], players: tuple[str, ...] = ("ann", "ben")) -> QuizGame:
    quiz = QuizGame(mode=mode, questions=questions, settings=SETTINGS, rng=random.Random(7))
    for player in players:
        quiz.handle(PlayerJoined(player=player, nick=player.title()), 0.0)
    return quiz


def of(actions: list[object], kind: type) -> list:  # type: ignore[type-arg]
    return [action for action in actions if isinstance(action, kind)]


def answer(quiz: QuizGame, player: str, text: str, now: float, choice: str | None = None) -> list[object]:
    return quiz.handle(AnswerGiven(player=player, nick=player.title(), text=text, choice=choice), now)


def test_ask_never_carries_the_answer() -> None:
    quiz = game(Mode.CLASSIC, [text_question(1)])
    (ask,) = quiz.handle(Begin(), 0.0)
    assert isinstance(ask, AskQuestion)
    assert "Zugspitze" not in repr(ask)


def test_classic_first_correct_answer_wins_and_hints_halve_the_points() -> None:
    quiz = game(Mode.CLASSIC, [text_question(1), text_question(2)])
    quiz.handle(Begin(), 0.0)
    (hint,) = quiz.handle_timeout(5.0)
    assert isinstance(hint, ShowHint) and hint.points_now == 50 and hint.pattern.startswith("Z")
    assert answer(quiz, "ann", "Matterhorn", 6.0) == []
    out = answer(quiz, "ben", "zugspitze", 7.0)
    (award,) = of(out, AwardPoints)
    assert award.player == "ben" and award.points == 50
    assert of(out, RevealAnswer)[0].answer == "Zugspitze"
    assert answer(quiz, "ann", "Zugspitze", 7.5) == []  # the question is closed
    (next_question,) = quiz.handle_timeout(10.0)
    assert isinstance(next_question, AskQuestion) and next_question.index == 2


def test_classic_unanswered_question_is_revealed_at_the_deadline() -> None:
    quiz = game(Mode.CLASSIC, [text_question(1), text_question(2)])
    quiz.handle(Begin(), 0.0)
    for t in (5.0, 10.0, 15.0):
        assert of(quiz.handle_timeout(t), ShowHint)
    (reveal,) = quiz.handle_timeout(20.0)
    assert isinstance(reveal, RevealAnswer) and reveal.scorers == ()


def test_live_speed_scoring_follows_the_formula_and_locks_when_all_answered() -> None:
    quiz = game(Mode.LIVE, [text_question(1), text_question(2)])
    quiz.handle(Begin(), 0.0)
    quiz.handle(QuestionReflected(), 1.0)  # the clock starts at the reflection
    (fast,) = of(answer(quiz, "ann", "Zugspitze", 1.5), AwardPoints)
    assert fast.points == 1000  # under 0.5 s after the grace
    out = answer(quiz, "ben", "Zugspitze", 11.15)  # t = 10 s: P * (1 - 10/40)
    (slow,) = of(out, AwardPoints)
    assert slow.points == 750 and slow.seconds == 10.0
    assert of(out, RevealAnswer)  # everyone answered: locked before the deadline


def test_live_first_attempt_counts_and_latency_credit_is_capped() -> None:
    quiz = game(Mode.LIVE, [text_question(1)])
    quiz.handle(RoundTripMeasured(player="ann", seconds=5.0), 0.0)  # capped at 1 s: credit 0.5 s
    quiz.handle(Begin(), 0.0)
    assert not of(answer(quiz, "ben", "Matterhorn", 2.0), AwardPoints)
    assert answer(quiz, "ben", "Zugspitze", 3.0) == []  # no second attempt
    (award,) = of(answer(quiz, "ann", "Zugspitze", 4.65), AwardPoints)
    assert award.seconds == 4.0


def test_live_streak_bonus_grows_and_is_capped() -> None:
    settings = GameSettings(question_seconds=20, streak_bonus=100, streak_cap=150, reveal_seconds=1,
                            get_ready_seconds=0)
    quiz = QuizGame(
        mode=Mode.LIVE, questions=[text_question(n) for n in range(4)], settings=settings, rng=random.Random(1)
    )
    quiz.handle(PlayerJoined(player="ann", nick="Ann"), 0.0)
    now, bonuses = 0.0, []
    for _ in range(4):
        quiz.handle(Begin(), now) if now == 0.0 else quiz.handle_timeout(now)
        (award,) = of(answer(quiz, "ann", "Zugspitze", now + 0.1), AwardPoints)
        bonuses.append(award.points - 1000)
        now += 2.0
    assert bonuses == [0, 100, 150, 150]


def test_answers_before_the_question_and_after_the_deadline_are_ignored() -> None:
    quiz = game(Mode.LIVE, [text_question(1), text_question(2)])
    assert answer(quiz, "ann", "Zugspitze", 0.0) == []
    quiz.handle(Begin(), 1.0)
    assert answer(quiz, "ann", "Zugspitze", 21.5) == []


def test_sixbreak_eliminates_on_a_wrong_answer_and_pauses_after_six_questions() -> None:
    quiz = game(Mode.SIXBREAK, [choice_question(n) for n in range(8)], players=("ann", "ben", "cid"))
    ask = quiz.handle(Begin(), 0.0)[0]
    assert isinstance(ask, AskQuestion) and sorted(ask.choices) == ["Bach", "Handel", "Haydn", "Mozart"]
    wrong_key = "ABCD"[[c != "Mozart" for c in ask.choices].index(True)]
    out = answer(quiz, "cid", "", 1.0, choice=wrong_key)
    assert of(out, Eliminate)[0].player == "cid"
    now = 1.0
    for index in range(6):
        out = answer(quiz, "ann", "Mozart", now + 1) + answer(quiz, "ben", "Mozart", now + 1)
        reveal = of(out, RevealAnswer)
        assert reveal, index
        if index == 5:
            (pause,) = of(out, Pause)
            assert pause.until == now + 1 + 30
            assert quiz.handle_timeout(now + 20) == []
            now = pause.until
        else:
            now += 5
        asked = quiz.handle_timeout(now)
        assert of(asked, AskQuestion)
    assert answer(quiz, "cid", "Mozart", now + 1) == []  # eliminated until the next game


def test_sixbreak_ends_when_one_player_is_left_standing() -> None:
    quiz = game(Mode.SIXBREAK, [choice_question(n) for n in range(5)])
    ask = quiz.handle(Begin(), 0.0)[0]
    assert isinstance(ask, AskQuestion)
    wrong = next(c for c in ask.choices if c != "Mozart")
    answer(quiz, "ben", wrong, 1.0)
    out = answer(quiz, "ann", "Mozart", 2.0)
    (ended,) = of(out, GameEnded)
    assert ended.reason == "last-standing" and ended.scores[0][0] == "ann"


def test_skip_by_vote_needs_half_of_the_players_and_direct_skip_is_immediate() -> None:
    quiz = game(Mode.CLASSIC, [text_question(1), text_question(2)], players=("ann", "ben", "cid", "dan"))
    quiz.handle(Begin(), 0.0)
    assert quiz.handle(SkipRequested(player="ann", direct=False), 1.0) == []
    assert of(quiz.handle(SkipRequested(player="ben", direct=False), 1.0), RevealAnswer)
    quiz.handle_timeout(4.0)
    assert of(quiz.handle(SkipRequested(player="cid", direct=True), 5.0), RevealAnswer)


def test_game_stops_itself_after_too_many_unanswered_questions() -> None:
    quiz = game(Mode.LIVE, [text_question(n) for n in range(10)])
    now = 0.0
    quiz.handle(Begin(), now)
    ended: list[GameEnded] = []
    for _ in range(3):
        now += 20
        ended += of(quiz.handle_timeout(now), GameEnded)
        now += 3
        quiz.handle_timeout(now)
    assert ended and ended[0].reason == "unanswered"


def test_rate_limit_ignores_answer_floods_in_classic() -> None:
    quiz = game(Mode.CLASSIC, [text_question(1)])
    quiz.handle(Begin(), 0.0)
    for guess in ("a1", "b2", "c3"):
        answer(quiz, "ann", guess, 1.0)
    assert answer(quiz, "ann", "Zugspitze", 1.5) == []  # fourth attempt within 2 s
    assert of(answer(quiz, "ann", "Zugspitze", 3.5), AwardPoints)


def test_restart_mid_game_keeps_every_point_and_resumes_with_the_next_question() -> None:
    questions = [text_question(1), text_question(2), text_question(3)]
    quiz = game(Mode.LIVE, questions)
    quiz.handle(Begin(), 0.0)
    answer(quiz, "ann", "Zugspitze", 0.2)
    answer(quiz, "ben", "Zugspitze", 10.15)
    assert of(quiz.handle_timeout(13.2), AskQuestion)  # question 2 is open when the bot dies
    assert of(answer(quiz, "ann", "Zugspitze", 13.5), AwardPoints)
    before = quiz.scores()
    snapshot = json.loads(json.dumps(quiz.snapshot()))  # it goes through the database as JSON

    resumed = QuizGame.restore(snapshot, questions={q.id: q for q in questions}, settings=SETTINGS,
                               rng=random.Random(1), now=500.0)
    assert resumed.scores() == before
    assert resumed.handle_timeout(502.0) == []  # a short pause first, so players see the game is back
    (ask,) = resumed.handle_timeout(503.0)
    assert isinstance(ask, AskQuestion) and ask.question_id == "q3" and ask.index == 3 and ask.total == 3
    (award,) = of(answer(resumed, "ben", "Zugspitze", 503.2), AwardPoints)
    assert award.streak == 2  # streaks survive too
    answer(resumed, "ann", "Zugspitze", 503.3)
    (ended,) = of(resumed.handle_timeout(510.0), GameEnded)
    final, earlier = {p: pts for p, _n, pts in ended.scores}, {p: pts for p, _n, pts in before}
    assert final["ben"] == earlier["ben"] + award.points


def test_restore_drops_questions_that_left_the_banks_and_keeps_eliminations() -> None:
    questions = [choice_question(n) for n in range(1, 5)]
    quiz = game(Mode.SIXBREAK, questions, players=("ann", "ben", "cat"))
    quiz.handle(Begin(), 0.0)
    answer(quiz, "ann", "A", 1.0, choice="A")
    answer(quiz, "ben", "Mozart", 1.0)
    snapshot = quiz.snapshot()
    kept = {q.id: q for q in questions if q.id != "c3"}
    resumed = QuizGame.restore(snapshot, questions=kept, settings=SETTINGS, rng=random.Random(1), now=0.0)
    assert resumed.question_count == 3
    assert [resumed.is_eliminated(p) for p in ("ann", "ben", "cat")] == [quiz.is_eliminated(p) for p in
                                                                         ("ann", "ben", "cat")]
    (ask,) = resumed.handle_timeout(SETTINGS.reveal_seconds)
    assert isinstance(ask, AskQuestion) and ask.question_id == "c2"


def test_sixbreak_ends_when_the_only_player_is_eliminated() -> None:
    quiz = game(Mode.SIXBREAK, [choice_question(n) for n in range(1, 5)], players=("ann",))
    quiz.handle(Begin(), 0.0)
    wrong = "B" if quiz.current_choices[1] != "Mozart" else "C"
    out = answer(quiz, "ann", wrong, 1.0, choice=wrong)
    assert of(out, Eliminate) and of(out, GameEnded)


def test_live_locks_early_only_when_every_present_player_answered() -> None:
    quiz = game(Mode.LIVE, [text_question(1), text_question(2)], players=("ann", "ben", "cat"))
    quiz.handle(Begin(), 0.0)
    assert not of(answer(quiz, "ann", "Zugspitze", 1.0), RevealAnswer)
    assert not of(answer(quiz, "ben", "Zugspitze", 2.0), RevealAnswer)  # still waiting for Cat
    assert of(quiz.handle(PlayerLeft(player="cat"), 3.0), RevealAnswer)  # Cat left: nobody else to wait for
    quiz.handle_timeout(6.0)  # question 2: Cat is gone, so Ann and Ben answering is everyone
    answer(quiz, "ann", "Zugspitze", 7.0)
    assert of(answer(quiz, "ben", "Zugspitze", 8.0), RevealAnswer)
    assert dict((p, pts) for p, _n, pts in quiz.scores())["cat"] == 0  # absent players keep their place


def test_classic_hints_come_on_their_own_after_the_question_is_reflected() -> None:
    quiz = game(Mode.CLASSIC, [text_question(1)])
    quiz.handle(Begin(), 0.0)
    quiz.handle(QuestionReflected(), 0.2)  # the room reflected it: the clock starts now
    assert quiz.next_deadline() == 5.2  # the first hint, not the end of the question
    (first,) = quiz.handle_timeout(5.2)
    assert isinstance(first, ShowHint) and first.points_now == 50
    (second,) = quiz.handle_timeout(10.2)
    assert isinstance(second, ShowHint) and second.points_now == 25


def test_classic_reveals_at_the_deadline_even_after_the_last_hint() -> None:
    settings = GameSettings(question_seconds=30, hint_interval_seconds=5, max_hints=3, get_ready_seconds=0)
    quiz = QuizGame(mode=Mode.CLASSIC, questions=[text_question(1)], settings=settings, rng=random.Random(7))
    quiz.handle(Begin(), 0.0)
    hints = [action for now in (5.0, 10.0, 15.0) for action in quiz.handle_timeout(now)]
    assert [h.points_now for h in of(hints, ShowHint)] == [50, 25, 12]
    assert quiz.next_deadline() == 30.0  # no fourth hint, and no reveal 10 s early
    assert quiz.handle_timeout(20.0) == [] and quiz.question_open
    assert of(quiz.handle_timeout(30.0), RevealAnswer)


# --- getting ready: the first question comes get_ready_seconds after the start ----------------------------------


def getting_ready(mode: Mode, questions: list[Question], players: tuple[str, ...] = ("ann", "ben"),
                  seconds: float = 3.0) -> QuizGame:
    quiz = QuizGame(mode=mode, questions=questions, settings=replace(SETTINGS, get_ready_seconds=seconds),
                    rng=random.Random(7))
    for player in players:
        quiz.handle(PlayerJoined(player=player, nick=player.title()), 0.0)
    return quiz


def test_by_default_the_first_question_comes_three_seconds_after_the_start() -> None:
    assert GameSettings().get_ready_seconds == 3.0
    quiz = getting_ready(Mode.LIVE, [text_question(1), text_question(2)])
    assert quiz.handle(Begin(), 10.0) == [GetReady(until=13.0)]
    assert quiz.next_deadline() == 13.0
    assert not quiz.question_open and not quiz.in_lobby and not quiz.paused and quiz.current_question is None
    assert answer(quiz, "ann", "Zugspitze", 11.0) == []  # nothing to answer yet
    assert quiz.handle(Begin(), 11.0) == []  # started once
    assert quiz.handle_timeout(12.9) == []
    (ask,) = quiz.handle_timeout(13.0)
    assert isinstance(ask, AskQuestion) and (ask.index, ask.total, ask.question_id) == (1, 2, "q1")
    assert quiz.question_deadline() == 33.0  # the question's full time, from its asking
    (award,) = of(answer(quiz, "ann", "Zugspitze", 13.2), AwardPoints)
    assert (award.points, award.seconds) == (1000, 0.05)  # its clock started at the question, not at the start


def test_no_get_ready_pause_asks_the_first_question_with_the_start() -> None:
    quiz = getting_ready(Mode.CLASSIC, [text_question(1)], seconds=0)
    (ask,) = quiz.handle(Begin(), 10.0)
    assert isinstance(ask, AskQuestion) and quiz.question_open


def test_a_negative_get_ready_pause_is_refused() -> None:
    GameSettings(get_ready_seconds=0).validate("quizbot.game")
    with pytest.raises(ConfigError, match=r"^quizbot\.game\.get_ready_seconds: must not be negative"):
        GameSettings(get_ready_seconds=-1).validate("quizbot.game")


def test_skips_and_hints_while_getting_ready_change_nothing() -> None:
    """A skip is about an open question: during the pause it is ignored (skipping the pause would bring back the
    crowd the pause is for), and votes given then do not count for the first question."""
    quiz = getting_ready(Mode.CLASSIC, [text_question(1)], players=("ann", "ben", "cat"))
    quiz.handle(Begin(), 0.0)
    assert quiz.handle(SkipRequested(player="ann", direct=True), 1.0) == []
    assert quiz.handle(SkipRequested(player="ben", direct=False), 1.0) == []
    assert quiz.handle(SkipRequested(player="cat", direct=False), 1.0) == []
    assert quiz.handle(HintRequested(), 1.5) == []
    assert quiz.next_deadline() == 3.0 and not quiz.question_open
    (ask,) = quiz.handle_timeout(3.0)
    assert isinstance(ask, AskQuestion)
    assert quiz.handle(SkipRequested(player="ann", direct=False), 4.0) == []  # one vote of three, not three
    assert of(quiz.handle(SkipRequested(player="ben", direct=False), 4.0), RevealAnswer)  # two of three


def test_stop_while_getting_ready_ends_the_game_before_any_question() -> None:
    quiz = getting_ready(Mode.LIVE, [text_question(1)])
    assert quiz.handle(Begin(), 0.0) == [GetReady(until=3.0)]
    assert quiz.handle(StopRequested(), 1.0) == [
        GameEnded(scores=(("ann", "Ann", 0), ("ben", "Ben", 0)), reason="stopped")]
    assert quiz.ended and quiz.next_deadline() is None
    assert quiz.handle_timeout(3.0) == []


def test_players_come_and_go_while_getting_ready() -> None:
    """Live: whoever comes during the pause plays, whoever leaves is not waited for; sixbreak: players join in the
    lobby only, as after the first question."""
    quiz = getting_ready(Mode.LIVE, [text_question(1), text_question(2)])
    assert quiz.handle(Begin(), 0.0) == [GetReady(until=3.0)]
    assert quiz.handle(PlayerJoined(player="cat", nick="Cat"), 1.0) == []
    assert quiz.handle(PlayerLeft(player="ben"), 2.0) == []  # no question to reveal
    assert of(quiz.handle_timeout(3.0), AskQuestion)
    assert not of(answer(quiz, "ann", "Zugspitze", 4.0), RevealAnswer)
    assert of(answer(quiz, "cat", "Zugspitze", 5.0), RevealAnswer)  # Ann and Cat are everyone in the room

    sixbreak = getting_ready(Mode.SIXBREAK, [choice_question(1)])
    assert sixbreak.handle(Begin(), 0.0) == [GetReady(until=3.0)]
    sixbreak.handle(PlayerJoined(player="dan", nick="Dan"), 1.0)
    assert sixbreak.has_player("ann") and not sixbreak.has_player("dan")


def test_a_game_saved_while_getting_ready_resumes_with_its_first_question() -> None:
    questions = [text_question(1), text_question(2)]
    quiz = getting_ready(Mode.LIVE, questions)
    quiz.handle(Begin(), 0.0)
    snapshot = json.loads(json.dumps(quiz.snapshot()))  # the bot dies during the pause
    resumed = QuizGame.restore(snapshot, questions={q.id: q for q in questions}, settings=SETTINGS,
                               rng=random.Random(1), now=100.0)
    assert resumed.handle_timeout(102.0) == []
    (ask,) = resumed.handle_timeout(100.0 + SETTINGS.reveal_seconds)
    assert isinstance(ask, AskQuestion) and (ask.index, ask.total, ask.question_id) == (1, 2, "q1")
