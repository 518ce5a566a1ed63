"""Question banks: validation with the question id and fault, fresh assembly, Open Trivia DB import."""

from __future__ import annotations

import json
import random
from pathlib import Path

from quizbot.questions import BankSet, QuestionKind, import_opentdb, load_bank, parse_bank

GOOD = [
    {
        "id": "de-geo-001",
        "category": "Geografie",
        "difficulty": 1,
        "kind": "text",
        "question": "Wie heißt der höchste Berg Deutschlands?",
        "answer": "Zugspitze",
        "source": "https://de.wikipedia.org/wiki/Zugspitze",
    },
    {
        "id": "de-geo-002",
        "category": "geografie",
        "difficulty": 2,
        "kind": "number",
        "question": "Wie hoch ist die Zugspitze in Metern?",
        "answer": "2962",
        "tolerance": 0.05,
        "source": "https://de.wikipedia.org/wiki/Zugspitze",
    },
    {
        "id": "de-mus-001",
        "category": "musik",
        "difficulty": 1,
        "kind": "choice",
        "question": "Wer komponierte die Zauberflöte?",
        "answer": "Mozart",
        "wrong": ["Bach", "Händel", "Haydn"],
        "source": "https://de.wikipedia.org/wiki/Die_Zauberflöte",
    },
]


def bank(questions: list[dict[str, object]], language: str = "de") -> dict[str, object]:
    return {"language": language, "questions": questions}


def test_a_good_bank_loads_with_normalised_categories(tmp_path: Path) -> None:
    path = tmp_path / "de.json"
    path.write_text(json.dumps(bank(GOOD)), encoding="utf-8")
    result = load_bank(path)
    assert result.errors == []
    assert [q.kind for q in result.questions] == [QuestionKind.TEXT, QuestionKind.NUMBER, QuestionKind.CHOICE]
    assert BankSet(result.questions).categories("de") == ["geografie", "musik"]


def test_every_fault_is_reported_with_its_question_id_and_the_bank_is_refused() -> None:
    broken = [
        {**GOOD[0], "id": "no-source", "source": ""},
        {**GOOD[1], "id": "not-a-number", "answer": "sehr hoch"},
        {**GOOD[2], "id": "two-wrong", "wrong": ["Bach", "Händel"]},
        {**GOOD[2], "id": "answer-among-wrong", "wrong": ["Mozart", "Bach", "Haydn"]},
        {**GOOD[0], "id": "bad-kind", "kind": "essay"},
        {**GOOD[0], "id": "bad-difficulty", "difficulty": 7},
        GOOD[0],
        GOOD[0],
    ]
    result = parse_bank(bank(broken))
    assert result.questions == []
    faults = {error.question_id: error.fault for error in result.errors}
    assert set(faults) == {
        "no-source",
        "not-a-number",
        "two-wrong",
        "answer-among-wrong",
        "bad-kind",
        "bad-difficulty",
        "de-geo-001",
    }
    assert "source" in faults["no-source"] and "duplicate" in faults["de-geo-001"]


def test_unreadable_or_wrong_language_banks_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    assert load_bank(path).errors[0].question_id == "broken.json"
    assert parse_bank(bank(GOOD, language="fr")).errors


def test_pick_mixes_categories_and_respects_filters() -> None:
    questions = parse_bank(bank(GOOD)).questions
    picked = BankSet(questions).pick(2, language="de", rng=random.Random(1))
    assert len({q.category for q in picked}) == 2
    only_music = BankSet(questions).pick(5, language="de", rng=random.Random(1), category="musik")
    assert [q.id for q in only_music] == ["de-mus-001"]
    assert (
        BankSet(questions).pick(5, language="de", rng=random.Random(1), exclude_ids=frozenset(q.id for q in questions))
        == []
    )


def test_open_trivia_db_import_decodes_entities_and_validates() -> None:
    export = {
        "response_code": 0,
        "results": [
            {
                "category": "Entertainment: Music",
                "type": "multiple",
                "difficulty": "easy",
                "question": "Which band released &quot;Abbey Road&quot;?",
                "correct_answer": "The Beatles",
                "incorrect_answers": ["The Rolling Stones", "Queen", "The Who"],
            },
            {
                "category": "Science &amp; Nature",
                "type": "boolean",
                "difficulty": "hard",
                "question": "Water boils at 100&deg;C at sea level.",
                "correct_answer": "True",
                "incorrect_answers": ["False"],
            },
        ],
    }
    converted = import_opentdb(export)
    result = parse_bank(converted)
    assert result.errors == []
    choice, truth = result.questions
    assert choice.question == 'Which band released "Abbey Road"?' and choice.kind is QuestionKind.CHOICE
    assert choice.category == "entertainment" and choice.difficulty == 1
    assert truth.question == "Water boils at 100°C at sea level." and truth.answer == "True"
    assert truth.category == "science & nature"
