"""Room nicknames: what is shown (RFC 8266 PRECIS Nickname) and when two nicks are the same person's.

A nick is shown as the user typed it after the Nickname profile's enforcement (fullwidth and compatibility
forms mapped, spaces trimmed and collapsed, NFKC). Two nicks conflict when any of their comparison keys are
equal; a key is built so that what a reader cannot tell apart compares equal:

- `folded`: the Nickname comparison form (case-folded), then the Unicode confusables skeleton (UTS #39 §4,
  e.g. "Alice" spelt with Cyrillic A, i and e → "alice"), case-folded again;
- `shaped`: the skeleton of the shown nick before case folding, which catches look-alikes that case folding
  would separate ("AIice" with a capital I reads as "Alice", while "I" folds to "i", not "l").

Invisible characters (zero-width space, soft hyphen, joiners, bidi marks) are refused by PRECIS already; the
keys drop any default-ignorable code point too, so the rule does not hang on one library's tables.
The skeleton table comes from the Unicode confusables data shipped with `confusable-homoglyphs`.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

import precis_i18n
from confusable_homoglyphs import confusables  # type: ignore[import-untyped]

_SHOWN = precis_i18n.get_profile("NicknameCasePreserved")
_COMPARED = precis_i18n.get_profile("NicknameCaseMapped")
# Display-direction marks the confusables data wraps right-to-left characters in.
_MARKS = str.maketrans("", "", "\u200e\u200f")


class NickRefused(ValueError):
    """The nickname is not allowed by the PRECIS Nickname profile (empty, controls, invisible characters)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Nick:
    shown: str                      # the occupant's nick as everyone sees it
    keys: tuple[str, str]           # (folded, shaped) comparison keys


def parse_nick(text: str) -> Nick:
    """The nick as shown and its comparison keys; raises NickRefused."""
    return _parse(text)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Nick:
    try:
        shown = _SHOWN.enforce(text)
        compared = _COMPARED.enforce(text)
    except UnicodeError as refused:
        raise NickRefused(str(refused)) from None
    folded = _skeleton(_visible(compared)).casefold()
    shaped = _skeleton(_visible(shown))
    return Nick(shown=shown, keys=(f"f:{folded}", f"s:{shaped}"))


def _visible(text: str) -> str:
    return "".join(char for char in text if not _ignorable(char))


def _ignorable(char: str) -> bool:
    # Format characters (Cf: ZWSP, ZWJ, bidi controls, soft hyphen) and variation selectors render as nothing.
    return unicodedata.category(char) == "Cf" or "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef"


def _skeleton(text: str) -> str:
    """UTS #39 §4 skeleton: NFD, each character to its prototype, NFD again."""
    prototypes = _prototypes()
    mapped = "".join(prototypes.get(char, char) for char in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", mapped)


@functools.cache
def _prototypes() -> dict[str, str]:
    """Source character -> prototype, recovered from the library's symmetric table.

    confusables.txt maps single code points to prototypes, and prototypes are never sources; the library
    records every line both ways. So a character with one partner is a source when that partner is longer than
    one character or has partners of its own; an isolated pair maps to its smaller member, which gives the
    same equalities as the prototype would.
    """
    table: dict[str, list[str]] = {}
    for raw, entries in confusables.confusables_data.items():
        table[raw.translate(_MARKS)] = [str(entry["c"]).translate(_MARKS) for entry in entries]
    prototypes: dict[str, str] = {}
    for char, partners in table.items():
        if len(char) != 1 or len(partners) != 1:
            continue
        (partner,) = partners
        if len(partner) > 1 or len(table.get(partner, ())) > 1 or partner < char:
            prototypes[char] = partner
    return prototypes
