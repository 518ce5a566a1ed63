"""Roles and affiliations (XEP-0045 §5) as their wire values."""

from __future__ import annotations

from enum import StrEnum


class Affiliation(StrEnum):
    """Long-lived, per account (§5.2), ranked: owner > admin > member > none > outcast."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    NONE = "none"
    OUTCAST = "outcast"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @classmethod
    def parse(cls, text: str | None) -> Affiliation | None:
        return cls._value2member_map_.get(text or "")  # type: ignore[return-value]


class Role(StrEnum):
    """Per visit (§5.1); `none` only in the unavailable presence of one who left."""

    MODERATOR = "moderator"
    PARTICIPANT = "participant"
    VISITOR = "visitor"
    NONE = "none"

    @classmethod
    def parse(cls, text: str | None) -> Role | None:
        return cls._value2member_map_.get(text or "")  # type: ignore[return-value]


PRESENT_ROLES = (Role.MODERATOR, Role.PARTICIPANT, Role.VISITOR)
_RANKS = {Affiliation.OWNER: 4, Affiliation.ADMIN: 3, Affiliation.MEMBER: 2, Affiliation.NONE: 1,
          Affiliation.OUTCAST: 0}
