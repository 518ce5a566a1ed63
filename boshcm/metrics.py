"""Prometheus metrics (docs/operations.md), on a listener of their own, off by default; and GC tuning.

Nothing here counts per stanza: the gauges and counters are read at scrape time from counts the server keeps
anyway (the hub's deliveries, the router's received stanzas, the login throttle's evaluations, the BOSH
registry, the rooms). Two things are measured here: event-loop lag (a periodic task that sleeps and notes how
late it wakes) and garbage-collector pauses (`gc.callbacks`, start to stop of each collection).

Extensions (the quiz's games and answers) are not known here; an extension that wants metrics registers its
own collector on `Metrics.registry`.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

Read = Callable[[], float]

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
GC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One value read at scrape time: a counter (only grows) or a gauge, with optional labels."""

    name: str
    documentation: str
    read: Read
    counter: bool = False
    labels: tuple[tuple[str, str], ...] = ()


class _Readings(Collector):
    def __init__(self, readings: list[Reading]) -> None:
        self._readings = readings

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for reading in self._readings:
            family = families.get(reading.name)
            label_names = [name for name, _value in reading.labels]
            if family is None:
                kind = CounterMetricFamily if reading.counter else GaugeMetricFamily
                family = families[reading.name] = kind(reading.name, reading.documentation, labels=label_names)
            family.add_metric([value for _name, value in reading.labels], float(reading.read()))
        yield from families.values()


class Metrics:
    """The registry with boshcm's metrics; `add` registers scrape-time readings of the running server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._readings: list[Reading] = []
        self.registry.register(_Readings(self._readings))
        self.loop_lag = Histogram("boshcm_event_loop_lag_seconds", "How late the event loop woke a periodic task",
                                  buckets=LAG_BUCKETS, registry=self.registry)
        self.loop_lag_last = Gauge("boshcm_event_loop_lag_last_seconds", "The last event-loop lag measured",
                                   registry=self.registry)
        self.gc_pause = Histogram("boshcm_gc_pause_seconds", "Garbage-collector pauses, by generation",
                                  ["generation"], buckets=GC_BUCKETS, registry=self.registry)
        self._gc_started: float | None = None

    def add(self, reading: Reading) -> None:
        self._readings.append(reading)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # --- GC pauses --------------------------------------------------------------------------------

    def watch_gc(self) -> None:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def unwatch_gc(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            self.gc_pause.labels(str(info.get("generation", ""))).observe(time.perf_counter() - self._gc_started)
            self._gc_started = None

    # --- event-loop lag ---------------------------------------------------------------------------

    async def probe_loop_lag(self, interval_seconds: float) -> None:
        """Forever: sleep `interval_seconds`, record how much later than asked the loop woke us."""
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(interval_seconds)
            lag = max(0.0, time.perf_counter() - asked - interval_seconds)
            self.loop_lag.observe(lag)
            self.loop_lag_last.set(lag)

    # --- HTTP -------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(body=self.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        return app


class CollectorHold:
    """Keeps Python's cyclic collector out of the middle of one stanza's consequences.

    A room message to 500 occupants makes 500 copies and 500 answers; the allocations cross the generation-0
    threshold about once per message, and that collection, landing in the middle of the fan-out, walks every
    object the 500 held requests made since the last one (tens of thousands). `hold()` switches the collector off
    for the rest of this loop turn and the next (where bosh/http.py writes the turn's answers), then back on: the
    collection runs after the answers are out, not between the first and the last occupant. Nothing is skipped,
    only moved, and the collector stays off for two loop turns at most."""

    def __init__(self) -> None:
        self._holding = False

    def hold(self) -> None:
        if self._holding or not gc.isenabled():
            return   # held already this turn, or switched off by someone else (left alone)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return   # no event loop (a synchronous use, e.g. tests/perf/profile_fanout.py): nothing to wait for
        gc.disable()
        self._holding = True
        # Two turns: the answers this turn queues are written in the next one, behind this callback.
        loop.call_soon(loop.call_soon, self._release)

    def _release(self) -> None:
        self._holding = False
        gc.enable()
        # What was due while held runs now, whatever comes next (the next stanza would hold it again at once).
        if gc.get_count()[0] > gc.get_threshold()[0]:
            gc.collect(0)


def tune_gc(*, threshold0: int, threshold1: int, threshold2: int, freeze: bool) -> None:
    """Fewer, cheaper collections (docs/performance.md, issue 14, fifth pass):
    - a higher generation-0 threshold;
    - generation-1 collections after fewer young ones, each walking what fewer young collections left: the same
      objects in all, in shorter pauses (10,000 sessions logging in: up to 96 ms with Python's 10, 5-16 ms with 2);
    - full collections no more often than with Python's thresholds: threshold2 counts generation-1 collections,
      now five times as many (with Python's 10, a 10,000-session login wave made 11 full collections of up to
      350 ms instead of 4);
    - and, after start-up, everything allocated so far moved out of the collector's sight, so full collections no
      longer walk the server's long-lived objects (modules, tables, compiled patterns)."""
    gc.set_threshold(threshold0, threshold1, threshold2)
    if freeze:
        gc.collect()
        gc.freeze()
