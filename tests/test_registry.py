"""The task registry: the state machine, and what a followed task costs to keep."""

from __future__ import annotations

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
    events = record.status_events()
    kept = [update for update, was_applied in zip(updates, applied, strict=True) if was_applied]
    assert [(e.snapshot, e.source) for e in events] == kept
    assert all(before <= e.received_at <= datetime.now(UTC) for e in events)
    assert [e.snapshot.status_text for e in events] == [
        "Preparing",
        "queuing",
        "Processing",
        "success",
    ]


def test_a_followed_task_holds_few_tracked_objects() -> None:
    """Plain updates are remembered as text: the garbage collector has nothing more to walk.

    Every container the collector tracks brings its next collection closer and lengthens the
    full ones; a service following tens of thousands of tasks would pause that much longer.
    """
    registry = TaskRegistry()
    for status in (TaskStatus.PREPARING, TaskStatus.QUEUEING, TaskStatus.PROCESSING):
        registry.apply(TaskSnapshot("8", status), EventSource.CALLBACK)
    record = registry.get("8")
    assert record is not None
    assert type(record.history) is str
    assert record.rich == ()  # no snapshot object kept for the history of plain updates
    assert len(record.status_events()) == 3
    assert not record.finished  # and no Event was made for a task nobody awaited
    assert record._done is None
    success = TaskSnapshot("8", TaskStatus.SUCCESS, file_id="5", width=1280, height=720)
    registry.apply(success, EventSource.POLL)
    assert list(record.rich) == [success]  # more than a status: kept as it is
    assert record.status_events()[-1].snapshot is success


async def test_waiting_after_the_end_returns_at_once() -> None:
    """wait_finished() makes no Event for a task that has already ended."""
    registry = TaskRegistry()
    registry.apply(TaskSnapshot("9", TaskStatus.FAIL, error_code=1026), EventSource.POLL)
    record = registry.get("9")
    assert record is not None
    assert record.finished
    await record.wait_finished()
    assert record._done is None


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
    assert [e.snapshot for e in record.status_events()] == [queued, cancelled]
    other = TaskSnapshot("12", TaskStatus.SUCCESS, status_text="succeeded", video_url="https://x/v")
    registry.apply(other, EventSource.POLL)
    again = registry.get("12")
    assert again is not None
    assert again.status_events()[0].snapshot == other  # the URL is not lost in the history
