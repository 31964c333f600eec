"""MemoryStore: the default store, in this process only."""

from __future__ import annotations

from collections import deque

import attrs

from .._models import EventSource, TaskSnapshot
from ._base import StoredSubmission, StoredTask, SubmissionState

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps submissions and task states in memory; nothing survives the process.

    Args:
        max_events: updates journaled at most (the oldest are dropped first); finished
            tasks' records are forgotten once more than ``max_tasks`` are kept.
    """

    def __init__(self, *, max_events: int = 10_000, max_tasks: int = 100_000) -> None:
        self._submissions: dict[str, StoredSubmission] = {}
        self._snapshots: dict[str, TaskSnapshot] = {}
        self._events: deque[tuple[TaskSnapshot, EventSource, bool]] = deque(maxlen=max_events)
        self._max_tasks = max_tasks

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._submissions)} submissions)"

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def save_submission(self, submission: StoredSubmission) -> None:
        """Journal a submission before it is sent."""
        self._submissions[submission.nonce] = submission
        self._trim()

    async def mark_submitted(self, nonce: str, task_id: str) -> None:
        """Record the task a submission created."""
        submission = self._submissions.get(nonce)
        if submission is not None:
            self._submissions[nonce] = attrs.evolve(
                submission, state=SubmissionState.SUBMITTED, task_id=task_id
            )

    async def mark_uncertain(self, nonce: str) -> None:
        """Record that a submission's outcome is unknown."""
        submission = self._submissions.get(nonce)
        if submission is not None and submission.task_id is None:
            self._submissions[nonce] = attrs.evolve(submission, state=SubmissionState.UNCERTAIN)

    async def drop_submission(self, nonce: str) -> None:
        """Forget a submission that certainly created nothing."""
        self._submissions.pop(nonce, None)

    async def save_event(
        self,
        snapshot: TaskSnapshot,
        source: EventSource,
        *,
        confirmed: bool,
        nonce: str | None = None,
    ) -> None:
        """Journal an update; confirmed ones become the task's known state."""
        self._events.append((snapshot, source, confirmed))  # the oldest drop off at the limit
        if confirmed:
            self._snapshots[snapshot.task_id] = snapshot

    def _by_task(self) -> dict[str, StoredSubmission]:
        return {s.task_id: s for s in self._submissions.values() if s.task_id is not None}

    async def unfinished(self) -> list[StoredTask]:
        """Submitted tasks whose last confirmed status is not final."""
        tasks = [
            await self._task(task_id, submission) for task_id, submission in self._by_task().items()
        ]
        return [task for task in tasks if not task.finished]

    async def _task(self, task_id: str, submission: StoredSubmission | None) -> StoredTask:
        return StoredTask(task_id, self._snapshots.get(task_id), submission)

    async def uncertain(self) -> list[StoredSubmission]:
        """Submissions without a known task."""
        return [s for s in self._submissions.values() if s.task_id is None]

    async def task(self, task_id: str) -> StoredTask | None:
        """One task, if known."""
        submission = self._by_task().get(task_id)
        if submission is None and task_id not in self._snapshots:
            return None
        return await self._task(task_id, submission)

    async def submissions(self) -> list[StoredSubmission]:
        """Every journaled submission, oldest first."""
        return sorted(self._submissions.values(), key=lambda s: s.created_at)

    async def events(
        self, task_id: str | None = None
    ) -> list[tuple[TaskSnapshot, EventSource, bool]]:
        """Journaled updates, oldest first."""
        return [e for e in self._events if task_id in (None, e[0].task_id)]

    def _trim(self) -> None:
        if len(self._submissions) <= self._max_tasks:
            return
        for nonce, submission in list(self._submissions.items()):
            snapshot = self._snapshots.get(submission.task_id or "")
            if snapshot is not None and snapshot.is_terminal:
                del self._submissions[nonce]
                self._snapshots.pop(snapshot.task_id, None)
            if len(self._submissions) <= self._max_tasks:
                return
