"""MemoryStore: the default store, in this process only."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from typing import ClassVar

from .._models import (
    EventSource,
    SnapshotState,
    TaskSnapshot,
    freeze_snapshot,
    state_is_terminal,
    thaw_snapshot,
)
from .._wire import compact_json
from ._base import StoredSubmission, StoredTask, SubmissionState

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps submissions and task states in memory; nothing survives the process.

    Args:
        max_events: updates journaled at most (the oldest are dropped first); finished
            tasks' records are forgotten once more than ``max_tasks`` are kept.
    """

    def __init__(self, *, max_events: int = 10_000, max_tasks: int = 100_000) -> None:
        # One dict per kind of record. A submission is kept as JSON text: the garbage
        # collector does not track a dict of strings, so up to max_tasks submissions add
        # nothing to its collections. Insertion order is the journal's.
        self._submissions: dict[str, str] = {}  # nonce -> the StoredSubmission, as text
        self._nonces: dict[str, str] = {}  # task id -> the nonce of the submission that made it
        # Task ids that more than one submission has named (a server answering one id
        # twice): only these are looked for among the other submissions when one goes.
        self._crowded: set[str] = set()
        # Task id -> its last confirmed snapshot, as a tuple of atoms (freeze_snapshot), which
        # the collector stops tracking; the event log keeps its updates the same way.
        self._snapshots: dict[str, SnapshotState] = {}
        self._events = _EventLog(max_events)
        self._max_tasks = max_tasks

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._submissions)} submissions)"

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def save_submission(self, submission: StoredSubmission) -> None:
        """Journal a submission before it is sent."""
        self._put(submission)
        self._trim()

    def _put(self, submission: StoredSubmission) -> None:
        fixed = compact_json(
            [
                submission.fingerprint,
                submission.payload,
                submission.label,
                submission.created_at.isoformat(),
            ]
        )
        before = self._submissions.get(submission.nonce)
        named = _task_of(before) if before is not None else None
        self._set_state(submission.nonce, submission.state, submission.task_id, fixed, named)

    def _set_state(
        self,
        nonce: str,
        state: SubmissionState,
        task_id: str | None,
        fixed: str,
        named: str | None,
    ) -> None:
        """Write a submission's line; ``named``: the task its line named until now."""
        # A line "state<TAB>JSON of the rest[<TAB>task id]": what changes after the journal
        # entry is written (state, task) is rewritten without decoding the rest. Neither a
        # state nor compact JSON holds a tab (JSON escapes it), so a task id, last, may.
        if task_id is None:
            self._submissions[nonce] = f"{state.value}\t{fixed}"
        else:
            self._submissions[nonce] = f"{state.value}\t{fixed}\t{task_id}"
        if named is not None and named != task_id:
            self._release(named, nonce)
        if task_id is not None:
            owner = self._nonces.setdefault(task_id, nonce)
            if owner != nonce:
                self._crowded.add(task_id)
                self._nonces[task_id] = nonce

    def _release(self, task_id: str, nonce: str) -> None:
        """``nonce`` names ``task_id`` no more: the task goes to another submission naming it."""
        if self._nonces.get(task_id) != nonce:
            return
        del self._nonces[task_id]
        if task_id in self._crowded:
            others = [n for n, line in self._submissions.items() if _task_of(line) == task_id]
            if others:
                self._nonces[task_id] = others[-1]
            else:
                self._crowded.discard(task_id)

    def _submission(self, nonce: str) -> StoredSubmission:
        state, fixed, *task_id = self._submissions[nonce].split("\t", 2)
        fingerprint, payload, label, created_at = json.loads(fixed)
        return StoredSubmission(
            nonce,
            fingerprint,
            payload,
            label,
            SubmissionState(state),
            datetime.fromisoformat(created_at),
            task_id[0] if task_id else None,
        )

    def _state(self, nonce: str) -> tuple[str | None, str]:
        """A submission's task id (if any) and the rest of its line, undecoded."""
        _, fixed, *task_id = self._submissions[nonce].split("\t", 2)
        return task_id[0] if task_id else None, fixed

    async def mark_submitted(self, nonce: str, task_id: str) -> None:
        """Record the task a submission created."""
        if nonce in self._submissions:
            named, fixed = self._state(nonce)
            self._set_state(nonce, SubmissionState.SUBMITTED, task_id, fixed, named)

    async def mark_uncertain(self, nonce: str) -> None:
        """Record that a submission's outcome is unknown."""
        if nonce in self._submissions:
            task_id, fixed = self._state(nonce)
            if task_id is None:
                self._set_state(nonce, SubmissionState.UNCERTAIN, None, fixed, None)

    async def drop_submission(self, nonce: str) -> None:
        """Forget a submission that certainly created nothing."""
        self._forget(nonce)

    def _forget(self, nonce: str) -> None:
        line = self._submissions.pop(nonce, None)
        if line is not None and (task_id := _task_of(line)) is not None:
            self._release(task_id, nonce)

    async def save_event(
        self,
        snapshot: TaskSnapshot,
        source: EventSource,
        *,
        confirmed: bool,
        nonce: str | None = None,
    ) -> None:
        """Journal an update; confirmed ones become the task's known state."""
        state = freeze_snapshot(snapshot)
        self._events.append(state, source, confirmed=confirmed)
        if confirmed:
            self._snapshots[snapshot.task_id] = state

    async def unfinished(self) -> list[StoredTask]:
        """Submitted tasks whose last confirmed status is not final."""
        tasks = []
        for task_id, nonce in self._nonces.items():
            state = self._snapshots.get(task_id)
            if state is None or not state_is_terminal(state):  # only these are decoded
                snapshot = None if state is None else thaw_snapshot(state)
                tasks.append(StoredTask(task_id, snapshot, self._submission(nonce)))
        return tasks

    async def uncertain(self) -> list[StoredSubmission]:
        """Submissions without a known task."""
        bound = set(self._nonces.values())  # these have a task: not decoded
        maybe = (self._submission(n) for n in self._submissions if n not in bound)
        return [submission for submission in maybe if submission.task_id is None]

    async def task(self, task_id: str) -> StoredTask | None:
        """One task, if known."""
        nonce = self._nonces.get(task_id)
        if nonce is None and task_id not in self._snapshots:
            return None
        submission = self._submission(nonce) if nonce is not None else None
        state = self._snapshots.get(task_id)
        return StoredTask(task_id, None if state is None else thaw_snapshot(state), submission)

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
        return [
            (thaw_snapshot(state), source, confirmed)
            for state, source, confirmed in self._events
            if task_id in (None, state[0])
        ]

    def _trim(self) -> None:
        if len(self._submissions) <= self._max_tasks:
            return
        for task_id, nonce in list(self._nonces.items()):
            state = self._snapshots.get(task_id)
            if state is not None and state_is_terminal(state):
                while (owner := self._nonces.get(task_id, nonce)) in self._submissions:
                    self._forget(owner)  # every submission that named it
                del self._snapshots[task_id]
            if len(self._submissions) <= self._max_tasks:
                return


def _task_of(line: str) -> str | None:
    """The task id of a submission's line, if it has one."""
    parts = line.split("\t", 2)
    return parts[2] if len(parts) == 3 else None  # state, JSON, task id


class _EventLog:
    """The journal of updates, the oldest dropped past ``max_events``.

    Each entry is a snapshot's state (a tuple of atoms, see :func:`freeze_snapshot`) and one
    of a few shared (source, confirmed) pairs: an update adds no object that the collector
    goes on tracking.
    """

    __slots__ = ("_kinds", "_states")

    # Keyed by the source's value: a str hashes at C speed, an Enum member in Python.
    _SHARED: ClassVar[dict[tuple[str, bool], tuple[EventSource, bool]]] = {
        (source.value, confirmed): (source, confirmed)
        for source in EventSource
        for confirmed in (True, False)
    }

    def __init__(self, max_events: int) -> None:
        self._states: deque[SnapshotState] = deque(maxlen=max_events)
        self._kinds: deque[tuple[EventSource, bool]] = deque(maxlen=max_events)

    def append(self, state: SnapshotState, source: EventSource, *, confirmed: bool) -> None:
        """Add an update (the oldest goes once full)."""
        self._states.append(state)
        self._kinds.append(self._SHARED[source._value_, confirmed])

    def __iter__(self) -> Iterator[tuple[SnapshotState, EventSource, bool]]:
        for state, (source, confirmed) in zip(self._states, self._kinds, strict=True):
            yield state, source, confirmed
