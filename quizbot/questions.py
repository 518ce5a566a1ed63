"""Question banks: the JSON format, validation, loading, fresh random assembly, Open Trivia DB import.

A bank file is a JSON object `{"language": "de", "questions": [...]}`; each question:

    {"id": "de-geo-001", "category": "geography", "difficulty": 1,
     "kind": "choice" | "text" | "number", "question": "...", "answer": "...",
     "alternatives": ["..."],            # text: other accepted answers
     "wrong": ["...", "...", "..."],     # choice: exactly three wrong choices
     "tolerance": 0.1,                   # number: relative tolerance for estimates (0 = exact)
     "source": "https://..."}

A bank with any fault is refused whole, with every question id and fault listed; other banks still load.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from quizbot.matching import parse_number

LANGUAGES = ("de", "en")


class QuestionKind(StrEnum):
    CHOICE = "choice"
    TEXT = "text"
    NUMBER = "number"


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    id: str
    language: str
    category: str
    difficulty: int
    kind: QuestionKind
    question: str
    answer: str
    alternatives: tuple[str, ...] = ()
    wrong: tuple[str, ...] = ()
    tolerance: float = 0.0
    source: str = ""


@dataclass(frozen=True, slots=True)
class BankError:
    question_id: str
    fault: str

    def __str__(self) -> str:
        return f"{self.question_id}: {self.fault}"


@dataclass(slots=True)
class LoadResult:
    questions: list[Question] = field(default_factory=list)
    errors: list[BankError] = field(default_factory=list)


def parse_bank(data: Any, *, where: str = "bank") -> LoadResult:
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        return LoadResult(errors=[BankError(where, 'expected {"language": ..., "questions": [...]}')])
    language = data.get("language")
    result = LoadResult()
    if language not in LANGUAGES:
        result.errors.append(BankError(where, f"language must be one of {', '.join(LANGUAGES)}"))
        return result
    seen: set[str] = set()
    for index, raw in enumerate(data["questions"]):
        question_id = str(raw.get("id", f"#{index + 1}")) if isinstance(raw, dict) else f"#{index + 1}"
        try:
            question = _question(raw, language)
        except ValueError as fault:
            result.errors.append(BankError(question_id, str(fault)))
            continue
        if question.id in seen:
            result.errors.append(BankError(question.id, "duplicate id"))
            continue
        seen.add(question.id)
        result.questions.append(question)
    if result.errors:
        result.questions = []  # a bank with faults is refused whole
    return result


def _question(raw: Any, language: str) -> Question:
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    for key in ("id", "category", "kind", "question", "answer", "source"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ValueError(f"'{key}' must be a non-empty string")
    try:
        kind = QuestionKind(raw["kind"])
    except ValueError:
        raise ValueError("'kind' must be choice, text or number") from None
    difficulty = raw.get("difficulty", 2)
    if difficulty not in (1, 2, 3):
        raise ValueError("'difficulty' must be 1, 2 or 3")
    alternatives = _strings(raw.get("alternatives", []), "alternatives")
    wrong = _strings(raw.get("wrong", []), "wrong")
    tolerance = raw.get("tolerance", 0.0)
    if not isinstance(tolerance, int | float) or not 0 <= tolerance < 1:
        raise ValueError("'tolerance' must be a number from 0 to below 1")
    if kind is QuestionKind.CHOICE:
        if len(wrong) != 3 or len({raw["answer"], *wrong}) != 4:
            raise ValueError("a choice question needs exactly three distinct wrong choices besides the answer")
    elif wrong:
        raise ValueError("only choice questions have wrong choices")
    if kind is QuestionKind.NUMBER and parse_number(raw["answer"], language) is None:
        raise ValueError(f"the answer of a number question must be a number, not {raw['answer']!r}")
    return Question(id=raw["id"], language=language, category=raw["category"].strip().lower(),
                    difficulty=difficulty, kind=kind, question=raw["question"].strip(), answer=raw["answer"].strip(),
                    alternatives=alternatives, wrong=wrong, tolerance=float(tolerance), source=raw["source"].strip())


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError(f"'{key}' must be a list of non-empty strings")
    return tuple(item.strip() for item in value)


def load_bank(path: Path) -> LoadResult:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as fault:
        return LoadResult(errors=[BankError(path.name, f"unreadable: {fault}")])
    return parse_bank(data, where=path.name)


class BankSet:
    """All loaded questions; assembles a fresh quiz each time."""

    def __init__(self, questions: Iterable[Question]) -> None:
        self._questions = list(questions)

    def __len__(self) -> int:
        return len(self._questions)

    @property
    def questions(self) -> tuple[Question, ...]:
        return tuple(self._questions)

    def count(self, language: str) -> int:
        return sum(1 for q in self._questions if q.language == language)

    def categories(self, language: str) -> list[str]:
        return [name for name, _count in self.category_counts(language)]

    def category_counts(self, language: str) -> list[tuple[str, int]]:
        """(category, questions) of one language, by name; categories compare case-insensitively."""
        counts: dict[str, int] = {}
        for q in self._questions:
            if q.language == language:
                counts[q.category.casefold()] = counts.get(q.category.casefold(), 0) + 1
        return sorted(counts.items())

    def pick(self, count: int, *, language: str, rng: random.Random, category: str | None = None,
             kinds: Sequence[QuestionKind] | None = None, exclude_ids: frozenset[str] = frozenset()) -> list[Question]:
        wanted = category.casefold() if category is not None else None
        pool = [q for q in self._questions if q.language == language and q.id not in exclude_ids
                and (wanted is None or q.category.casefold() == wanted) and (kinds is None or q.kind in kinds)]
        rng.shuffle(pool)
        # Round-robin over categories so one quiz mixes topics instead of drawing five geography questions.
        by_category: dict[str, list[Question]] = {}
        for question in pool:
            by_category.setdefault(question.category, []).append(question)
        picked: list[Question] = []
        while len(picked) < count and any(by_category.values()):
            for questions in by_category.values():
                if questions and len(picked) < count:
                    picked.append(questions.pop())
        return picked


def import_opentdb(data: Any, *, language: str = "en") -> dict[str, Any]:
    """Convert an Open Trivia DB export ({"results": [...]}) into a bank (HTML entities decoded).

    Multiple-choice questions stay choice questions; true/false questions become text questions whose answer
    is "True"/"False" (or "Wahr"/"Falsch" for German), since a choice needs three wrong options.
    """
    questions = []
    for item in data.get("results", []):
        text = html.unescape(item["question"])
        answer = html.unescape(item["correct_answer"])
        question: dict[str, Any] = {
            "id": "otdb-" + hashlib.sha256(text.encode()).hexdigest()[:12],
            "category": html.unescape(item.get("category", "general")).split(":")[0].strip().lower(),
            "difficulty": {"easy": 1, "medium": 2, "hard": 3}.get(item.get("difficulty", ""), 2),
            "question": text, "source": "https://opentdb.com/ (CC BY-SA 4.0)"}
        if item.get("type") == "boolean":
            truth = {"True": ("Wahr" if language == "de" else "True"),
                     "False": ("Falsch" if language == "de" else "False")}
            question |= {"kind": "text", "answer": truth.get(answer, answer)}
        else:
            question |= {"kind": "choice", "answer": answer,
                         "wrong": [html.unescape(w) for w in item["incorrect_answers"]]}
        questions.append(question)
    return {"language": language, "questions": questions}
