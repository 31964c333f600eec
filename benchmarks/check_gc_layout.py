"""What following many tasks costs the garbage collector: tracked objects per task.

Run: ``.venv/bin/python -m benchmarks.check_gc_layout [--tasks 20000]``.

Every container the collector tracks brings its next collection closer and lengthens the
full ones: a service following tens of thousands of tasks pauses that much longer, and the
receiver answers that much slower meanwhile. This check counts, with ``gc.get_objects()``,
the objects the collector tracks for

- a task followed through three plain updates (Preparing, Queueing, Processing), then
  finished with a success that carries a file id;
- a submission journaled in a :class:`~minimax_s2v.stores.MemoryStore` and bound to its
  task, and an update journaled there;

and fails (exit status 1) when one costs more than its budget. The counts are exact, not
timings: the check gives the same answer on a loaded machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from minimax_s2v import EventSource, TaskSnapshot, TaskStatus
from minimax_s2v._tracking import TaskRegistry
from minimax_s2v.stores import MemoryStore, StoredSubmission, SubmissionState

#: Tracked objects a followed task may cost: its record. Its last snapshot and its history
#: are kept in the record as a tuple of atoms and text, which the collector does not track.
TASK_BUDGET = 1
#: Tracked objects a journaled submission may cost in a MemoryStore: none.
SUBMISSION_BUDGET = 0
#: And a journaled update, its snapshot included: none.
EVENT_BUDGET = 0


def tracked_per_item(count: int, build: Callable[[int], object]) -> float:
    """The objects the collector tracks for each of ``count`` items ``build`` keeps."""
    gc.collect()
    before = len(gc.get_objects())
    kept = build(count)
    gc.collect()
    after = len(gc.get_objects())
    del kept
    return (after - before) / count


def follow_tasks(count: int) -> TaskRegistry:
    registry = TaskRegistry(finished_ttl=3600.0)
    for i in range(count):
        task_id = str(10**14 + i)
        for status in (TaskStatus.PREPARING, TaskStatus.QUEUEING, TaskStatus.PROCESSING):
            registry.apply(TaskSnapshot(task_id, status), EventSource.CALLBACK)
    return registry


def finish_tasks(count: int) -> TaskRegistry:
    registry = follow_tasks(count)
    for i in range(count):
        task_id = str(10**14 + i)
        success = TaskSnapshot(task_id, TaskStatus.SUCCESS, file_id=str(10**13 + i))
        registry.apply(success, EventSource.POLL)
    return registry


def journal(count: int) -> MemoryStore:
    store = MemoryStore(max_tasks=count)
    created = datetime(2026, 1, 1, tzinfo=UTC)

    async def fill() -> None:
        for i in range(count):
            nonce = f"nonce{i:08d}"
            payload = {"model": "S2V-01", "prompt": f"line {i}"}
            submission = StoredSubmission(
                nonce, "f" * 32, payload, f"line {i}", SubmissionState.SENDING, created
            )
            await store.save_submission(submission)
            await store.mark_submitted(nonce, str(10**14 + i))

    asyncio.run(fill())
    return store


def journal_events(count: int) -> MemoryStore:
    """Journaling ``count`` updates, each confirmed (kept as its task's state too)."""
    store = MemoryStore(max_events=count)

    async def fill() -> None:
        for i in range(count):
            snapshot = TaskSnapshot(str(10**14 + i), TaskStatus.PROCESSING)
            await store.save_event(snapshot, EventSource.CALLBACK, confirmed=True)

    asyncio.run(fill())
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20_000)
    count = parser.parse_args().tasks
    rows: list[tuple[str, Callable[[int], object], int]] = [
        ("a task followed, three plain updates", follow_tasks, TASK_BUDGET),
        ("a task followed to its success", finish_tasks, TASK_BUDGET),
        ("a submission journaled in MemoryStore", journal, SUBMISSION_BUDGET),
        ("an update journaled in MemoryStore", journal_events, EVENT_BUDGET),
    ]
    failed = False
    for what, build, budget in rows:
        per_item = tracked_per_item(count, build)
        verdict = "ok" if per_item <= budget + 0.01 else "OVER BUDGET"
        failed |= verdict != "ok"
        print(f"{what:<42} {per_item:6.2f} tracked objects each (budget {budget}): {verdict}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
