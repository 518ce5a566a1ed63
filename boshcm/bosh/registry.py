"""The sid table and one deadline heap for every BOSH session of the process."""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Callable
from typing import Generic, TypeVar

SessionT = TypeVar("SessionT")


def new_sid() -> str:
    # Unguessable: a sid is a bearer credential until the stream is authenticated (and XEP-0124 §15 keys).
    return secrets.token_urlsafe(24)


class SessionRegistry(Generic[SessionT]):
    def __init__(self, *, max_sessions: int, sid_factory: Callable[[], str] = new_sid) -> None:
        self._sessions: dict[str, SessionT] = {}
        self._deadlines: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._max_sessions = max_sessions
        self._sid_factory = sid_factory

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def full(self) -> bool:
        return len(self._sessions) >= self._max_sessions

    def new_sid(self) -> str:
        while (sid := self._sid_factory()) in self._sessions:
            pass
        return sid

    def add(self, sid: str, session: SessionT) -> None:
        self._sessions[sid] = session

    def get(self, sid: str) -> SessionT | None:
        return self._sessions.get(sid)

    def remove(self, sid: str) -> None:
        self._sessions.pop(sid, None)
        self._deadlines.pop(sid, None)

    def values(self) -> list[SessionT]:
        return list(self._sessions.values())

    def schedule(self, sid: str, deadline: float | None) -> None:
        """Record a session's next deadline; stale heap entries are skipped lazily."""
        if deadline is None or sid not in self._sessions:
            self._deadlines.pop(sid, None)
            return
        if self._deadlines.get(sid) != deadline:
            self._deadlines[sid] = deadline
            heapq.heappush(self._heap, (deadline, sid))
            if len(self._heap) > 2 * len(self._deadlines) + 64:
                # Every answer and every request moves a session's deadline: without this the heap would keep
                # every deadline of the last `inactivity` seconds (a busy room: hundreds of thousands).
                self._heap = [(when, key) for key, when in self._deadlines.items()]
                heapq.heapify(self._heap)

    def next_deadline(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[str]:
        """Sessions whose deadline has passed; each is unscheduled until rescheduled."""
        result = []
        while self._heap and self._heap[0][0] <= now:
            deadline, sid = heapq.heappop(self._heap)
            if self._deadlines.get(sid) == deadline:
                del self._deadlines[sid]
                result.append(sid)
        return result

    def _drop_stale(self) -> None:
        while self._heap and self._deadlines.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
