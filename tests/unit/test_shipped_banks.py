"""The question banks that ship in quizbot/banks: valid, big and varied enough, sourced, fair."""

from __future__ import annotations

from collections import Counter

import pytest

from quizbot.config import SHIPPED_BANKS
from quizbot.matching import normalise
from quizbot.questions import QuestionKind, load_bank


@pytest.mark.parametrize("language", ["de", "en"])
def test_shipped_bank_is_valid_varied_and_sourced(language: str) -> None:
    result = load_bank(SHIPPED_BANKS / f"{language}.json")
    assert result.errors == []
    questions = result.questions
    assert len(questions) >= 150
    assert all(q.language == language for q in questions)
    categories = Counter(q.category for q in questions)
    assert len(categories) >= 8 and min(categories.values()) >= 10
    kinds = Counter(q.kind for q in questions)
    assert all(kinds[kind] >= 0.15 * len(questions) for kind in QuestionKind)
    assert all(q.source.startswith(f"https://{language}.wikipedia.org/wiki/") for q in questions)


@pytest.mark.parametrize("language", ["de", "en"])
def test_no_question_gives_its_answer_away(language: str) -> None:
    for question in load_bank(SHIPPED_BANKS / f"{language}.json").questions:
        text = f" {normalise(question.question, language)} "
        for answer in (question.answer, *question.alternatives):
            assert f" {normalise(answer, language)} " not in text, question.id
