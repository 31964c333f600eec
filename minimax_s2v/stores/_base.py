"""The TaskStore protocol and the records it keeps."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

from .._models import EventSource, TaskSnapshot

__all__ = [
    "RemoteUpdate",
    "SharedTaskStore",
    "StoredSubmission",
    "StoredTask",
    "SubmissionState",
    "TaskStore",
]

#: ``on_update(nonce or None, snapshot, confirmed)``: an update another replica recorded.
RemoteUpdate = Callable[[str | None, TaskSnapshot, bool], Awaitable[None]]


class SubmissionState(enum.Enum):
    """Where a submission stands."""

    SENDING = "sending"  # journaled, sent or about to be: its outcome is not known yet
    SUBMITTED = "submitted"  # MiniMax answered with a task id
    UNCERTAIN = "uncertain"  # the answer was lost: a task may or may not exist


@attrs.frozen
class StoredSubmission:
    """A submission as journaled.

    Attributes:
        nonce: its callback nonce, which a callback can still bind it by.
        fingerprint: a digest of the request body.
        payload: the request body as sent, inline images replaced by their size and digest.
        label: the caller's name for it (the CLI uses the batch line), if any.
        task_id: the task it created, once known.
    """

    nonce: str
    fingerprint: str
    payload: dict[str, Any]
    label: str | None
    state: SubmissionState
    created_at: datetime
    task_id: str | None = None


@attrs.frozen
class StoredTask:
    """A task as the store knows it: its submission and its last confirmed snapshot."""

    task_id: str
    snapshot: TaskSnapshot | None
    submission: StoredSubmission | None

    @property
    def finished(self) -> bool:
        """Whether its last confirmed status is final."""
        return self.snapshot is not None and self.snapshot.is_terminal


class TaskStore(Protocol):
    """What the client asks of a store. Every method may do I/O; none blocks the loop.

    A store shared by several replicas is also a :class:`SharedTaskStore`.
    """

    async def open(self) -> None:
        """Get ready (create files, tables, connections)."""
        ...

    async def close(self) -> None:
        """Flush what is pending and release resources."""
        ...

    async def save_submission(self, submission: StoredSubmission) -> None:
        """Journal a submission before it is sent."""
        ...

    async def mark_submitted(self, nonce: str, task_id: str) -> None:
        """Record the task a submission created."""
        ...

    async def mark_uncertain(self, nonce: str) -> None:
        """Record that a submission's outcome is unknown."""
        ...

    async def drop_submission(self, nonce: str) -> None:
        """Forget a submission that certainly created nothing."""
        ...

    async def save_event(
        self,
        snapshot: TaskSnapshot,
        source: EventSource,
        *,
        confirmed: bool,
        nonce: str | None = None,
    ) -> None:
        """Journal an update; ``confirmed`` ones also become the task's known state."""
        ...

    async def unfinished(self) -> list[StoredTask]:
        """Tasks whose last confirmed status is not final."""
        ...

    async def uncertain(self) -> list[StoredSubmission]:
        """Submissions without a known task: sent before a crash, or whose answer was lost."""
        ...

    async def task(self, task_id: str) -> StoredTask | None:
        """One task."""
        ...

    async def submission(self, nonce: str) -> StoredSubmission | None:
        """The submission journaled under ``nonce``, if any (a callback URL's credential)."""
        ...

    async def submissions(self) -> list[StoredSubmission]:
        """Every journaled submission, oldest first."""
        ...

    async def events(
        self, task_id: str | None = None
    ) -> list[tuple[TaskSnapshot, EventSource, bool]]:
        """Journaled updates (snapshot, source, confirmed), oldest first."""
        ...


@runtime_checkable
class SharedTaskStore(TaskStore, Protocol):
    """A store that several replicas share (:class:`~minimax_s2v.stores.redis.RedisStore`).

    The client recognises one with ``isinstance(store, SharedTaskStore)``: it subscribes to
    the other replicas' updates when it starts, and its receiver hands callbacks for tasks
    this process does not follow to the store, where the replica that follows them sees them,
    instead of to an early-event buffer.
    """

    #: Updates recorded here reach every replica.
    shared: bool

    async def subscribe(self, on_update: RemoteUpdate) -> None:
        """Call ``on_update`` for every update another replica records; returns once listening.

        A store may hold a bound method weakly (``RedisStore`` does): it must not keep its
        owner alive, and stops calling it once the owner is gone.
        """
        ...
