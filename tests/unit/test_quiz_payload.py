"""The urn:boshcm:quiz:0 payloads and the de/en wording."""

from __future__ import annotations

import string

from lxml import etree

from quizbot import payload, render
from quizbot.game import AskQuestion, AwardPoints, RevealAnswer
from quizbot.questions import QuestionKind


def test_answer_payload_is_read_beside_the_body_and_bad_choices_fall_back_to_the_text() -> None:
    message = etree.fromstring(
        "<message xmlns='jabber:client'><body>b</body>"
        "<answer xmlns='urn:boshcm:quiz:0' question='q7' choice='b'/></message>")
    assert payload.parse_answer(message) == payload.AnswerPayload(question_id="q7", choice="B")
    odd = etree.fromstring("<message xmlns='jabber:client'><answer xmlns='urn:boshcm:quiz:0' choice='Z'/></message>")
    assert payload.parse_answer(odd) == payload.AnswerPayload(question_id=None, choice=None)
    plain = etree.fromstring("<message xmlns='jabber:client'><body>Paris</body></message>")
    assert payload.parse_answer(plain) is None


def test_equal_points_share_a_rank() -> None:
    scores = payload.scores(game_id="g", standings=[("Ann", 30), ("Ben", 20), ("Cat", 20), ("Dan", 5)], final=True,
                            board_size=10)
    assert [p.get("rank") for p in scores] == ["1", "2", "2", "4"]


def test_boards_name_the_top_board_size_with_their_ranks_and_say_how_many_in_all() -> None:
    standings = [("Ann", 30), ("Ben", 20), ("Cat", 20), ("Dan", 20), ("Eve", 5)]
    scores = payload.scores(game_id="g", standings=standings, final=False, board_size=3)
    assert scores.get("players") == "5"
    assert [(p.get("nick"), p.get("rank")) for p in scores] == [("Ann", "1"), ("Ben", "2"), ("Cat", "2")]
    awards = tuple(AwardPoints(player=f"{nick}@x", nick=nick, points=points, seconds=1.25, streak=1)
                   for nick, points in standings)
    revealed = RevealAnswer(question_id="q1", answer="Paris", source="https://example.org", scorers=awards,
                            distribution={})
    reveal = payload.reveal(revealed, choices=(), board_size=3)
    assert reveal.get("scorers") == "5"
    assert [s.get("nick") for s in reveal.iter(f"{{{payload.NS}}}scorer")] == ["Ann", "Ben", "Cat"]
    for language, said in (("en", "Points (5 scored, the first 3): "), ("de", "Punkte (5 richtig, die ersten 3): ")):
        text = render.reveal_text(language, revealed, board_size=3)
        assert said in text and "Cat" in text and "Dan" not in text
    assert render.scores_text("de", standings, board_size=3, final=True).startswith(
        "Endstand (5 Spieler, die besten 3): 1. Ann 30, 2. Ben 20, 2. Cat 20")
    assert render.scores_text("en", standings, board_size=5, final=False).startswith("Scores: 1. Ann 30")


def test_own_result_and_standing_carry_only_what_applies() -> None:
    right = payload.result(question_id="q1", game_id="g", correct=True, points=950, seconds=1.5, streak=3)
    assert dict(right.attrib) == {"question": "q1", "game": "g", "correct": "true", "points": "950",
                                  "seconds": "1.5", "streak": "3"}
    wrong = payload.result(question_id="q1", game_id="g", correct=False, streak=0)
    assert dict(wrong.attrib) == {"question": "q1", "game": "g", "correct": "false", "streak": "0"}
    place = payload.standing(game_id="g", total=1900, rank=17, players=2000, final=True)
    assert dict(place.attrib) == {"game": "g", "total": "1900", "rank": "17", "players": "2000", "final": "true"}


def test_question_payload_carries_choices_and_deadline_but_never_the_answer() -> None:
    ask = AskQuestion(index=1, total=3, question_id="q1", text="Who?", kind=QuestionKind.CHOICE, category="music",
                      choices=("Bach", "Mozart", "Haydn", "Handel"), duration_seconds=20.0)
    element = payload.question(ask, game_id="g", deadline_wall=1_800_000_000.25)
    assert element.get("deadline") == "2027-01-15T08:00:00.250Z" and element.get("duration") == "20"
    assert [(c.get("key"), c.text) for c in element.iterchildren(f"{{{payload.NS}}}choice")] == [
        ("A", "Bach"), ("B", "Mozart"), ("C", "Haydn"), ("D", "Handel")]
    assert "answer" not in etree.tostring(element).decode()


def test_german_and_english_say_the_same_things_with_the_same_placeholders() -> None:
    assert render.TEXTS["de"].keys() == render.TEXTS["en"].keys()
    for key, english in render.TEXTS["en"].items():
        fields = {name for _text, name, _spec, _conv in string.Formatter().parse(english) if name}
        german = {name for _text, name, _spec, _conv in string.Formatter().parse(render.TEXTS["de"][key]) if name}
        assert fields == german, key
