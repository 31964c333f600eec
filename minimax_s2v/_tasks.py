"""Task handles, and the record of one task that a handle and the tracker share.

A :class:`Task` depends on a small :class:`TaskFollower` protocol (watch a record, refresh it),
not on the client: the tracking module implements it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from ._errors import TaskCancelledError, TaskFailedError, TaskTimeoutError
from ._models import (
    STATUS_SPELLINGS,
    AnyRequest,
    EventSource,
    SnapshotState,
    StatusEvent,
    TaskSnapshot,
    TaskStatus,
    VideoFile,
    freeze_snapshot,
    state_status,
    thaw_snapshot,
)

__all__ = ["Task", "TaskFollower", "TaskHistory", "TaskRecord"]

logger = logging.getLogger("minimax_s2v")


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class TaskRecord:
    """What the registry knows of one task: its last snapshot, its end, and who listens."""

    __slots__ = (
        "_done",
        "_history",
        "_listeners",
        "_on_end",
        "_rich",
        "_state",
        "confirming",
        "doubted_until",
        "error",
        "finished",
        "label",
        "nonce",
        "pending",
        "request",
        "submitted_at",
        "task_id",
        "video",
    )

    def __init__(
        self, task_id: str, request: AnyRequest | None, submitted_at: datetime | None
    ) -> None:
        self.task_id = task_id
        self.request = request
        self.submitted_at = submitted_at
        self._state: SnapshotState | None = None  # the last snapshot (see the property)
        self.error: BaseException | None = None
        self.finished = False  # ended (or waiting on it failed for good)
        self._done: asyncio.Event | None = None  # made for the first waiter only
        self._on_end: tuple[Callable[[], None], ...] = ()  # called once, when it ends
        # The history's storage (see TaskHistory): on the record itself, for one object
        # fewer per followed task for the garbage collector to walk.
        self._history = ""
        self._rich: SnapshotState | tuple[SnapshotState, ...] = ()
        self.video: VideoFile | None = None  # retrieved when a success callback was confirmed
        self.confirming = False  # a callback's final status is being checked with the API
        self.doubted_until = 0.0  # loop time before which final callbacks wait for a poll
        self.label: str | None = None
        self.nonce: str | None = None  # the callback nonce of the submission that created it
        # A callback's progress being journaled: applied only once recorded, and an update
        # racing it through the journal is not news.
        self.pending: TaskStatus | None = None
        # One queue per updates() iterator; at most one entry per forward status change,
        # so a queue never holds more than the six statuses of the life cycle. None until
        # someone listens: a service may follow many thousand tasks.
        self._listeners: set[asyncio.Queue[TaskSnapshot | None]] | None = None

    @property
    def status(self) -> TaskStatus | None:
        """The last known status (read from the state: no snapshot made)."""
        state = self._state
        return None if state is None else state_status(state)

    @property
    def history(self) -> TaskHistory:
        """Every update applied to the task, oldest first."""
        return TaskHistory(self)

    @property
    def snapshot(self) -> TaskSnapshot | None:
        """The last snapshot applied (made anew from its state on every read; see :meth:`keep`)."""
        state = self._state
        return None if state is None else thaw_snapshot(state)

    def keep(self, snapshot: TaskSnapshot) -> SnapshotState:
        """Make ``snapshot`` the last one; returns its state (for the history to share)."""
        state = self._state = freeze_snapshot(snapshot)
        return state

    async def wait_finished(self) -> None:
        """Return once the task has ended."""
        if self.finished:
            return
        if self._done is None:
            self._done = asyncio.Event()
        await self._done.wait()

    def finish(self) -> None:
        """Mark the task ended, wake its waiters and run its :meth:`on_end` callbacks."""
        self.finished = True
        if self._done is not None:
            self._done.set()
        callbacks, self._on_end = self._on_end, ()
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one failing must not keep the others, or the waiters, waiting
                logger.exception("a callback at the end of task %s failed", self.task_id)

    def on_end(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` once when the task ends (at once if it has ended already).

        Returns ``False``, calling nothing, when an equal callback waits already (a task
        ends once: one such callback is enough).
        """
        if self.finished:
            callback()
        elif callback in self._on_end:
            return False
        else:
            self._on_end = (*self._on_end, callback)
        return True

    def listen(self) -> asyncio.Queue[TaskSnapshot | None]:
        """A new queue that gets each update applied from now on, and ``None`` at the end."""
        queue: asyncio.Queue[TaskSnapshot | None] = asyncio.Queue()
        if self._listeners is None:
            self._listeners = set()
        self._listeners.add(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[TaskSnapshot | None]) -> None:
        """Stop feeding ``queue``."""
        if self._listeners is not None:
            self._listeners.discard(queue)

    def notify(self, item: TaskSnapshot | None) -> None:
        """Hand ``item`` (an update applied, or ``None`` for the end) to every listener."""
        if self._listeners:
            for queue in self._listeners:
                queue.put_nowait(item)


class TaskHistory:
    """Every update applied to one task, oldest first: :meth:`append` and :meth:`events`.

    A service may follow many thousand tasks and apply thousands of updates a second, so the
    history is kept as text in the task's record, a line ``status<TAB>source<TAB>arrival``
    per update, and the :class:`StatusEvent` objects are made only when asked for: the
    garbage collector never walks a string, while each container it tracks brings its next
    collection closer. A snapshot that is more than its status (a file id, a size, an error,
    another spelling) is kept as its state, a tuple of atoms that the collector stops
    tracking (see :func:`freeze_snapshot`; the first one without a tuple around it), and its
    line has an empty status. This class is a view on that storage; it holds nothing.
    """

    __slots__ = ("_record",)

    def __init__(self, record: TaskRecord) -> None:
        self._record = record

    def __len__(self) -> int:
        return self._record._history.count("\n")  # noqa: SLF001 - the storage it is a view of

    def append(self, snapshot: TaskSnapshot, source: EventSource) -> None:
        """Add an update that was applied, received now."""
        TaskHistory.add(self._record, snapshot, source)

    @staticmethod
    def add(
        record: TaskRecord,
        snapshot: TaskSnapshot,
        source: EventSource,
        state: SnapshotState | None = None,
    ) -> None:
        """:meth:`append` to ``record``'s history, without making a view (for every update).

        ``state`` is ``snapshot`` frozen already (the record's own): kept, not made again.
        """
        text = snapshot.status_text
        if not (
            snapshot.file_id is None
            and snapshot.width is None
            and snapshot.height is None
            and snapshot.error_code is None
            and snapshot.error_message is None
            and snapshot.video_url is None
            and snapshot.task_id == record.task_id
            and text.isalpha()  # no separator inside, nothing lost by lower()
            and STATUS_SPELLINGS.get(text.lower()) is snapshot.status
        ):
            if state is None:
                state = freeze_snapshot(snapshot)
            states = _rich_states(record._rich)  # noqa: SLF001
            record._rich = (*states, state) if states else state  # noqa: SLF001
            text = ""
        # _value_, not .value: a plain attribute, where .value is a descriptor call.
        record._history += f"{text}\t{source._value_}\t{time.time()!r}\n"  # noqa: SLF001

    def events(self) -> list[StatusEvent]:
        """Every update added so far, each as it was applied."""
        record = self._record
        states = iter(_rich_states(record._rich))  # noqa: SLF001
        events = []
        for line in record._history.splitlines():  # noqa: SLF001
            text, source, at = line.split("\t")
            snapshot = (
                TaskSnapshot(record.task_id, STATUS_SPELLINGS[text.lower()], status_text=text)
                if text
                else thaw_snapshot(next(states))
            )
            events.append(StatusEvent(snapshot, EventSource(source), _utc(float(at))))
        return events


def _rich_states(rich: SnapshotState | tuple[SnapshotState, ...]) -> tuple[SnapshotState, ...]:
    """A record's rich states: none, one kept bare, or several in a tuple."""
    if rich and type(rich[0]) is str:  # a state begins with its task id
        return (rich,)
    return cast("tuple[SnapshotState, ...]", rich)


class TaskFollower(Protocol):
    """Who keeps a task's record up to date: callbacks, with polling as the fallback."""

    def watch(self, record: TaskRecord) -> None:
        """Make sure someone reports on ``record`` until it ends."""
        ...

    async def refresh(self, task_id: str) -> TaskSnapshot:
        """Query the task once now and apply the answer."""
        ...

    async def cancel(self, task_id: str) -> TaskSnapshot | None:
        """Cancel the task (V2, while queued) and apply the answer."""
        ...


class Task:
    """A handle on one MiniMax task: await it, stream its updates, or read its last state.

    ``await task`` is ``await task.wait()``. Handles are cheap; several may share one task.
    """

    def __init__(self, follower: TaskFollower, record: TaskRecord) -> None:
        self._follower = follower
        self._record = record

    def __repr__(self) -> str:
        status = self.status.value if self.status else "unknown"
        return f"<Task {self.task_id} {status}>"

    @property
    def task_id(self) -> str:
        """The MiniMax task id."""
        return self._record.task_id

    @property
    def request(self) -> AnyRequest | None:
        """The request that created the task, when this process submitted it."""
        return self._record.request

    @property
    def submitted_at(self) -> datetime | None:
        """When this process submitted the task."""
        return self._record.submitted_at

    @property
    def snapshot(self) -> TaskSnapshot | None:
        """The last known snapshot."""
        return self._record.snapshot

    @property
    def status(self) -> TaskStatus | None:
        """The last known status."""
        return self._record.status

    @property
    def label(self) -> str | None:
        """The label given to :meth:`Client.submit`, if any."""
        return self._record.label

    @property
    def video(self) -> VideoFile | None:
        """The file, when a confirmed success callback already retrieved it."""
        return self._record.video

    @property
    def events(self) -> list[StatusEvent]:
        """Every update applied so far, with its source and arrival time."""
        return self._record.history.events()

    @property
    def done(self) -> bool:
        """Whether the task has ended (or waiting on it has failed for good)."""
        return self._record.finished

    def _outcome(self) -> TaskSnapshot:
        record = self._record
        if record.error is not None:
            raise record.error
        snapshot = record.snapshot
        if snapshot is None:  # pragma: no cover - done implies a snapshot or an error
            raise RuntimeError(f"task {record.task_id} ended without a snapshot")
        if snapshot.status is TaskStatus.FAIL:
            raise TaskFailedError(snapshot)
        if snapshot.status is TaskStatus.CANCELLED:
            raise TaskCancelledError(snapshot)
        return snapshot

    async def wait(self, timeout: float | None = None) -> TaskSnapshot:
        """Wait for the final snapshot.

        Args:
            timeout: seconds to wait at most (``None``: until the task ends). The task goes on
                after a timeout and can be awaited again.

        Returns:
            The ``Success`` snapshot, with its ``file_id``.

        Raises:
            TaskFailedError: the task ended with ``Fail``.
            TaskCancelledError: the task was cancelled (a :class:`TaskFailedError`).
            TaskTimeoutError: ``timeout`` passed first.
            APIError: the task can no longer be followed (expired, unknown, key refused).
        """
        record = self._record
        if not record.finished:
            self._follower.watch(record)
            started = asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(record.wait_finished(), timeout)
            except TimeoutError:
                waited = asyncio.get_running_loop().time() - started
                raise TaskTimeoutError(record.task_id, record.status, waited) from None
        return self._outcome()

    def __await__(self) -> Generator[Any, None, TaskSnapshot]:
        return self.wait().__await__()

    async def updates(self) -> AsyncIterator[TaskSnapshot]:
        """Yield the last known snapshot, then each newer one, until the task ends.

        The iterator ends after the final snapshot; a ``Fail`` is yielded, not raised.

        Raises:
            RuntimeError: the client was closed before the task ended.
            APIError: the task can no longer be followed (expired, unknown, key refused).
        """
        record = self._record
        queue = record.listen()
        try:
            if record.snapshot is not None:
                yield record.snapshot
            if not record.finished:
                self._follower.watch(record)
                while (snapshot := await queue.get()) is not None:
                    yield snapshot
            if record.error is not None:  # ended before the iterator began, or meanwhile
                raise record.error
        finally:
            record.unlisten(queue)

    async def refresh(self) -> TaskSnapshot:
        """Query the task once now and apply the answer."""
        snapshot = await self._follower.refresh(self.task_id)
        return self._record.snapshot or snapshot

    async def cancel(self) -> bool:
        """Cancel a queued MiniMax-H3 (V2) task: it ends as ``CANCELLED``, and is not charged.

        Returns:
            ``True`` when it was cancelled; ``False`` when it had already ended (it is left
            alone: MiniMax's ``DELETE`` of a finished task would delete it).

        Raises:
            CancelRefusedError: it is running (MiniMax cannot stop it) or an S2V-01 task.
        """
        return await self._follower.cancel(self.task_id) is not None
