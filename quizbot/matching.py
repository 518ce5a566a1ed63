"""Answer matching (pure): is a player's free-text answer the right one?

Rules (issue 5): case, accents and German spellings ("Muenchen" = "München", ß = ss), leading articles
(de/en) and punctuation do not matter; typos (optimal string alignment distance, so a swapped pair of letters
is one typo) are forgiven in proportion to word length, word by word only
("chair" is not "air") and never in numbers; numbers may be digits or words, "1.000"/"1,000" read by
language, with a tolerance for estimate questions; in choice mode the letter, the number or the choice's
text counts, and a near miss only when it is closer to the right choice than to every wrong one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import OSA

ARTICLES = {
    "de": {"der", "die", "das", "den", "dem", "des", "ein", "eine", "einen", "einem", "einer", "eines"},
    "en": {"the", "a", "an"},
}
_GERMAN_FOLDS = (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss"))
_NUMBER_WORDS = {
    "en": {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
           "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
           "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
           "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90},
    "de": {"null": 0, "eins": 1, "ein": 1, "eine": 1, "zwei": 2, "drei": 3, "vier": 4, "fuenf": 5, "sechs": 6,
           "sieben": 7, "acht": 8, "neun": 9, "zehn": 10, "elf": 11, "zwoelf": 12, "dreizehn": 13,
           "vierzehn": 14, "fuenfzehn": 15, "sechzehn": 16, "siebzehn": 17, "achtzehn": 18, "neunzehn": 19,
           "zwanzig": 20, "dreissig": 30, "vierzig": 40, "fuenfzig": 50, "sechzig": 60, "siebzig": 70,
           "achtzig": 80, "neunzig": 90},
}
_SCALES = {
    "en": {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000},
    "de": {"hundert": 100, "tausend": 1_000, "million": 1_000_000, "millionen": 1_000_000, "mio": 1_000_000,
           "milliarde": 1_000_000_000, "milliarden": 1_000_000_000, "mrd": 1_000_000_000},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchResult:
    correct: bool
    exact: bool
    distance: int = 0


WRONG = MatchResult(correct=False, exact=False)
MAX_NUMBER_CHARS = 100


def fold(text: str) -> str:
    """Case, German spellings and accents folded away: "Müller" and "Mueller" both become "mueller"."""
    text = text.casefold()
    for umlaut, spelled in _GERMAN_FOLDS:
        text = text.replace(umlaut, spelled)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def normalise(text: str, language: str) -> str:
    """Folded, punctuation to spaces, leading article dropped, spaces collapsed."""
    words = re.sub(r"[^\w]+", " ", fold(text)).split()
    if len(words) > 1 and words[0] in ARTICLES.get(language, set()):
        words = words[1:]
    return " ".join(words)


def allowed_typos(word: str) -> int:
    """Edits forgiven in one word: none for short words or anything with a digit."""
    if any(char.isdigit() for char in word) or len(word) <= 3:
        return 0
    return 1 if len(word) <= 7 else 2


def match_text(answer: str, accepted: Sequence[str], language: str) -> MatchResult:
    given = normalise(answer, language).split()
    best = WRONG
    for candidate in accepted:
        wanted = normalise(candidate, language).split()
        if len(given) != len(wanted) or not wanted:
            continue
        distances = [OSA.distance(g, w) for g, w in zip(given, wanted, strict=True)]
        if all(d <= allowed_typos(w) for d, w in zip(distances, wanted, strict=True)):
            result = MatchResult(correct=True, exact=sum(distances) == 0, distance=sum(distances))
            if not best.correct or result.distance < best.distance:
                best = result
    return best


def parse_number(text: str, language: str) -> float | None:
    """Digits with the language's separators ("1.000" is a thousand in German, one in English) or words."""
    if len(text) > MAX_NUMBER_CHARS:
        return None  # no number is that long, and German number words are parsed recursively
    cleaned = fold(text).strip().rstrip(".")
    digits = cleaned.replace(" ", "").replace("\u202f", "")
    thousands, decimal = (".", ",") if language == "de" else (",", ".")
    scale = 1.0
    words = cleaned.split()
    if len(words) == 2 and words[1] in _SCALES.get(language, {}):
        scale, digits = float(_SCALES[language][words[1]]), words[0]
    if re.fullmatch(rf"-?\d{{1,3}}(\{thousands}\d{{3}})+(\{decimal}\d+)?", digits) or \
            re.fullmatch(rf"-?\d+(\{decimal}\d+)?", digits):
        return float(digits.replace(thousands, "").replace(decimal, ".")) * scale
    return _number_from_words(cleaned, language)


def _number_from_words(text: str, language: str) -> float | None:
    units, scales = _NUMBER_WORDS.get(language, {}), _SCALES.get(language, {})
    if language == "de":
        return _german_number(text.replace(" ", ""), units, scales)
    total = current = 0
    seen = False
    for word in re.split(r"[\s-]+", text.replace(" and ", " ")):
        if word in units:
            current += units[word]
        elif word in scales and (current or not seen):
            current = (current or 1) * scales[word]
            if scales[word] >= 1_000:
                total, current = total + current, 0
        else:
            return None
        seen = True
    return float(total + current) if seen else None


def _german_number(text: str, units: dict[str, int], scales: dict[str, int]) -> float | None:
    """German number words are written together: "einundzwanzig", "zweihundertfuenf", "dreitausend"."""
    if not text:
        return None
    for scale_word, scale in sorted(scales.items(), key=lambda item: -item[1]):
        head, found, tail = text.partition(scale_word)
        if found:
            multiplier = _german_number(head, units, scales) if head else 1.0
            rest = _german_number(tail, units, scales) if tail else 0.0
            if multiplier is None or rest is None:
                return None
            return multiplier * scale + rest
    if text in units:
        return float(units[text])
    unit, found, tens = text.partition("und")
    if found and unit in units and tens in units and units[tens] >= 20:
        return float(units[unit] + units[tens])
    return None


def match_number(answer: str, expected: float, language: str, tolerance: float = 0.0) -> MatchResult:
    """Numbers never get typo tolerance; estimate questions allow a relative `tolerance` (0.1 = ±10 %)."""
    given = parse_number(answer, language)
    if given is None:
        return WRONG
    if given == expected:
        return MatchResult(correct=True, exact=True)
    within = abs(given - expected) <= abs(expected) * tolerance
    return MatchResult(correct=within, exact=False, distance=0)


def match_choice(answer: str, choices: Sequence[str], correct_index: int, language: str) -> MatchResult | None:
    """The letter (A-D), the number (1-4) or the text of a choice. None: not recognisable as an attempt."""
    stripped = fold(answer).strip().strip(".)")
    index: int | None = None
    if len(stripped) == 1 and "a" <= stripped <= chr(ord("a") + len(choices) - 1):
        index = ord(stripped) - ord("a")
    elif stripped in [str(number) for number in range(1, len(choices) + 1)]:  # no int(): "²" and 5,000 digits
        index = int(stripped) - 1
    if index is not None:
        return MatchResult(correct=index == correct_index, exact=True)
    given = normalise(answer, language)
    distances = [OSA.distance(given, normalise(choice, language)) for choice in choices]
    if 0 in distances:
        return MatchResult(correct=distances.index(0) == correct_index, exact=True)
    right = distances[correct_index]
    closer_than_every_wrong = all(right < d for i, d in enumerate(distances) if i != correct_index)
    if closer_than_every_wrong and match_text(answer, [choices[correct_index]], language).correct:
        return MatchResult(correct=True, exact=False, distance=right)
    nearest = min(range(len(choices)), key=lambda i: distances[i])
    if match_text(answer, [choices[nearest]], language).correct:
        return MatchResult(correct=False, exact=False, distance=distances[nearest])
    return None
