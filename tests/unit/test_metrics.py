"""boshcm/metrics.py: scrape-time readings, GC pauses, event-loop lag, GC tuning."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from boshcm.metrics import CollectorHold, Metrics, Reading, tune_gc


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_readings_are_taken_at_scrape_time_as_gauges_and_counters_with_labels() -> None:
    counts = {"c2s": 1, "bosh": 2, "received": 5}
    metrics = Metrics()
    for transport in ("c2s", "bosh"):
        metrics.add(Reading(name="boshcm_sessions", documentation="sessions", labels=(("transport", transport),),
                            read=lambda transport=transport: counts[transport]))  # type: ignore[misc]
    metrics.add(Reading(name="boshcm_stanzas_received", documentation="in", read=lambda: counts["received"],
                        counter=True))
    assert samples(metrics)[("boshcm_sessions", (("transport", "bosh"),))] == 2
    counts["bosh"], counts["received"] = 7, 9
    now = samples(metrics)
    assert now[("boshcm_sessions", (("transport", "bosh"),))] == 7
    assert now[("boshcm_sessions", (("transport", "c2s"),))] == 1
    assert now[("boshcm_stanzas_received_total", ())] == 9


def test_gc_pauses_are_observed_by_generation_while_watched() -> None:
    metrics = Metrics()
    metrics.watch_gc()
    try:
        gc.collect(2)
    finally:
        metrics.unwatch_gc()
    assert samples(metrics)[("boshcm_gc_pause_seconds_count", (("generation", "2"),))] >= 1
    gc.collect(2)
    assert samples(metrics)[("boshcm_gc_pause_seconds_count", (("generation", "2"),))] == 1


async def test_a_blocked_event_loop_shows_as_lag() -> None:
    metrics = Metrics()
    probe = asyncio.create_task(metrics.probe_loop_lag(0.01))
    await asyncio.sleep(0.02)
    time.sleep(0.1)   # a synchronous stall, as a long stanza loop would be
    await asyncio.sleep(0.03)
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)
    seen = samples(metrics)
    assert seen[("boshcm_event_loop_lag_seconds_count", ())] >= 2
    assert seen[("boshcm_event_loop_lag_seconds_bucket", (("le", "0.05"),))] < \
        seen[("boshcm_event_loop_lag_seconds_count", ())]   # one probe woke at least 50 ms late


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    (gc.enable if enabled else gc.disable)()


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_raises_the_young_threshold_and_freezes_what_start_up_made() -> None:
    tune_gc(threshold0=12_345, threshold1=3, threshold2=40, freeze=True)
    assert gc.get_threshold() == (12_345, 3, 40)
    assert gc.get_freeze_count() > 0


async def turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


@pytest.mark.usefixtures("restored_gc")
async def test_the_collector_is_held_for_the_turn_of_a_fan_out_and_the_next_then_runs_again() -> None:
    gc.enable()
    hold = CollectorHold()
    hold.hold()
    assert not gc.isenabled()
    hold.hold()   # a second stanza in the same turn: still one hold, one release
    seen: list[bool] = []
    loop = asyncio.get_running_loop()
    # Queued in this turn after the hold, as bosh/http.py queues the writing of the turn's answers.
    loop.call_soon(lambda: seen.append(gc.isenabled()))
    await turns(3)
    assert seen == [False]     # the answers were written with the collector still held
    assert gc.isenabled()      # and then it is back
    hold.hold()                # and can be held again
    assert not gc.isenabled()
    await turns(3)
    assert gc.isenabled()


@pytest.mark.usefixtures("restored_gc")
async def test_a_collector_switched_off_by_someone_else_stays_off() -> None:
    gc.disable()
    CollectorHold().hold()
    await turns(3)
    assert not gc.isenabled()


@pytest.mark.usefixtures("restored_gc")
def test_holding_without_an_event_loop_changes_nothing() -> None:
    gc.enable()
    CollectorHold().hold()   # e.g. tests/perf/profile_fanout.py, which routes without a loop
    assert gc.isenabled()


@pytest.mark.usefixtures("restored_gc")
async def test_a_collection_due_while_held_runs_when_the_hold_ends_even_if_the_next_stanza_holds_again() -> None:
    gc.enable()
    gc.set_threshold(100, *gc.get_threshold()[1:])
    hold = CollectorHold()
    hold.hold()
    collected_before = gc.get_stats()[0]["collections"]
    kept = [[index] for index in range(1_000)]   # far past the generation-0 threshold, nothing collected
    assert gc.get_stats()[0]["collections"] == collected_before
    # Under a flood the next stanza may be routed right after the release, before anything else allocates.
    hold._release()
    hold.hold()
    assert gc.get_stats()[0]["collections"] > collected_before
    assert len(kept) == 1_000
    await turns(3)
