"""The BOSH sid table and its one deadline heap (boshcm/bosh/registry.py)."""

from __future__ import annotations

import itertools

from boshcm.bosh.registry import SessionRegistry, new_sid


def registry(max_sessions: int = 10) -> SessionRegistry[str]:
    names = itertools.count(1)
    return SessionRegistry(max_sessions=max_sessions, sid_factory=lambda: f"s{next(names)}")


def test_sids_are_unguessable_and_distinct() -> None:
    sids = {new_sid() for _ in range(1000)}
    assert len(sids) == 1000 and all(len(sid) >= 32 for sid in sids)


def test_a_new_sid_never_repeats_one_in_use() -> None:
    clashing = iter(["a", "a", "a", "b"])
    table: SessionRegistry[str] = SessionRegistry(max_sessions=5, sid_factory=lambda: next(clashing))
    table.add("a", "first")
    assert table.new_sid() == "b"


def test_full_at_max_sessions_and_not_after_one_leaves() -> None:
    table = registry(max_sessions=2)
    table.add(table.new_sid(), "one")
    assert not table.full
    table.add("s2", "two")
    assert table.full and len(table) == 2
    table.remove("s2")
    assert not table.full and table.get("s2") is None and table.values() == ["one"]


def test_due_sessions_come_in_deadline_order_once_each() -> None:
    table = registry()
    for sid, deadline in (("late", 30.0), ("early", 10.0), ("middle", 20.0), ("later", 40.0)):
        table.add(sid, sid)
        table.schedule(sid, deadline)
    assert table.next_deadline() == 10.0
    assert table.due(5.0) == []
    assert table.due(30.0) == ["early", "middle", "late"]
    assert table.due(30.0) == []          # unscheduled until rescheduled
    assert table.next_deadline() == 40.0


def test_a_moved_deadline_leaves_a_stale_entry_that_is_skipped() -> None:
    table = registry()
    table.add("a", "a")
    table.schedule("a", 10.0)
    table.schedule("a", 50.0)             # the old (10.0) entry stays in the heap, stale
    assert table.next_deadline() == 50.0
    assert table.due(20.0) == []
    table.schedule("a", 5.0)
    table.schedule("a", 50.0)             # and back: two entries for 50.0, one stale at 5.0
    assert table.due(60.0) == ["a"]


def test_removed_or_unscheduled_sessions_are_never_due() -> None:
    table = registry()
    for sid in ("gone", "idle", "kept"):
        table.add(sid, sid)
        table.schedule(sid, 10.0)
    table.remove("gone")
    table.schedule("idle", None)
    table.schedule("unknown", 1.0)        # not in the table: ignored
    assert table.due(100.0) == ["kept"]
    assert table.next_deadline() is None


def test_a_due_session_can_be_scheduled_again_at_the_same_deadline() -> None:
    table = registry()
    table.add("a", "a")
    table.schedule("a", 10.0)
    assert table.due(10.0) == ["a"]
    table.schedule("a", 10.0)
    assert table.due(10.0) == ["a"]


def test_deadlines_moved_again_and_again_do_not_pile_up_in_the_heap() -> None:
    table = registry(max_sessions=1000)
    for sid in ("a", "b", "c"):
        table.add(sid, sid)
    for step in range(100_000):   # a busy room: every answer and every request moves a deadline
        table.schedule("abc"[step % 3], 100.0 + step)
    assert len(table._heap) <= 2 * 3 + 64 + 1
    assert table.next_deadline() == 100.0 + 99_997
    assert table.due(200_000.0) == ["b", "c", "a"]   # in deadline order, once each
