"""JID value object (RFC 7622), with the normalisation the server compares addresses by."""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

# RFC 7622 §3.3.1: characters a localpart must not contain.
_LOCALPART_FORBIDDEN = frozenset("\"&'/:<>@")
_MAX_PART_BYTES = 1023


class InvalidJID(ValueError):
    """Raised for a string that is not a valid JID; maps to `jid-malformed`."""


def _check_length(part: str, what: str) -> None:
    if len(part.encode("utf-8")) > _MAX_PART_BYTES:
        raise InvalidJID(f"{what} longer than {_MAX_PART_BYTES} bytes")


def _normalise_localpart(local: str) -> str:
    # RFC 7622 §3.3.2 (UsernameCaseMapped): case-fold after NFC; forbid controls, spaces and the
    # characters of §3.3.1.
    local = unicodedata.normalize("NFC", local).casefold()
    if not local:
        raise InvalidJID("empty localpart")
    for char in local:
        if char in _LOCALPART_FORBIDDEN or char.isspace() or unicodedata.category(char).startswith("C"):
            raise InvalidJID(f"localpart contains forbidden character {char!r}")
    _check_length(local, "localpart")
    return local


def _normalise_domain(domain: str) -> str:
    domain = unicodedata.normalize("NFC", domain).casefold().rstrip(".")
    if not domain:
        raise InvalidJID("empty domainpart")
    if domain.startswith("[") and domain.endswith("]"):  # IPv6 literal
        return domain
    for label in domain.split("."):
        if not label:
            raise InvalidJID("empty label in domainpart")
        for char in label:
            if char.isspace() or char in "/@<>&'\":" or unicodedata.category(char).startswith("C"):
                raise InvalidJID(f"domainpart contains forbidden character {char!r}")
    _check_length(domain, "domainpart")
    return domain


def _normalise_resource(resource: str) -> str:
    # RFC 7622 §3.4.2 (OpaqueString): NFC, no controls; case is preserved.
    resource = unicodedata.normalize("NFC", resource)
    if not resource:
        raise InvalidJID("empty resourcepart")
    for char in resource:
        if unicodedata.category(char) in ("Cc", "Cs", "Cn"):
            raise InvalidJID("resourcepart contains a control character")
    _check_length(resource, "resourcepart")
    return resource


@dataclass(frozen=True, slots=True)
class JID:
    """A normalised JID. Build with `JID.parse()` or `JID.make()`; compare with `==`."""

    local: str | None
    domain: str
    resource: str | None = None

    @classmethod
    def parse(cls, text: str) -> JID:
        """Parse and normalise; raises InvalidJID. Every routed stanza parses its `to` and `from` again and again
        (a groupchat to 500 occupants: a thousand times), so short texts come from a bounded cache."""
        if len(text) <= CACHED_JID_CHARS:
            return _parse_cached(text)
        return cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> JID:
        if not text:
            raise InvalidJID("empty JID")
        bare, slash, resource = text.partition("/")
        local, at, domain = bare.rpartition("@")
        if slash and not resource:
            raise InvalidJID("empty resourcepart")
        if at and not local:
            raise InvalidJID("empty localpart")
        return cls.make(local if at else None, domain, resource if slash else None)

    @classmethod
    def make(cls, local: str | None, domain: str, resource: str | None = None) -> JID:
        return cls(
            _normalise_localpart(local) if local is not None else None,
            _normalise_domain(domain),
            _normalise_resource(resource) if resource is not None else None,
        )

    @property
    def bare(self) -> JID:
        return self if self.resource is None else JID(self.local, self.domain, None)

    @property
    def is_bare(self) -> bool:
        return self.resource is None

    @property
    def is_full(self) -> bool:
        return self.resource is not None

    def same_bare(self, other: JID) -> bool:
        """`self.bare == other.bare` without making two JIDs (asked once per recipient of every fan-out)."""
        return self.local == other.local and self.domain == other.domain

    def with_resource(self, resource: str | None) -> JID:
        return JID(self.local, self.domain, _normalise_resource(resource) if resource is not None else None)

    def __str__(self) -> str:
        text = f"{self.local}@{self.domain}" if self.local is not None else self.domain
        return f"{text}/{self.resource}" if self.resource is not None else text


# Bounded in entries and in the size of each (a long JID is parsed afresh): at most ~16k entries of 256 characters.
CACHED_JID_CHARS = 256


@functools.lru_cache(maxsize=16_384)
def _parse_cached(text: str) -> JID:
    return JID._parse(text)   # frozen values: sharing one object between callers is safe; errors are not cached
