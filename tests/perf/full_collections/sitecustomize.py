"""Each full collection of a running boshcm: its pause and the objects the collector tracks (docs/performance.md,
issue 14, eighth pass).

    BOSHCM_FULL_GC_LOG=/tmp/full-gc.log PYTHONPATH=tests/perf/full_collections \
        .venv/bin/python -m tests.perf.bench_bosh --only boshcm --sessions 10000 --idle-sessions 2000 --generators 2

Every Python process started with this directory on PYTHONPATH imports this file first; in `boshcm serve` it
appends a line per generation-2 collection to BOSHCM_FULL_GC_LOG: the wall clock, the pause (ms), what it freed,
and then the objects tracked (outside the frozen generation, counted after the pause) and frozen. The /metrics
histogram gives the pauses in buckets only, and not what they walked. Nothing of this is in boshcm itself.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

LOG = os.environ.get("BOSHCM_FULL_GC_LOG")

if LOG and "serve" in sys.argv:
    _out = open(LOG, "a", buffering=1)  # noqa: SIM115 -- open for the process's life
    _started = 0.0

    def _on_collection(phase: str, info: dict[str, Any]) -> None:
        global _started
        if info["generation"] != 2:
            return
        if phase == "start":
            _started = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - _started) * 1000
        _out.write(f"{time.time():.1f} full collection {pause_ms:.1f} ms freed {info['collected']} "
                   f"tracked {len(gc.get_objects())} frozen {gc.get_freeze_count()}\n")

    gc.callbacks.append(_on_collection)
