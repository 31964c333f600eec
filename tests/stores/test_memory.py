"""MemoryStore keeps many submissions without lengthening the garbage collector's passes."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs

from minimax_s2v import EventSource, TaskSnapshot, TaskStatus
from minimax_s2v.stores import MemoryStore
from minimax_s2v.stores._base import StoredSubmission, SubmissionState


def _submission(i: int) -> StoredSubmission:
    return StoredSubmission(
        nonce=f"nonce{i:08d}",
        fingerprint="f" * 32,
        payload={"model": "S2V-01", "subject_reference": [{"image": ["https://x/f.jpg"]}]},
        label=f"line {i}",
        state=SubmissionState.SENDING,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_submissions_come_back_as_journaled() -> None:
    """Every field of a submission comes back, with the task it was bound to.

    (That a journaled submission costs the garbage collector nothing is checked by
    ``benchmarks/check_gc_layout.py``.)
    """
    store = MemoryStore()
    for i in range(1000):
        await store.save_submission(_submission(i))
        await store.mark_submitted(f"nonce{i:08d}", str(10**14 + i))
    await store.save_submission(_submission(1000))
    await store.mark_uncertain("nonce00001000")
    await store.mark_uncertain("nonce00000001")  # it has a task: stays submitted
    again = await store.submissions()
    assert len(again) == 1001
    assert again[7] == attrs.evolve(
        _submission(7), state=SubmissionState.SUBMITTED, task_id="100000000000007"
    )
    assert again[1].state is SubmissionState.SUBMITTED
    assert await store.uncertain() == [
        attrs.evolve(_submission(1000), state=SubmissionState.UNCERTAIN)
    ]
    found = await store.task("100000000000007")
    assert found is not None
    assert found.submission == again[7]
    await store.drop_submission("nonce00000007")
    assert await store.task("100000000000007") is None
    assert len(await store.unfinished()) == 999


async def test_finished_tasks_are_forgotten_beyond_max_tasks() -> None:
    """Past ``max_tasks`` the oldest finished tasks go first; unfinished ones are all kept."""
    store = MemoryStore(max_tasks=3)
    for i in range(3):
        await store.save_submission(_submission(i))
        await store.mark_submitted(f"nonce{i:08d}", f"{i}")
    done = TaskSnapshot("1", TaskStatus.SUCCESS, file_id="9")
    await store.save_event(done, EventSource.POLL, confirmed=True)
    await store.save_submission(_submission(3))  # a fourth: task 1, finished, is forgotten
    assert [s.nonce for s in await store.submissions()] == [
        "nonce00000000",
        "nonce00000002",
        "nonce00000003",
    ]
    assert await store.task("1") is None
    await store.save_submission(_submission(4))  # nothing finished to forget: all kept
    assert len(await store.submissions()) == 4
    assert [s.task_id for s in await store.uncertain()] == [None, None]
