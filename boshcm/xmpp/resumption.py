"""The table of resumable sessions (XEP-0198 §5): who may resume which id, and until when.

Every session that enabled resumption is here under its id, attached to a transport or detached from a
dead one. Detached entries carry their expiry; `expired(now)` hands back those whose time ran out and
`next_deadline()` says when that next happens. An id is resumable only by the account that enabled it: for
anyone else it does not exist. A resumption removes the entry and registers its new owner under the same
id, so of two resumptions of one id exactly one wins.

Guests (SASL ANONYMOUS) get a new random name at every login, so no login can show it is "the same
account" (XEP-0198 §5). For them the id itself is the proof: 24 unguessable bytes that only the stream that
enabled it was told, presented by another anonymous login (as Jitsi's Prosody module for anonymous
resumption does). A guest's id is never resumable by an account, nor an account's by a guest. Detached
guests count against `max_detached` like everyone else and also against their own `max_detached_guests`, so
anonymous logins (free for anyone) cannot crowd the accounts' resumptions out of the table.

Pure: `now` is passed in, the owners are opaque (the client sessions), nothing here does I/O.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Generic, TypeVar

Owner = TypeVar("Owner")


@dataclass(slots=True)
class _Entry(Generic[Owner]):
    owner: Owner
    username: str
    guest: bool = False               # enabled by an anonymous login: any anonymous login may present the id
    expires_at: float | None = None   # None while attached


class ResumptionTable(Generic[Owner]):
    def __init__(self, *, max_detached: int, max_detached_guests: int | None = None) -> None:
        self._max_detached = max_detached
        self._max_detached_guests = max_detached if max_detached_guests is None else max_detached_guests
        self._entries: dict[str, _Entry[Owner]] = {}
        self._detached = 0
        self._detached_guests = 0
        # (expires_at, id): stale pairs (resumed or re-detached since) are skipped when they come up.
        self._expiries: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def detached_count(self) -> int:
        return self._detached

    def register(self, resume_id: str, owner: Owner, username: str, *, guest: bool = False) -> None:
        """A session enabled resumption (or was just resumed) and is attached to a transport."""
        self.remove(resume_id)
        self._entries[resume_id] = _Entry(owner=owner, username=username, guest=guest)

    def detach(self, resume_id: str, now: float, seconds: float) -> bool:
        """The session's transport is gone; False when it cannot wait (unknown id, table of detached full)."""
        entry = self._entries.get(resume_id)
        if entry is None:
            return False
        if entry.expires_at is None:
            if self._detached >= self._max_detached or (
                    entry.guest and self._detached_guests >= self._max_detached_guests):
                return False
            self._detached += 1
            self._detached_guests += entry.guest
        entry.expires_at = now + seconds
        heapq.heappush(self._expiries, (entry.expires_at, resume_id))
        return True

    def find(self, resume_id: str, username: str, *, guest: bool = False) -> Owner | None:
        """The owner of `resume_id` when `username` enabled it, or, for a `guest` login, when a guest enabled
        it; for anyone else the id does not exist."""
        entry = self._entries.get(resume_id)
        if entry is None or entry.guest != guest or (not guest and entry.username != username):
            return None
        return entry.owner

    def remove(self, resume_id: str) -> None:
        entry = self._entries.pop(resume_id, None)
        if entry is not None and entry.expires_at is not None:
            self._detached -= 1
            self._detached_guests -= entry.guest

    def next_deadline(self) -> float | None:
        while self._expiries:
            expires_at, resume_id = self._expiries[0]
            entry = self._entries.get(resume_id)
            if entry is not None and entry.expires_at == expires_at:
                return expires_at
            heapq.heappop(self._expiries)
        return None

    def expired(self, now: float) -> list[Owner]:
        """The detached sessions whose resumption time is over; they leave the table."""
        owners: list[Owner] = []
        while (deadline := self.next_deadline()) is not None and deadline <= now:
            _expires_at, resume_id = heapq.heappop(self._expiries)
            owners.append(self._entries[resume_id].owner)
            self.remove(resume_id)
        return owners

    def detached_owners(self) -> list[Owner]:
        return [entry.owner for entry in self._entries.values() if entry.expires_at is not None]
