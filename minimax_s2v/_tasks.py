"""Task handles and the registry that turns status updates into resolved waits and streams."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._errors import MiniMaxError, TaskFailedError, TaskTimeoutError
from ._models import (
    STATUS_SPELLINGS,
    EventSource,
    StatusEvent,
    TaskSnapshot,
    TaskStatus,
    VideoFile,
    VideoRequest,
)

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Task", "TaskRecord", "TaskRegistry"]

logger = logging.getLogger("minimax_s2v")


_NOBODY: frozenset[Any] = frozenset()


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class TaskRecord:
    """What the registry knows of one task: its last snapshot, its end, and who listens."""

    __slots__ = (
        "_done",
        "confirming",
        "error",
        "finished",
        "history",
        "label",
        "listeners",
        "request",
        "rich",
        "snapshot",
        "submitted_at",
        "task_id",
        "video",
    )

    def __init__(
        self, task_id: str, request: VideoRequest | None, submitted_at: datetime | None
    ) -> None:
        self.task_id = task_id
        self.request = request
        self.submitted_at = submitted_at
        self.snapshot: TaskSnapshot | None = None
        self.error: BaseException | None = None
        self.finished = False  # ended (or waiting on it failed for good)
        self._done: asyncio.Event | None = None  # made for the first waiter only
        # Every update applied, as text: a line "status<TAB>source<TAB>arrival" each, the
        # StatusEvents made only when asked for. A service may follow many thousand tasks
        # and apply thousands of updates a second; the garbage collector never sees a string,
        # while each new container it tracks brings its next collection closer. A snapshot
        # that is more than its status (a file id, a size, an error) is kept in `rich`, and
        # its line has an empty status.
        self.history = ""
        self.rich: tuple[TaskSnapshot, ...] = ()
        self.video: VideoFile | None = None  # retrieved when a success callback was confirmed
        self.confirming = False  # a callback's final status is being checked with the API
        self.label: str | None = None
        # One queue per updates() iterator; at most one entry per forward status change,
        # so a queue never holds more than the six statuses of the life cycle. A shared
        # empty set until someone listens: a service may follow many thousand tasks.
        self.listeners: set[asyncio.Queue[TaskSnapshot | None]] | frozenset[Any] = _NOBODY

    @property
    def status(self) -> TaskStatus | None:
        """The last known status."""
        return self.snapshot.status if self.snapshot else None

    async def wait_finished(self) -> None:
        """Return once the task has ended."""
        if self.finished:
            return
        if self._done is None:
            self._done = asyncio.Event()
        await self._done.wait()

    def finish(self) -> None:
        """Mark the task ended and wake its waiters."""
        self.finished = True
        if self._done is not None:
            self._done.set()

    def status_events(self) -> list[StatusEvent]:
        """Every update applied so far."""
        rich = iter(self.rich)
        events = []
        for line in self.history.splitlines():
            text, source, at = line.split("\t")
            snapshot = (
                TaskSnapshot(self.task_id, STATUS_SPELLINGS[text.lower()], status_text=text)
                if text
                else next(rich)
            )
            events.append(StatusEvent(snapshot, EventSource(source), _utc(float(at))))
        return events

    def remember(self, snapshot: TaskSnapshot, source: EventSource) -> None:
        """Add an applied update to the history."""
        text = snapshot.status_text
        if not (
            snapshot.file_id is None
            and snapshot.width is None
            and snapshot.height is None
            and snapshot.error_code is None
            and snapshot.error_message is None
            and snapshot.task_id == self.task_id
            and text.isalpha()  # no separator inside, nothing lost by lower()
            and STATUS_SPELLINGS.get(text.lower()) is snapshot.status
        ):
            self.rich = (*self.rich, snapshot)
            text = ""
        self.history += f"{text}\t{source.value}\t{time.time()!r}\n"


class TaskRegistry:
    """Applies status updates under the task state machine.

    Preparing < Queueing < Processing < Success | Fail: a terminal status is final, a
    duplicate is a no-op and a regression (an update older than what is known) is ignored.
    """

    def __init__(self, finished_ttl: float = 600.0) -> None:
        self._records: dict[str, TaskRecord] = {}
        # Finished tasks are forgotten after finished_ttl seconds (handles keep their
        # record), so a long-running service does not grow without bound.
        self._finished: dict[str, float] = {}
        self._finished_ttl = finished_ttl
        self._file_owners: dict[str, str] = {}  # file id -> task id, to spot a reused file id

    def __len__(self) -> int:
        return len(self._records)

    def get(self, task_id: str) -> TaskRecord | None:
        """The record of ``task_id``, if tracked."""
        return self._records.get(task_id)

    def track(
        self,
        task_id: str,
        request: VideoRequest | None = None,
        submitted_at: datetime | None = None,
    ) -> TaskRecord:
        """The record of ``task_id``, created if new."""
        self._evict()
        record = self._records.get(task_id)
        if record is None:
            record = self._records[task_id] = TaskRecord(task_id, request, submitted_at)
        else:
            record.request = record.request or request
            record.submitted_at = record.submitted_at or submitted_at
        return record

    def forget(self, task_id: str) -> None:
        """Stop tracking ``task_id`` (its handles keep what they already know)."""
        self._forget_files(self._records.pop(task_id, None))
        self._finished.pop(task_id, None)

    def _forget_files(self, record: TaskRecord | None) -> None:
        snapshot = record.snapshot if record is not None else None
        if snapshot is not None and snapshot.file_id is not None:
            self._file_owners.pop(snapshot.file_id, None)

    def is_news(self, snapshot: TaskSnapshot, record: TaskRecord | None = None) -> bool:
        """Whether applying ``snapshot`` would change what is known (not a duplicate, not stale).

        ``record`` is the task's record when the caller has already looked it up.
        """
        if record is None:
            record = self._records.get(snapshot.task_id)
            if record is None:
                return True
        current = record.snapshot
        if record.finished:
            return False
        if current is not None:
            if snapshot.status is TaskStatus.UNKNOWN or snapshot.status.rank < current.status.rank:
                return False
            if snapshot.status is current.status and not snapshot.is_terminal:
                return False
        return True

    def apply(
        self,
        snapshot: TaskSnapshot,
        source: EventSource,
        *,
        checked: bool = False,
        record: TaskRecord | None = None,
    ) -> bool:
        """Apply an update; return whether it changed what is known.

        ``checked`` says the caller has just seen :meth:`is_news` return true; ``record`` is
        the task's record when the caller has already looked it up.
        """
        if not checked and not self.is_news(snapshot, record):
            return False
        if record is None:
            record = self.track(snapshot.task_id)
        record.snapshot = snapshot
        if snapshot.file_id is not None:
            self._file_owners.setdefault(snapshot.file_id, snapshot.task_id)
        record.remember(snapshot, source)
        for queue in record.listeners:
            queue.put_nowait(snapshot)
        if snapshot.status.is_terminal:
            self._finish(record)
        return True

    def file_owner(self, file_id: str | None) -> str | None:
        """The task already known to have produced ``file_id``, if any."""
        return self._file_owners.get(file_id) if file_id is not None else None

    def _evict(self) -> None:
        if not self._finished:
            return
        cutoff = time.monotonic() - self._finished_ttl
        while self._finished:
            task_id = next(iter(self._finished))  # insertion order is finishing order
            if self._finished[task_id] > cutoff:
                break
            del self._finished[task_id]
            self._forget_files(self._records.pop(task_id, None))

    def close_all(self, error: Callable[[str], BaseException]) -> None:
        """End every pending wait with ``error(task_id)``."""
        for record in list(self._records.values()):
            if not record.finished:
                record.error = error(record.task_id)
                self._finish(record)

    def fail(self, task_id: str, error: MiniMaxError) -> None:
        """End every wait on ``task_id`` with ``error`` (e.g. the task expired or the key broke)."""
        record = self.track(task_id)
        if record.finished:
            return
        record.error = error
        self._finish(record)

    def _finish(self, record: TaskRecord) -> None:
        self._finished[record.task_id] = time.monotonic()
        record.finish()
        for queue in record.listeners:
            queue.put_nowait(None)


class Task:
    """A handle on one MiniMax task: await it, stream its updates, or read its last state.

    ``await task`` is ``await task.wait()``. Handles are cheap; several may share one task.
    """

    def __init__(self, client: Client, record: TaskRecord) -> None:
        self._client = client
        self._record = record

    def __repr__(self) -> str:
        status = self.status.value if self.status else "unknown"
        return f"<Task {self.task_id} {status}>"

    @property
    def task_id(self) -> str:
        """The MiniMax task id."""
        return self._record.task_id

    @property
    def request(self) -> VideoRequest | None:
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
        return self._record.status_events()

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
            TaskTimeoutError: ``timeout`` passed first.
            APIError: the task can no longer be followed (expired, unknown, key refused).
        """
        record = self._record
        if not record.finished:
            self._client._watch(record)  # noqa: SLF001 - the client owns the poller
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
        """
        record = self._record
        queue: asyncio.Queue[TaskSnapshot | None] = asyncio.Queue()
        listeners = record.listeners
        if not isinstance(listeners, set):
            listeners = record.listeners = set()
        listeners.add(queue)
        try:
            if record.snapshot is not None:
                yield record.snapshot
            if record.finished:
                return
            self._client._watch(record)  # noqa: SLF001 - the client owns the poller
            while True:
                snapshot = await queue.get()
                if snapshot is None:
                    if record.error is not None:
                        raise record.error
                    return
                yield snapshot
        finally:
            listeners.discard(queue)

    async def refresh(self) -> TaskSnapshot:
        """Query the task once now and apply the answer."""
        snapshot = await self._client.get_task(self.task_id)
        return self._record.snapshot or snapshot
