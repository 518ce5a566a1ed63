"""Iqs forwarded through occupant JIDs and awaiting their answer (XEP-0045 §7.5, §18.1), pure and bounded.

A request to `room/nick` goes to the occupant's real JID under an id of the room's; the answer is routed
back only when it comes from that real JID, with the requester's own id. Two requesters may use the same
id; one requester may not fill the table: at most `PER_PAIR` requests wait per requester and target (a
further one forgets the oldest), at most `max_pending` per room, and each expires after `timeout_seconds`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from boshcm.jid import JID

PER_PAIR = 4


@dataclass(frozen=True, slots=True)
class PendingIq:
    requester: JID                # real full JID that asked
    request_id: str | None        # the id the requester used
    target: JID                   # real full JID the request went to: only it may answer
    target_nick: str
    expires_at: float


class IqProxy:
    def __init__(self, *, max_pending: int, timeout_seconds: float, id_factory: Callable[[], str]) -> None:
        self._max_pending = max_pending
        self._timeout_seconds = timeout_seconds
        self._id_factory = id_factory
        self._pending: dict[str, PendingIq] = {}     # forwarded id -> request; oldest first = expiry order
        self._by_pair: dict[tuple[JID, JID], deque[str]] = {}

    def forward(self, *, requester: JID, request_id: str | None, target: JID, target_nick: str,
                now: float) -> str | None:
        """The id to forward the request under, or None when the room has too many requests in flight."""
        self._expire(now)
        waiting = self._by_pair.get((requester, target))
        if waiting is not None and len(waiting) >= PER_PAIR:
            self._forget(waiting[0])
        elif len(self._pending) >= self._max_pending:
            return None
        forwarded_id = self._id_factory()
        while forwarded_id in self._pending:
            forwarded_id = self._id_factory()
        self._pending[forwarded_id] = PendingIq(requester=requester, request_id=request_id, target=target,
                                                target_nick=target_nick, expires_at=now + self._timeout_seconds)
        self._by_pair.setdefault((requester, target), deque()).append(forwarded_id)
        return forwarded_id

    def answered(self, *, forwarded_id: str, sender: JID, now: float) -> PendingIq | None:
        """The request this answer belongs to, once; None when not awaited, late, or from someone else."""
        self._expire(now)
        pending = self._pending.get(forwarded_id)
        if pending is None or pending.target != sender:
            return None
        self._forget(forwarded_id)
        return pending

    def __len__(self) -> int:
        return len(self._pending)

    def _expire(self, now: float) -> None:
        while self._pending:
            oldest = next(iter(self._pending))
            if self._pending[oldest].expires_at > now:
                return
            self._forget(oldest)

    def _forget(self, forwarded_id: str) -> None:
        pending = self._pending.pop(forwarded_id)
        pair = (pending.requester, pending.target)
        waiting = self._by_pair[pair]
        waiting.remove(forwarded_id)
        if not waiting:
            del self._by_pair[pair]
