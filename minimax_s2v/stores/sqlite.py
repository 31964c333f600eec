"""SQLiteStore: an embedded, durable journal with group commit, written by its own thread."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from .._errors import ConfigurationError
from .._models import EventSource, TaskSnapshot, TaskStatus
from .._wire import compact_json
from ._base import StoredSubmission, StoredTask, SubmissionState
from ._batch import Batcher
from ._sqlite_writer import (
    EVENT_COLUMNS,
    SNAPSHOT_COLUMNS,
    SUBMISSION_COLUMNS,
    Statement,
    Writer,
)

__all__ = ["SQLiteStore"]

logger = logging.getLogger("minimax_s2v")

# Every statement names its columns (the writer module's lists); rows are read by those names.
_INSERT_EVENT = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES "
_SAVE_SUBMISSION = (
    f"INSERT OR REPLACE INTO submissions ({', '.join(SUBMISSION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SUBMISSION_COLUMNS))})"
)
_SUBMISSIONS = f"SELECT {', '.join(SUBMISSION_COLUMNS)} FROM submissions "
# A task's submission and its last confirmed event, whose columns are named event_<column>.
_EVENT_PREFIX = "event_"
_TASK_COLUMNS = (*SUBMISSION_COLUMNS, *(_EVENT_PREFIX + name for name in SNAPSHOT_COLUMNS))
_TASK_QUERY = (
    "SELECT "
    + ", ".join(
        [
            *(f"s.{name}" for name in SUBMISSION_COLUMNS),
            *(f"e.{name} AS {_EVENT_PREFIX}{name}" for name in SNAPSHOT_COLUMNS),
        ]
    )
    + " FROM submissions s LEFT JOIN events e ON e.id = "
    "(SELECT MAX(x.id) FROM events x WHERE x.task_id = s.task_id AND x.confirmed = 1) "
)
_LAST_CONFIRMED_EVENT = (
    f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM events "
    "WHERE task_id = ? AND confirmed = 1 ORDER BY id DESC LIMIT 1"
)
_EVENT_COLUMNS_READ = (*SNAPSHOT_COLUMNS, "source", "confirmed")
_EVENTS = f"SELECT {', '.join(_EVENT_COLUMNS_READ)} FROM events"

Rows = list[Sequence[Any]]
# What a call that was cut short is told.
_UNKNOWN = (
    "the SQLiteStore stopped waiting for its writer thread; these writes may or may not have "
    "been committed"
)


class _Rows:
    """One row for an INSERT that is run together with its neighbours' rows."""

    __slots__ = ("prefix", "row")

    def __init__(self, prefix: str, row: tuple[Any, ...]) -> None:
        self.prefix = prefix  # "INSERT INTO t (columns) VALUES "
        self.row = row


# What one call asks for: statements (or a row to insert), its future, whether it writes.
_Item = tuple["list[Statement] | _Rows", "asyncio.Future[list[Rows | None]]", bool]


class SQLiteStore:
    """A durable journal in one SQLite file (WAL mode).

    The file is owned by one thread of this process, so SQLite never runs on the event loop
    (reads included). Writes are gathered on the event loop while the thread commits the
    previous batch and are then handed over together: one transaction, one disk flush, and
    one multi-row ``INSERT`` for the updates in it (group commit). A write's coroutine
    returns only once its transaction is committed; a write whose transaction failed raises
    :class:`sqlite3.Error` and changed nothing.

    A Ctrl-C does not reach the thread: ``close()``, awaited as the program unwinds, still
    commits what was asked before it. If the thread ends by an unexpected error, the calls
    in flight fail with :class:`sqlite3.OperationalError` and the next call starts a new one.

    Args:
        path: the database file (created with its directory if missing).
        synchronous: SQLite's ``synchronous`` setting: ``"FULL"`` (the default) survives
            power loss, ``"NORMAL"`` survives a crash of the process.
        max_batch: writes committed in one transaction at most.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        max_batch: int = 1000,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be 'FULL' or 'NORMAL'")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.path = Path(path)
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._writer: Writer | None = None
        self._abandon: weakref.finalize[[], SQLiteStore] | None = None  # the writer's, while open
        self._opening: asyncio.Task[None] | None = None
        self._variables = 999  # SQLite's limit on parameters per statement, as it says
        # Calls gathered on the event loop while the thread commits the previous batch.
        self._batches = Batcher(self._exchange, max_batch=max_batch)
        self.commits = 0  # transactions committed (for tests and benchmarks)
        self.writes = 0  # writes committed

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the writer thread and create the tables if needed.

        Raises:
            OSError: the file's directory cannot be created.
            sqlite3.Error: SQLite cannot open the file.
            ConfigurationError: the file holds a journal of another schema version.
        """
        if self._running:
            return
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self._start())
        opening = self._opening
        try:
            await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening:
                self._opening = None

    async def _start(self) -> None:
        writer = Writer(self.path, self._synchronous)
        await writer.start()
        self._variables = writer.variables
        self._writer = writer
        # A store dropped without close() still ends its thread and closes its file.
        if self._abandon is not None:
            self._abandon.detach()  # the previous writer's, which ended
        self._abandon = weakref.finalize(self, writer.abandon)

    @property
    def _running(self) -> bool:
        return self._writer is not None and not self._writer.ended

    async def close(self) -> None:
        """Commit what is pending and stop the writer thread."""
        if self._opening is not None:
            try:
                await self.open()
            except (OSError, sqlite3.Error, ConfigurationError):
                return
        while self._running and not self._batches.idle:
            try:
                await self._call([], write=False)  # everything asked before it is committed
            except sqlite3.Error:
                break  # the thread ended; the calls in flight were told so
        writer, self._writer = self._writer, None
        if self._abandon is not None:
            self._abandon.detach()
            self._abandon = None
        if writer is not None:
            await writer.stop()

    # -- batching on the event loop ---------------------------------------------------------

    async def _call(self, ask: list[Statement] | _Rows, *, write: bool = True) -> list[Rows | None]:
        if not self._running:
            await self.open()
        future: asyncio.Future[list[Rows | None]] = asyncio.get_running_loop().create_future()
        self._batches.add((ask, future, write))
        return await future

    async def _exchange(self, batch: list[_Item]) -> None:
        writer = self._writer
        if writer is None:  # the store was closed meanwhile
            self._fail(batch, sqlite3.OperationalError("the SQLiteStore is not open"))
            return
        units, owners = self._units(batch)
        begin = "BEGIN IMMEDIATE" if any(write for _, _, write in batch) else "BEGIN"
        try:
            result = await writer.run(begin, units)
        except asyncio.CancelledError:
            self._fail(batch, sqlite3.OperationalError(_UNKNOWN))
            raise
        if isinstance(result, sqlite3.Error):
            logger.error("SQLite commit failed: %s", result)
            self._fail(batch, result)
            return
        committed = 0
        for items, unit in zip(owners, result, strict=True):
            failure = unit if isinstance(unit, sqlite3.Error) else None
            for _, future, write in items:
                committed += write and failure is None
                _settle(future, unit, failure)
        if committed:
            self.commits += 1
            self.writes += committed

    def _units(self, batch: list[_Item]) -> tuple[list[list[Statement]], list[list[_Item]]]:
        """The batch as the writer's units, and the calls each unit's result settles.

        Consecutive rows for the same table become multi-row INSERTs, as few as SQLite's
        parameter limit allows.
        """
        units: list[list[Statement]] = []
        owners: list[list[_Item]] = []
        index = 0
        while index < len(batch):
            ask = batch[index][0]
            if not isinstance(ask, _Rows):
                units.append(ask)
                owners.append([batch[index]])
                index += 1
                continue
            end = index + 1
            while end < len(batch):
                following = batch[end][0]
                if not isinstance(following, _Rows) or following.prefix != ask.prefix:
                    break
                end += 1
            rows = [item[0].row for item in batch[index:end]]  # type: ignore[union-attr]
            placeholder = "(" + ", ".join("?" * len(rows[0])) + ")"
            chunk = max(1, self._variables // len(rows[0]))
            statements: list[Statement] = []
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                values = [value for row in part for value in row]
                statements.append(
                    (ask.prefix + ", ".join([placeholder] * len(part)), values, False)
                )
            units.append(statements)
            owners.append(batch[index:end])
            index = end
        return units, owners

    @staticmethod
    def _fail(batch: list[_Item], error: BaseException) -> None:
        for _, future, _ in batch:
            _settle(future, None, error)

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> Rows:
        (rows,) = await self._call([(sql, params, True)], write=False)
        assert rows is not None  # noqa: S101 - asked with fetch
        return rows

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        await self._call([(sql, params, False)])

    # -- the store protocol -----------------------------------------------------------------

    async def save_submission(self, submission: StoredSubmission) -> None:
        """Journal a submission before it is sent (returns once committed)."""
        values = {
            "nonce": submission.nonce,
            "fingerprint": submission.fingerprint,
            "payload": compact_json(submission.payload),
            "label": submission.label,
            "state": submission.state.value,
            "task_id": submission.task_id,
            "created_at": submission.created_at.timestamp(),
        }
        await self._execute(_SAVE_SUBMISSION, tuple(values[name] for name in SUBMISSION_COLUMNS))

    async def mark_submitted(self, nonce: str, task_id: str) -> None:
        """Record the task a submission created."""
        await self._execute(
            "UPDATE submissions SET state = ?, task_id = ? WHERE nonce = ?",
            (SubmissionState.SUBMITTED.value, task_id, nonce),
        )

    async def mark_uncertain(self, nonce: str) -> None:
        """Record that a submission's outcome is unknown."""
        await self._execute(
            "UPDATE submissions SET state = ? WHERE nonce = ? AND task_id IS NULL",
            (SubmissionState.UNCERTAIN.value, nonce),
        )

    async def drop_submission(self, nonce: str) -> None:
        """Forget a submission that certainly created nothing."""
        await self._execute("DELETE FROM submissions WHERE nonce = ?", (nonce,))

    async def save_event(
        self,
        snapshot: TaskSnapshot,
        source: EventSource,
        *,
        confirmed: bool,
        nonce: str | None = None,
    ) -> None:
        """Journal an update; returns once it is committed."""
        status = snapshot.status
        row = (  # in EVENT_COLUMNS' order: this is the receiver's hot path, no dict per update
            snapshot.task_id,
            status.value,
            snapshot.status_text,
            snapshot.file_id,
            snapshot.width,
            snapshot.height,
            snapshot.error_code,
            snapshot.error_message,
            source.value,
            confirmed,
            status.is_terminal,
            nonce,
            time.time(),
        )
        await self._call(_Rows(_INSERT_EVENT, row))

    async def unfinished(self) -> list[StoredTask]:
        """Submitted tasks whose last confirmed status is not final."""
        rows = await self._rows(
            _TASK_QUERY + "WHERE s.task_id IS NOT NULL AND COALESCE(e.terminal, 0) = 0 "
            "ORDER BY s.created_at"
        )
        return [_task(row) for row in rows]

    async def uncertain(self) -> list[StoredSubmission]:
        """Submissions without a known task, oldest first."""
        rows = await self._rows(_SUBMISSIONS + "WHERE task_id IS NULL ORDER BY created_at")
        return [_submission(_named(SUBMISSION_COLUMNS, row)) for row in rows]

    async def task(self, task_id: str) -> StoredTask | None:
        """One task, if known."""
        submitted, alone = await self._call(
            [
                (_TASK_QUERY + "WHERE s.task_id = ?", (task_id,), True),
                (_LAST_CONFIRMED_EVENT, (task_id,), True),
            ],
            write=False,
        )
        if submitted:
            return _task(submitted[0])
        if not alone:
            return None
        return StoredTask(task_id, _snapshot(_named(SNAPSHOT_COLUMNS, alone[0])), None)

    async def submission(self, nonce: str) -> StoredSubmission | None:
        """The submission journaled under ``nonce``, if any."""
        rows = await self._rows(_SUBMISSIONS + "WHERE nonce = ?", (nonce,))
        return _submission(_named(SUBMISSION_COLUMNS, rows[0])) if rows else None

    async def submissions(self) -> list[StoredSubmission]:
        """Every journaled submission, oldest first."""
        rows = await self._rows(_SUBMISSIONS + "ORDER BY created_at")
        return [_submission(_named(SUBMISSION_COLUMNS, row)) for row in rows]

    async def events(
        self, task_id: str | None = None
    ) -> list[tuple[TaskSnapshot, EventSource, bool]]:
        """Journaled updates, oldest first."""
        if task_id is None:
            rows = await self._rows(_EVENTS + " ORDER BY id")
        else:
            rows = await self._rows(_EVENTS + " WHERE task_id = ? ORDER BY id", (task_id,))
        events = []
        for row in rows:
            values = _named(_EVENT_COLUMNS_READ, row)
            events.append(
                (_snapshot(values), EventSource(values["source"]), bool(values["confirmed"]))
            )
        return events


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _named(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """A row as a mapping of its columns' names (the SELECT named them in this order)."""
    return dict(zip(columns, row, strict=True))


def _snapshot(values: Mapping[str, Any], prefix: str = "") -> TaskSnapshot:
    """A snapshot from an event's columns, named ``prefix + column``."""
    return TaskSnapshot(
        task_id=values[prefix + "task_id"],
        status=TaskStatus(values[prefix + "status"]),
        file_id=values[prefix + "file_id"],
        width=values[prefix + "width"],
        height=values[prefix + "height"],
        error_code=values[prefix + "error_code"],
        error_message=values[prefix + "error_message"],
        status_text=values[prefix + "status_text"],
    )


def _submission(values: Mapping[str, Any]) -> StoredSubmission:
    return StoredSubmission(
        nonce=values["nonce"],
        fingerprint=values["fingerprint"],
        payload=json.loads(values["payload"]),
        label=values["label"],
        state=SubmissionState(values["state"]),
        created_at=datetime.fromtimestamp(values["created_at"], tz=UTC),
        task_id=values["task_id"],
    )


def _task(row: Sequence[Any]) -> StoredTask:
    """A row of the task query: a submission and, when one was confirmed, its last event."""
    values = _named(_TASK_COLUMNS, row)
    submission = _submission(values)
    has_event = values[_EVENT_PREFIX + "task_id"] is not None
    snapshot = _snapshot(values, _EVENT_PREFIX) if has_event else None
    assert submission.task_id is not None  # noqa: S101 - the queries select tasks with an id
    return StoredTask(submission.task_id, snapshot, submission)
