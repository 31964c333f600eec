"""MemoryStore keeps many submissions without lengthening the garbage collector's passes."""

from __future__ import annotations

import gc
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


async def test_submissions_are_not_tracked_by_the_collector() -> None:
    """A dict of strings is left alone by the collector: its size costs no collection time.

    A dict holding tracked objects is traversed by every full collection; one that flips
    between untracked and tracked is traversed by every young collection too.
    """
    store = MemoryStore()
    for i in range(1000):
        await store.save_submission(_submission(i))
        await store.mark_submitted(f"nonce{i:08d}", str(10**14 + i))
    gc.collect()
    for kept in (
        store._submissions,
        store._fingerprints,
        store._labels,
        store._created,
        store._states,
        store._task_ids,
    ):
        assert len(kept) == 1000
        assert not gc.is_tracked(kept)
    again = await store.submissions()
    assert again[7] == attrs.evolve(
        _submission(7), state=SubmissionState.SUBMITTED, task_id="100000000000007"
    )


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
