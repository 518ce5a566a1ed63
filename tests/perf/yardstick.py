"""How fast this machine runs Python right now, for reading a benchmark's figures.

The development machine is a VM whose speed changes from hour to hour (docs/performance.md, the seventh pass: four times
slower in one session, stalling for seconds under load). Every benchmark table ends with this figure, measured
when the table is printed: the same code on the same interpreter, so two runs' figures compare only when their
yardsticks are close. It runs boshcm's BOSH request-head reader on a fixed poll head; 4.6 µs was the quiet machine
at its usual speed (2026-12-02).
"""

from __future__ import annotations

import timeit

from boshcm.bosh.lane import read_head

HEAD = (b"POST /http-bind HTTP/1.1\r\nHost: 127.0.0.1:5280\r\nUser-Agent: Mozilla/5.0\r\n"
        b"Content-Type: text/xml; charset=utf-8\r\nAccept: */*\r\nOrigin: http://127.0.0.1:5280\r\n"
        b"Content-Length: 98\r\n\r\n" + b"x" * 98)
PATHS = frozenset({b"/http-bind"})


def yardstick_microseconds(number: int = 20_000, repeat: int = 5) -> float:
    """The best of `repeat` timings of `number` reads of one poll head, per read."""
    return min(timeit.repeat(lambda: read_head(HEAD, PATHS, 65_536), number=number, repeat=repeat)) / number * 1e6
