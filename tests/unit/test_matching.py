"""Answer matching in German and English, as a table."""

from __future__ import annotations

import pytest

from quizbot.matching import match_choice, match_number, match_text, parse_number

TEXT_CASES = [
    # (answer, accepted, language, correct)
    ("München", ["München"], "de", True),
    ("Muenchen", ["München"], "de", True),
    ("MÜNCHEN!", ["München"], "de", True),
    ("Munchen", ["München"], "de", True),  # one typo in an 8-letter word
    ("Strasse", ["Straße"], "de", True),
    ("die Zugspitze", ["Zugspitze"], "de", True),
    ("Zugspitze", ["die Zugspitze"], "de", True),
    ("Zugspitz", ["Zugspitze"], "de", True),
    ("Zugsptz", ["Zugspitze"], "de", True),
    ("Zgsptz", ["Zugspitze"], "de", False),  # three edits are too many
    ("the Beatles", ["Beatles"], "en", True),
    ("Beatles", ["The Beatles"], "en", True),
    ("Beatels", ["The Beatles"], "en", True),
    ("chair", ["air"], "en", False),  # whole words only
    ("air", ["chair"], "en", False),
    ("cat", ["car"], "en", False),  # no typos in short words
    ("Paris", ["Paris"], "en", True),
    ("Parsi", ["Paris"], "en", True),  # a swapped pair of letters is one typo
    ("Porus", ["Paris"], "en", False),  # two typos in five letters
    ("New York", ["New York City", "New York"], "en", True),
    ("York", ["New York"], "en", False),
    ("new-york", ["New York"], "en", True),
    ("Mount Everest", ["Everest", "Mount Everest"], "en", True),
    ("Goethe", ["Johann Wolfgang von Goethe", "Goethe"], "de", True),
    ("Göthe", ["Goethe"], "de", True),
    ("Rhein", ["Rhein"], "de", True),
    ("Rhine", ["Rhein"], "de", False),
    ("1945", ["1945"], "en", True),
    ("1944", ["1945"], "en", False),  # never typos in numbers
    ("Apollo 11", ["Apollo 11"], "en", True),
    ("Apollo 12", ["Apollo 11"], "en", False),
    ("Élysée", ["Elysee"], "en", True),
    ("", ["Paris"], "en", False),
]


@pytest.mark.parametrize(("answer", "accepted", "language", "correct"), TEXT_CASES)
def test_text_answers(answer: str, accepted: list[str], language: str, correct: bool) -> None:
    assert match_text(answer, accepted, language).correct is correct


@pytest.mark.parametrize(
    ("text", "language", "value"),
    [
        ("1.000", "de", 1000.0),
        ("1.000", "en", 1.0),
        ("1,000", "en", 1000.0),
        ("1,5", "de", 1.5),
        ("1.5", "en", 1.5),
        ("8.848", "de", 8848.0),
        ("twenty-one", "en", 21.0),
        ("one hundred and five", "en", 105.0),
        ("three thousand", "en", 3000.0),
        ("einundzwanzig", "de", 21.0),
        ("zweihundertfünf", "de", 205.0),
        ("dreitausend", "de", 3000.0),
        ("2 Mio", "de", 2_000_000.0),
        ("1 million", "en", 1_000_000.0),
        ("zwölf", "de", 12.0),
        ("many", "en", None),
    ],
)
def test_numbers_as_digits_or_words(text: str, language: str, value: float | None) -> None:
    assert parse_number(text, language) == value


def test_number_answers_never_forgive_typos_but_estimates_have_tolerance() -> None:
    assert match_number("1945", 1945, "en").exact
    assert not match_number("1944", 1945, "en").correct
    assert match_number("8.800", 8848, "de", tolerance=0.1).correct
    assert not match_number("7.000", 8848, "de", tolerance=0.1).correct
    assert match_number("neunzehn", 19, "de").correct


CHOICES = ["Berlin", "Hamburg", "München", "Köln"]


@pytest.mark.parametrize(
    ("answer", "correct"),
    [
        ("C", True),
        ("c", True),
        ("c)", True),
        ("3", True),
        ("München", True),
        ("muenchen", True),
        ("Munchen", True),
        ("A", False),
        ("1", False),
        ("Berlin", False),
        ("Hamburgh", False),
    ],
)
def test_choice_by_letter_number_or_text(answer: str, correct: bool) -> None:
    result = match_choice(answer, CHOICES, 2, "de")
    assert result is not None and result.correct is correct


def test_choice_near_miss_counts_only_when_closer_to_the_right_choice() -> None:
    similar = ["Austria", "Australia", "Albania", "Armenia"]
    closest = match_choice("Australya", similar, 1, "en")  # nearer Australia than Austria
    assert closest is not None and closest.correct
    ambiguous = match_choice("Austra", similar, 1, "en")  # as near to the wrong Austria
    assert ambiguous is None or not ambiguous.correct


def test_unrecognisable_choice_answer_is_not_an_attempt() -> None:
    assert match_choice("no idea", CHOICES, 2, "de") is None
    assert match_choice("E", CHOICES, 2, "de") is None
