"""Where a fan-out's time goes inside a running boshcm, by phase (docs/performance.md, issue 14, fourth pass).

    BOSHCM_PHASE_LOG=/tmp/phases.log PYTHONPATH=tests/perf/phase_timing \
        .venv/bin/python -m tests.perf.bench_muc --only boshcm --occupants 500 --messages 20 --interval 0.3

Every Python process started with this directory on PYTHONPATH imports this file first; in `boshcm serve` it wraps
three methods once boshcm.app is imported and appends a line per slow call to BOSHCM_PHASE_LOG:
`feed` (a c2s read: the sender's message, routed and delivered to every occupant), `route` (the router and the room
alone, inside it) and `write` (BoshEndpoint._write_answers: rendering, writing and finishing the answers), each with
its start (perf_counter) and duration in ms. Delivery is feed minus route. Nothing of this is in boshcm itself.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

LOG = os.environ.get("BOSHCM_PHASE_LOG")
SLOW_SECONDS = 0.002


def _timed(owner: type, name: str, label: str, out: Any, slow: Callable[[Any, float], bool]) -> None:
    original = getattr(owner, name)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            took = time.perf_counter() - started
            if slow(self, took):
                out.write(f"{label} {started:.6f} {took * 1000:.3f}\n")

    setattr(owner, name, wrapper)


def _patch() -> None:
    from boshcm.bosh.http import BoshEndpoint
    from boshcm.xmpp.c2s import C2sConnection
    from boshcm.xmpp.router import Router

    out = open(LOG or os.devnull, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    _timed(C2sConnection, "_feed", "feed", out, lambda _self, took: took > SLOW_SECONDS)
    _timed(Router, "handle_stanza", "route", out, lambda _self, took: took > SLOW_SECONDS)
    _timed(BoshEndpoint, "_write_answers", "write", out, lambda _self, took: took > SLOW_SECONDS)


class _AfterApp(importlib.abc.MetaPathFinder):
    """Patches once boshcm.app (which imports the three modules) has been executed."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if name != "boshcm.app":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.loader is not None
        execute = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            _patch()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if LOG and "serve" in sys.argv:
    sys.meta_path.insert(0, _AfterApp())
