"""The task registry: the state machine, and what a followed task costs to keep."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from minimax_s2v import EventSource, PollPolicy, TaskSnapshot, TaskStatus
from minimax_s2v._models import freeze_snapshot, state_is_terminal, state_status, thaw_snapshot
from minimax_s2v._tasks import TaskRecord
from minimax_s2v._tracking import Poller, TaskRegistry
from minimax_s2v.stores import MemoryStore


def test_history_gives_back_every_applied_update() -> None:
    """Task.events rebuilds each applied snapshot exactly, with its source and arrival time."""
    registry = TaskRegistry()
    before = datetime.now(UTC)
    updates = [
        (TaskSnapshot("7", TaskStatus.PREPARING), EventSource.POLL),
        (TaskSnapshot("7", TaskStatus.QUEUEING, status_text="queuing"), EventSource.CALLBACK),
        (TaskSnapshot("7", TaskStatus.QUEUEING), EventSource.CALLBACK),  # a duplicate
        (TaskSnapshot("7", TaskStatus.PROCESSING, width=1280, height=720), EventSource.STORE),
        (
            TaskSnapshot("7", TaskStatus.SUCCESS, file_id="99", status_text="success"),
            EventSource.POLL,
        ),
    ]
    applied = [registry.apply(snapshot, source) for snapshot, source in updates]
    assert applied == [True, True, False, True, True]
    record = registry.get("7")
    assert record is not None
    events = record.history.events()
    kept = [update for update, was_applied in zip(updates, applied, strict=True) if was_applied]
    assert [(e.snapshot, e.source) for e in events] == kept
    assert all(before <= e.received_at <= datetime.now(UTC) for e in events)
    assert [e.snapshot.status_text for e in events] == [
        "Preparing",
        "queuing",
        "Processing",
        "success",
    ]


def test_a_history_keeps_plain_updates_and_rich_snapshots_alike() -> None:
    """Plain updates and snapshots with more than a status come back as they were applied.

    (What a followed task costs the garbage collector is checked by
    ``benchmarks/check_gc_layout.py``.)
    """
    registry = TaskRegistry()
    for status in (TaskStatus.PREPARING, TaskStatus.QUEUEING, TaskStatus.PROCESSING):
        registry.apply(TaskSnapshot("8", status), EventSource.CALLBACK)
    record = registry.get("8")
    assert record is not None
    assert len(record.history) == 3
    assert [e.snapshot.status for e in record.history.events()] == [
        TaskStatus.PREPARING,
        TaskStatus.QUEUEING,
        TaskStatus.PROCESSING,
    ]
    assert not record.finished
    success = TaskSnapshot("8", TaskStatus.SUCCESS, file_id="5", width=1280, height=720)
    registry.apply(success, EventSource.POLL)
    assert len(record.history) == 4
    assert record.history.events()[-1].snapshot == success  # more than a status: kept whole


async def test_waiting_after_the_end_returns_at_once() -> None:
    """wait_finished() on a task that has already ended returns without waiting."""
    registry = TaskRegistry()
    registry.apply(TaskSnapshot("9", TaskStatus.FAIL, error_code=1026), EventSource.POLL)
    record = registry.get("9")
    assert record is not None
    assert record.finished
    async with asyncio.timeout(5):
        await record.wait_finished()


def test_cancelled_is_final_and_v2_history_is_exact() -> None:
    """A cancelled task ends; nothing after it applies; V2 snapshots are kept exactly."""
    registry = TaskRegistry()
    queued = TaskSnapshot("11", TaskStatus.QUEUEING, status_text="queued")
    cancelled = TaskSnapshot("11", TaskStatus.CANCELLED, status_text="cancelled")
    assert registry.apply(queued, EventSource.POLL)
    assert registry.apply(cancelled, EventSource.POLL)
    late = TaskSnapshot("11", TaskStatus.SUCCESS, status_text="succeeded", video_url="https://x/v")
    assert not registry.apply(late, EventSource.CALLBACK)
    record = registry.get("11")
    assert record is not None
    assert record.finished
    assert [e.snapshot for e in record.history.events()] == [queued, cancelled]
    other = TaskSnapshot("12", TaskStatus.SUCCESS, status_text="succeeded", video_url="https://x/v")
    registry.apply(other, EventSource.POLL)
    again = registry.get("12")
    assert again is not None
    assert again.history.events()[0].snapshot == other  # the URL is not lost in the history


def test_a_history_keeps_every_rich_snapshot_in_order() -> None:
    """One, two and three snapshots with more than a status all come back, in order."""
    registry = TaskRegistry()
    rich = [
        TaskSnapshot("13", TaskStatus.QUEUEING, status_text="Queuing now"),
        TaskSnapshot("13", TaskStatus.PROCESSING, width=720, height=1280),
        TaskSnapshot("13", TaskStatus.SUCCESS, file_id="77", width=720, height=1280),
    ]
    registry.apply(TaskSnapshot("13", TaskStatus.PREPARING), EventSource.POLL)
    record = registry.get("13")
    assert record is not None
    for count, snapshot in enumerate(rich, start=1):
        registry.apply(snapshot, EventSource.CALLBACK)
        events = record.history.events()
        assert [e.snapshot for e in events[1:]] == rich[:count]
        assert events[0].snapshot == TaskSnapshot("13", TaskStatus.PREPARING)


_TEXT = st.none() | st.text(max_size=20)
_NUMBER = st.none() | st.integers(min_value=0, max_value=2**63)


@given(
    task_id=st.text(min_size=1, max_size=20),
    status=st.sampled_from(list(TaskStatus)),
    file_id=_TEXT,
    width=_NUMBER,
    height=_NUMBER,
    error_code=_NUMBER,
    error_message=_TEXT,
    status_text=st.text(max_size=20),
    video_url=_TEXT,
)
def test_a_snapshot_kept_as_its_state_comes_back_equal(**fields: Any) -> None:
    """Whatever a snapshot holds, its state, the record and MemoryStore give it back equal."""
    snapshot = TaskSnapshot(**fields)
    state = freeze_snapshot(snapshot)
    assert thaw_snapshot(state) == snapshot
    assert state_status(state) is snapshot.status
    assert state_is_terminal(state) is snapshot.is_terminal
    record = TaskRecord(snapshot.task_id, None, None)
    assert record.keep(snapshot) == state
    assert record.snapshot == snapshot
    assert record.status is snapshot.status
    store = MemoryStore()
    asyncio.run(store.save_event(snapshot, EventSource.CALLBACK, confirmed=True))
    assert asyncio.run(store.events()) == [(snapshot, EventSource.CALLBACK, True)]
    stored = asyncio.run(store.task(snapshot.task_id))
    assert stored is not None
    assert stored.snapshot == snapshot


def test_the_collector_stops_tracking_a_followed_tasks_snapshots() -> None:
    """A task's last snapshot and its rich history are states the collector does not walk."""
    registry = TaskRegistry()
    registry.apply(TaskSnapshot("21", TaskStatus.PROCESSING, width=720), EventSource.CALLBACK)
    registry.apply(TaskSnapshot("21", TaskStatus.SUCCESS, file_id="5"), EventSource.POLL)
    record = registry.get("21")
    assert record is not None
    gc.collect()
    # The record's own storage, read as the history view and the snapshot property do.
    held = [record._state, *record._rich]
    assert held[0] is not None
    assert not any(gc.is_tracked(state) for state in held)
    assert record.snapshot == TaskSnapshot("21", TaskStatus.SUCCESS, file_id="5")


async def test_the_poller_polls_an_earlier_task_followed_after_a_later_one() -> None:
    """A task followed to be polled sooner than the one the poller sleeps for is polled first.

    (A task due later than the poller's next one does not wake it: it is reached anyway.)
    """
    registry = TaskRegistry()
    polled: list[str] = []

    async def fetch(task_id: str) -> TaskSnapshot:
        polled.append(task_id)
        return TaskSnapshot(task_id, TaskStatus.SUCCESS, file_id="1")

    async def apply(snapshot: TaskSnapshot) -> None:
        registry.apply(snapshot, EventSource.POLL)

    poller = Poller(fetch, registry, PollPolicy(max_rate=1000.0), apply)
    try:
        poller.follow(registry.track("late"), 30.0)
        await asyncio.sleep(0.01)  # the poller now sleeps until "late" is due
        for task_id, delay in (("soon", 0.05), ("later", 60.0), ("next", 0.1)):
            poller.follow(registry.track(task_id), delay)
        async with asyncio.timeout(5):
            while len(polled) < 2:
                await asyncio.sleep(0.01)
    finally:
        await poller.close()
    assert polled == ["soon", "next"]
