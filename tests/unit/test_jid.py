"""JIDs (RFC 7622): parsing, normalisation, and the bounded parse cache the routing hot path relies on."""

from __future__ import annotations

import uuid

import pytest

from boshcm.jid import CACHED_JID_CHARS, JID, InvalidJID, _parse_cached


def test_parse_normalises_and_compares_by_value() -> None:
    assert JID.parse("Alice@LocalHost/Desk") == JID("alice", "localhost", "Desk")
    assert JID.parse("alice@localhost/desk").bare == JID.parse("alice@localhost")
    assert str(JID.parse("conference.localhost")) == "conference.localhost"


@pytest.mark.parametrize("text", ["", "@localhost", "alice@localhost/", "al\"ice@localhost"])
def test_invalid_jids_are_refused_every_time_not_only_the_first(text: str) -> None:
    for _ in range(2):   # an error is never cached into a value
        with pytest.raises(InvalidJID):
            JID.parse(text)


def test_the_parse_cache_is_bounded_in_entries_and_in_the_length_of_each() -> None:
    assert _parse_cached.cache_info().maxsize == 16_384
    text = f"bob@localhost/{uuid.uuid4()}"   # not parsed before in this process
    misses = _parse_cached.cache_info().misses
    first = JID.parse(text)
    assert _parse_cached.cache_info().misses == misses + 1
    assert JID.parse(text) is first                            # the second parse is the cached value
    long_text = "x" * CACHED_JID_CHARS + "@localhost"
    misses = _parse_cached.cache_info().misses
    assert JID.parse(long_text) == JID.parse(long_text)        # parsed afresh, never stored
    assert _parse_cached.cache_info().misses == misses


def test_same_bare_compares_the_bare_jids() -> None:
    alice = JID.parse("alice@localhost/phone")
    assert alice.same_bare(JID.parse("Alice@localhost/web"))
    assert alice.same_bare(JID.parse("alice@localhost"))
    assert not alice.same_bare(JID.parse("bob@localhost/phone"))
    assert not alice.same_bare(JID.parse("alice@example.org/phone"))
    assert not JID.parse("localhost").same_bare(alice)
