"""Login throttling per account and per address, and the per-session stanza token bucket (pure; `now` in).

Theory of operation. Every failed password check is charged to the *account* it named, keyed by the
normalised username whether or not such an account exists, so the throttle's behaviour never tells an
attacker which names are real. Failures against accounts that do exist are also charged to the *address*
they came from; failures against made-up names are not, so a flood of them cannot lock real users out of a
shared address (the price, an enumeration signal of one bit per delayed address, is bounded in
docs/security.md "Logins"). After a counter's free failures, each further failure sets a doubling delay
(first_delay_seconds, 2x, 4x ... capped at max_delay_seconds) during which attempts are refused without
evaluating the password, so a guess cannot be tested. A counter is forgotten after `forget_seconds` without
failures, counted from the end of its delay.

An (address, account) pair that logged in successfully within `remember_seconds` is *trusted*: it is judged
only by its own counter (failures from that address on that account since its last success), so an attack
on an account from elsewhere, or on other accounts from the same address, does not lock its owner out.

Every table is bounded (`max_entries`); eviction takes the least recently touched entry that is not under a
delay, so flooding the table with fresh names cannot cheaply wipe the record of an attack in progress.
Keys are 16-byte digests: a username may be 1023 bytes, and the tables must stay small.

This file knows nothing of SASL, sockets or the clock.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

# A full table first tries this many of its oldest entries for one that is not under a delay.
_EVICTION_PROBES = 16
# 2**60 seconds is beyond any cap; it keeps the doubling from overflowing a float.
_MAX_DOUBLINGS = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottleSettings:
    account_free_failures: int = 5
    address_free_failures: int = 5
    first_delay_seconds: float = 1.0
    max_delay_seconds: float = 300.0
    forget_seconds: float = 900.0
    remember_seconds: float = 30 * 86_400.0
    max_entries: int = 20_000


@dataclass(slots=True)
class _Counter:
    failures: int = 0
    last_failure_at: float = float("-inf")
    delayed_until: float = float("-inf")

    def delayed(self, now: float) -> bool:
        return now < self.delayed_until

    def fail(self, now: float, free: int, settings: ThrottleSettings) -> None:
        if now - max(self.last_failure_at, self.delayed_until) >= settings.forget_seconds:
            self.failures = 0
        self.failures += 1
        self.last_failure_at = now
        if self.failures > free:
            doublings = min(self.failures - free - 1, _MAX_DOUBLINGS)
            delay = min(settings.first_delay_seconds * 2.0 ** doublings, settings.max_delay_seconds)
            self.delayed_until = max(self.delayed_until, now + delay)


@dataclass(slots=True)
class _Trusted:
    succeeded_at: float
    counter: _Counter


_V = TypeVar("_V", _Counter, _Trusted)


class _Table(Generic[_V]):
    """An LRU map with a fixed size that prefers to evict entries not under a delay."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[bytes, _V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> _V | None:
        return self._entries.get(key)

    def pop(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def put(self, key: bytes, value: _V, now: float) -> None:
        """Insert or refresh `value` as the most recently touched entry."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) <= self._max_entries:
            return
        for _probe in range(_EVICTION_PROBES):
            oldest, entry = next(iter(self._entries.items()))
            counter = entry.counter if isinstance(entry, _Trusted) else entry
            if oldest == key or not counter.delayed(now):
                break
            self._entries.move_to_end(oldest)
        self._entries.popitem(last=False)


def _digest(*parts: str) -> bytes:
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=16).digest()


def address_key(address: str) -> str:
    """The unit an address is throttled as: an IPv4 address, or the /64 an IPv6 host usually owns."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


class AuthThrottle:
    """Decides whether a login attempt may be evaluated, and remembers how attempts went."""

    def __init__(self, settings: ThrottleSettings | None = None) -> None:
        self._settings = settings or ThrottleSettings()
        size = self._settings.max_entries
        self._accounts: _Table[_Counter] = _Table(size)
        self._addresses: _Table[_Counter] = _Table(size)
        self._trusted: _Table[_Trusted] = _Table(size)
        self.logins = self.failures = 0  # evaluated attempts, read by boshcm/metrics.py

    def tracked(self) -> int:
        """Entries held in all tables (each bounded by max_entries)."""
        return len(self._accounts) + len(self._addresses) + len(self._trusted)

    def retry_at(self, *, address: str, username: str, now: float) -> float | None:
        """None when an attempt on `username` from `address` may be evaluated now; else when it may."""
        trusted = self._trusted_pair(address, username, now)
        if trusted is not None:
            return trusted.counter.delayed_until if trusted.counter.delayed(now) else None
        counters = (self._accounts.get(_digest(username)), self._addresses.get(_digest(address_key(address))))
        return max((counter.delayed_until for counter in counters if counter is not None and counter.delayed(now)),
                   default=None)

    def record_failure(self, *, address: str, username: str, account_exists: bool, now: float) -> None:
        """A password was evaluated and was wrong (or named no account)."""
        settings = self._settings
        self.failures += 1
        trusted = self._trusted_pair(address, username, now)
        if trusted is not None:
            trusted.counter.fail(now, settings.account_free_failures, settings)
        self._charge(self._accounts, _digest(username), settings.account_free_failures, now)
        if account_exists:
            self._charge(self._addresses, _digest(address_key(address)), settings.address_free_failures, now)

    def record_success(self, *, address: str, username: str, now: float) -> None:
        """The pair becomes trusted. Other counters stay: a login of one's own must not reset an attack."""
        self.logins += 1
        self._trusted.put(_digest(address_key(address), username), _Trusted(succeeded_at=now, counter=_Counter()),
                          now)

    def _trusted_pair(self, address: str, username: str, now: float) -> _Trusted | None:
        key = _digest(address_key(address), username)
        trusted = self._trusted.get(key)
        if trusted is not None and now - trusted.succeeded_at > self._settings.remember_seconds:
            self._trusted.pop(key)
            return None
        return trusted

    def _charge(self, table: _Table[_Counter], key: bytes, free: int, now: float) -> None:
        counter = table.get(key) or _Counter()
        counter.fail(now, free, self._settings)
        table.put(key, counter, now)


class TokenBucket:
    """A stanza token bucket: `burst` stanzas at once, refilled at `rate_per_second`.

    `refused` counts refusals since the bucket was last full: a client that never lets it refill is flooding.
    """

    __slots__ = ("_burst", "_rate", "_tokens", "_updated_at", "refused")

    def __init__(self, *, rate_per_second: float, burst: int, now: float) -> None:
        self._rate = rate_per_second
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated_at = now
        self.refused = 0

    def take(self, now: float) -> bool:
        elapsed = max(0.0, now - self._updated_at)
        self._updated_at = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        if self._tokens >= self._burst:
            self.refused = 0
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.refused += 1
        return False
