"""XEP-0082 date-time stamps, written one way everywhere (delay stamps, archives, the quiz payload)."""

from __future__ import annotations

import datetime


def xep0082(wall: float) -> str:
    """`wall` (seconds since the epoch) as a UTC XEP-0082 DateTime with milliseconds: 2026-12-01T16:58:22.000Z."""
    stamp = datetime.datetime.fromtimestamp(wall, datetime.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
