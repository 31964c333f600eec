"""The task registry: the state machine, and what a followed task costs to keep."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from minimax_s2v import EventSource, TaskSnapshot, TaskStatus
from minimax_s2v._tracking import TaskRegistry


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
    assert record.history.events()[-1].snapshot is success  # more than a status: kept as is


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
