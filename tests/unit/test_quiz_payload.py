"""The urn:boshcm:quiz:0 payloads and the de/en wording."""

from __future__ import annotations

import string

from lxml import etree

from quizbot import payload, render
from quizbot.game import AskQuestion
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
    scores = payload.scores(game_id="g", standings=[("Ann", 30), ("Ben", 20), ("Cat", 20), ("Dan", 5)], final=True)
    assert [p.get("rank") for p in scores] == ["1", "2", "2", "4"]


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
