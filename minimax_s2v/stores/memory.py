"""MemoryStore: the default store, in this process only."""

from __future__ import annotations

import json
from collections import deque
from datetime import datetime

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
        # A submission is kept in dicts by nonce, of strings and datetimes only: the garbage
        # collector does not track such dicts, so up to max_tasks submissions add nothing to
        # its collections. The first one keeps the order of the journal.
        self._submissions: dict[str, str] = {}  # the payload, as JSON
        self._fingerprints: dict[str, str] = {}
        self._labels: dict[str, str | None] = {}
        self._created: dict[str, datetime] = {}
        self._states: dict[str, str] = {}  # SubmissionState values
        self._task_ids: dict[str, str | None] = {}
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
        nonce = submission.nonce
        self._submissions[nonce] = json.dumps(submission.payload, separators=(",", ":"))
        self._fingerprints[nonce] = submission.fingerprint
        self._labels[nonce] = submission.label
        self._created[nonce] = submission.created_at
        self._states[nonce] = submission.state.value
        self._task_ids[nonce] = submission.task_id
        self._trim()

    def _submission(self, nonce: str) -> StoredSubmission:
        return StoredSubmission(
            nonce,
            self._fingerprints[nonce],
            json.loads(self._submissions[nonce]),
            self._labels[nonce],
            SubmissionState(self._states[nonce]),
            self._created[nonce],
            self._task_ids[nonce],
        )

    async def mark_submitted(self, nonce: str, task_id: str) -> None:
        """Record the task a submission created."""
        if nonce in self._submissions:
            self._states[nonce] = SubmissionState.SUBMITTED.value
            self._task_ids[nonce] = task_id

    async def mark_uncertain(self, nonce: str) -> None:
        """Record that a submission's outcome is unknown."""
        if nonce in self._submissions and self._task_ids[nonce] is None:
            self._states[nonce] = SubmissionState.UNCERTAIN.value

    async def drop_submission(self, nonce: str) -> None:
        """Forget a submission that certainly created nothing."""
        self._forget(nonce)

    def _forget(self, nonce: str) -> None:
        for kept in (
            self._submissions,
            self._fingerprints,
            self._labels,
            self._created,
            self._states,
            self._task_ids,
        ):
            kept.pop(nonce, None)

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

    def _nonces_by_task(self) -> dict[str, str]:
        """Each known task's submission (the latest, should two name one task), undecoded."""
        return {task_id: n for n, task_id in self._task_ids.items() if task_id is not None}

    async def unfinished(self) -> list[StoredTask]:
        """Submitted tasks whose last confirmed status is not final."""
        tasks = []
        for task_id, nonce in self._nonces_by_task().items():
            snapshot = self._snapshots.get(task_id)
            if snapshot is None or not snapshot.is_terminal:  # only these are decoded
                tasks.append(StoredTask(task_id, snapshot, self._submission(nonce)))
        return tasks

    async def uncertain(self) -> list[StoredSubmission]:
        """Submissions without a known task."""
        return [self._submission(n) for n, task_id in self._task_ids.items() if task_id is None]

    async def task(self, task_id: str) -> StoredTask | None:
        """One task, if known."""
        nonce = self._nonces_by_task().get(task_id)
        if nonce is None and task_id not in self._snapshots:
            return None
        submission = self._submission(nonce) if nonce is not None else None
        return StoredTask(task_id, self._snapshots.get(task_id), submission)

    async def submission(self, nonce: str) -> StoredSubmission | None:
        """The submission journaled under ``nonce``, if any."""
        return self._submission(nonce) if nonce in self._submissions else None

    async def submissions(self) -> list[StoredSubmission]:
        """Every journaled submission, oldest first."""
        every = [self._submission(nonce) for nonce in self._submissions]
        return sorted(every, key=lambda s: s.created_at)

    async def events(
        self, task_id: str | None = None
    ) -> list[tuple[TaskSnapshot, EventSource, bool]]:
        """Journaled updates, oldest first."""
        return [e for e in self._events if task_id in (None, e[0].task_id)]

    def _trim(self) -> None:
        if len(self._submissions) <= self._max_tasks:
            return
        for nonce, task_id in list(self._task_ids.items()):
            snapshot = self._snapshots.get(task_id or "")
            if snapshot is not None and snapshot.is_terminal:
                self._forget(nonce)
                self._snapshots.pop(snapshot.task_id, None)
            if len(self._submissions) <= self._max_tasks:
                return
