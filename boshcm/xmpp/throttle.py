"""Failed-authentication throttle per remote address (pure; time is passed in)."""

from __future__ import annotations

from collections import OrderedDict, deque

MAX_TRACKED_ADDRESSES = 10_000


class AuthThrottle:
    """After `max_failures` failures within `window_seconds`, an address is refused for `lockout_seconds`."""

    def __init__(self, *, max_failures: int = 5, window_seconds: float = 60.0,
                 lockout_seconds: float = 60.0) -> None:
        self._max_failures = max_failures
        self._window_seconds = window_seconds
        self._lockout_seconds = lockout_seconds
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked_until: dict[str, float] = {}

    def record_failure(self, address: str, now: float) -> None:
        failures = self._failures.pop(address, None) or deque()
        failures.append(now)
        while failures and failures[0] <= now - self._window_seconds:
            failures.popleft()
        self._failures[address] = failures  # most recent last, for eviction
        if len(failures) >= self._max_failures:
            self._locked_until[address] = now + self._lockout_seconds
            failures.clear()
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            oldest, _ = self._failures.popitem(last=False)
            self._locked_until.pop(oldest, None)

    def record_success(self, address: str, now: float) -> None:
        self._failures.pop(address, None)

    def is_blocked(self, address: str, now: float) -> bool:
        until = self._locked_until.get(address)
        if until is None:
            return False
        if now >= until:
            del self._locked_until[address]
            return False
        return True
