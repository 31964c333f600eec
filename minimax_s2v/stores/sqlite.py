"""SQLiteStore: an embedded, durable journal, written by one thread with group commit."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from .._errors import ConfigurationError
from .._models import EventSource, TaskSnapshot, TaskStatus
from ._base import StoredSubmission, StoredTask, SubmissionState

__all__ = ["SQLiteStore"]

logger = logging.getLogger("minimax_s2v")
T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    nonce TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    payload TEXT NOT NULL,
    label TEXT,
    state TEXT NOT NULL,
    task_id TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS submissions_task ON submissions (task_id);
CREATE INDEX IF NOT EXISTS submissions_label ON submissions (label);
-- Every update, in arrival order. A task's known state is its last confirmed event: it is
-- derived when read, so that journaling an update is one row in one table.
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    status TEXT NOT NULL,
    status_text TEXT NOT NULL,
    file_id TEXT,
    width INTEGER,
    height INTEGER,
    error_code INTEGER,
    error_message TEXT,
    source TEXT NOT NULL,
    confirmed INTEGER NOT NULL,
    terminal INTEGER NOT NULL,
    nonce TEXT,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_task ON events (task_id);
-- For people reading the journal with the sqlite3 shell: each task's last confirmed event.
CREATE VIEW IF NOT EXISTS tasks AS
    SELECT e.* FROM events e
    WHERE e.confirmed = 1
      AND e.id = (SELECT MAX(x.id) FROM events x WHERE x.task_id = e.task_id AND x.confirmed = 1);
"""
_INSERT_EVENT = (
    "INSERT INTO events (task_id, status, status_text, file_id, width, height, error_code, "
    "error_message, source, confirmed, terminal, nonce, received_at) VALUES "
)
# A task's submission and its last confirmed event (columns as _snapshot() reads them).
_TASK_QUERY = (
    "SELECT s.*, e.task_id, e.status, e.status_text, e.file_id, e.width, e.height, "
    "e.error_code, e.error_message FROM submissions s LEFT JOIN events e ON e.id = "
    "(SELECT MAX(x.id) FROM events x WHERE x.task_id = s.task_id AND x.confirmed = 1) "
)
_LAST_CONFIRMED_EVENT = (
    "SELECT task_id, status, status_text, file_id, width, height, error_code, error_message "
    "FROM events WHERE task_id = ? AND confirmed = 1 ORDER BY id DESC LIMIT 1"
)
_EVENTS = (
    "SELECT task_id, status, status_text, file_id, width, height, error_code, error_message, "
    "source, confirmed FROM events"
)

_STOP = object()


class _Rows:
    """Rows for one INSERT, which the writer runs together with its neighbours' rows."""

    __slots__ = ("prefix", "row")

    def __init__(self, prefix: str, row: tuple[Any, ...]) -> None:
        self.prefix = prefix  # "INSERT INTO t (columns) VALUES "
        self.row = row


_Item = tuple[Operation | _Rows, asyncio.Future[Any], bool]


class SQLiteStore:
    """A durable journal in one SQLite file (WAL mode).

    All SQLite work runs on one writer thread, never on the event loop. Writes are gathered
    on the event loop while the writer commits the previous batch and are then handed over
    together: one transaction, one disk flush, and one multi-row ``INSERT`` for the updates
    in it (group commit). A write's coroutine returns only once its transaction is
    committed.

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
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._opened: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Item] = []  # gathered on the loop while a batch is committed
        self._busy = False  # a batch is with the writer thread
        self._flush_scheduled = False
        self.commits = 0  # transactions committed (for tests and benchmarks)
        self.writes = 0  # writes committed

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- the writer thread ------------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as error:
            self._opened_with(loop, error)
            return
        try:
            _prepare(connection, self.path, self._synchronous)
        except (sqlite3.Error, ConfigurationError) as error:
            connection.close()
            self._opened_with(loop, error)
            return
        self._opened_with(loop, None)
        try:
            while True:
                batch = self._queue.get()
                if batch is _STOP:
                    return
                self._commit(connection, batch, loop)
        finally:
            connection.close()

    def _opened_with(self, loop: asyncio.AbstractEventLoop, error: BaseException | None) -> None:
        if self._opened is not None:
            loop.call_soon_threadsafe(_settle, self._opened, None, error)

    def _commit(
        self, connection: sqlite3.Connection, batch: list[_Item], loop: asyncio.AbstractEventLoop
    ) -> None:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        writes = sum(1 for _, _, write in batch if write)
        variables = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        try:
            connection.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
            index = 0
            while index < len(batch):
                operation, future, _ = batch[index]
                if isinstance(operation, _Rows):
                    # A run of rows for the same table: multi-row INSERTs, so that SQLite
                    # (which releases the GIL while it works) is entered once per chunk.
                    end = index + 1
                    while end < len(batch):
                        following = batch[end][0]
                        if not isinstance(following, _Rows) or following.prefix != operation.prefix:
                            break
                        end += 1
                    run = batch[index:end]
                    try:
                        _insert_rows(connection, operation.prefix, run, variables)
                        results.extend((item[1], None, None) for item in run)
                    except sqlite3.Error as failed:
                        results.extend((item[1], None, failed) for item in run)
                    index = end
                    continue
                try:
                    results.append((future, operation(connection), None))
                except sqlite3.Error as failed:
                    results.append((future, None, failed))
                index += 1
            connection.execute("COMMIT")
        except sqlite3.Error as failure:
            # The transaction failed as a whole: none of its writes happened.
            logger.exception("SQLite commit failed")
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            results = [(future, None, failure) for _, future, _ in batch]
        else:
            self.commits += 1
            self.writes += writes
        # One wake-up of the event loop for the whole batch, not one per write.
        loop.call_soon_threadsafe(self._committed, results)

    # -- batching on the event loop ---------------------------------------------------------

    async def _call(
        self, operation: Callable[[sqlite3.Connection], T] | _Rows, *, write: bool = True
    ) -> T:
        if self._thread is None:
            await self.open()
        loop = self._loop
        assert loop is not None  # noqa: S101 - set by open()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((operation, future, write))
        if not self._busy and not self._flush_scheduled:
            # Wait for the rest of this loop iteration's writes, then hand them over together.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._busy or not self._pending:
            return
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        self._busy = True
        self._queue.put(batch)

    def _committed(
        self, results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]
    ) -> None:
        self._busy = False
        for future, value, error in results:
            _settle(future, value, error)
        if self._pending:
            self._flush()  # what arrived during the commit goes at once

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the writer thread and create the tables if needed.

        Raises:
            sqlite3.Error, OSError: the file cannot be opened or created.
            ConfigurationError: the file holds a journal of another schema version.
        """
        if self._opened is not None:
            await self._opened
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._opened = loop.create_future()
        thread = threading.Thread(
            target=self._run, args=(loop,), name=f"minimax-s2v-sqlite-{self.path.name}", daemon=True
        )
        thread.start()
        try:
            await self._opened
        except BaseException:
            self._opened = None  # the thread has ended: a later call tries again
            await asyncio.to_thread(thread.join)
            raise
        self._thread = thread

    async def close(self) -> None:
        """Commit what is pending and stop the writer thread."""
        thread = self._thread
        if thread is None:
            return
        await self._call(_nothing, write=False)  # everything asked before is committed
        self._queue.put(_STOP)
        await asyncio.to_thread(thread.join)
        self._thread = None
        self._opened = None
        self._busy = False
        # Writes asked for while closing found no writer: they fail rather than hang.
        closed = RuntimeError("the SQLiteStore was closed")
        leftovers = self._pending
        self._pending = []
        while not self._queue.empty():
            leftovers.extend(self._queue.get_nowait())
        for _, future, _ in leftovers:
            _settle(future, None, closed)

    # -- the store protocol -----------------------------------------------------------------

    async def save_submission(self, submission: StoredSubmission) -> None:
        """Journal a submission before it is sent (returns once committed)."""
        row = (
            submission.nonce,
            submission.fingerprint,
            json.dumps(submission.payload, separators=(",", ":")),
            submission.label,
            submission.state.value,
            submission.task_id,
            submission.created_at.timestamp(),
        )
        await self._call(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?)", row
            )
        )

    async def mark_submitted(self, nonce: str, task_id: str) -> None:
        """Record the task a submission created."""
        await self._call(
            lambda c: c.execute(
                "UPDATE submissions SET state = ?, task_id = ? WHERE nonce = ?",
                (SubmissionState.SUBMITTED.value, task_id, nonce),
            )
        )

    async def mark_uncertain(self, nonce: str) -> None:
        """Record that a submission's outcome is unknown."""
        await self._call(
            lambda c: c.execute(
                "UPDATE submissions SET state = ? WHERE nonce = ? AND task_id IS NULL",
                (SubmissionState.UNCERTAIN.value, nonce),
            )
        )

    async def drop_submission(self, nonce: str) -> None:
        """Forget a submission that certainly created nothing."""
        await self._call(lambda c: c.execute("DELETE FROM submissions WHERE nonce = ?", (nonce,)))

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
        row = (
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
        rows = await self._call(
            lambda c: c.execute(
                _TASK_QUERY + "WHERE s.task_id IS NOT NULL AND COALESCE(e.terminal, 0) = 0 "
                "ORDER BY s.created_at"
            ).fetchall(),
            write=False,
        )
        return [_task_row(row) for row in rows]

    async def uncertain(self) -> list[StoredSubmission]:
        """Submissions without a known task, oldest first."""
        rows = await self._call(
            lambda c: c.execute(
                "SELECT * FROM submissions WHERE task_id IS NULL ORDER BY created_at"
            ).fetchall(),
            write=False,
        )
        return [_submission_row(row) for row in rows]

    async def task(self, task_id: str) -> StoredTask | None:
        """One task, if known."""

        def read(connection: sqlite3.Connection) -> StoredTask | None:
            row = connection.execute(_TASK_QUERY + "WHERE s.task_id = ?", (task_id,)).fetchone()
            if row is not None:
                return _task_row(row)
            alone = connection.execute(_LAST_CONFIRMED_EVENT, (task_id,)).fetchone()
            return StoredTask(task_id, _snapshot(alone), None) if alone else None

        return await self._call(read, write=False)

    async def submissions(self) -> list[StoredSubmission]:
        """Every journaled submission, oldest first."""
        rows = await self._call(
            lambda c: c.execute("SELECT * FROM submissions ORDER BY created_at").fetchall(),
            write=False,
        )
        return [_submission_row(row) for row in rows]

    async def events(
        self, task_id: str | None = None
    ) -> list[tuple[TaskSnapshot, EventSource, bool]]:
        """Journaled updates, oldest first."""
        query = _EVENTS
        params: tuple[str, ...] = ()
        if task_id is not None:
            query += " WHERE task_id = ?"
            params = (task_id,)
        rows = await self._call(
            lambda c: c.execute(query + " ORDER BY id", params).fetchall(), write=False
        )
        return [(_snapshot(row[:8]), EventSource(row[8]), bool(row[9])) for row in rows]


def _nothing(_: sqlite3.Connection) -> None:
    return None


def _prepare(connection: sqlite3.Connection, path: Path, synchronous: str) -> None:
    """Set the connection up and create the schema, or refuse a file of another version."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version == 0:
        existing = connection.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('submissions', 'events')"
        ).fetchone()[0]
        if existing:
            version = -1  # tables without a version: written by a pre-release build
    if version not in (0, SCHEMA_VERSION):
        raise ConfigurationError(
            f"{path} holds a journal of schema version {max(version, 0)}, but this version "
            f"of minimax_s2v reads version {SCHEMA_VERSION}; use a new file for the new journal"
        )
    connection.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")


def _insert_rows(
    connection: sqlite3.Connection, prefix: str, run: list[_Item], variables: int
) -> None:
    """Insert the rows of ``run`` with as few statements as SQLite's variable limit allows."""
    rows = [item[0].row for item in run]  # type: ignore[union-attr]
    width = len(rows[0])
    placeholder = "(" + ", ".join("?" * width) + ")"
    chunk = max(1, variables // width)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        values = [value for row in part for value in row]
        connection.execute(prefix + ", ".join([placeholder] * len(part)), values)


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _snapshot(row: tuple[Any, ...]) -> TaskSnapshot:
    """A snapshot from an event's columns ``task_id, status, … error_message``."""
    task_id, status, status_text, file_id, width, height, error_code, error_message = row
    return TaskSnapshot(
        task_id=task_id,
        status=TaskStatus(status),
        file_id=file_id,
        width=width,
        height=height,
        error_code=error_code,
        error_message=error_message,
        status_text=status_text,
    )


def _submission_row(row: tuple[Any, ...]) -> StoredSubmission:
    nonce, fingerprint, payload, label, state, task_id, created_at = row[:7]
    return StoredSubmission(
        nonce=nonce,
        fingerprint=fingerprint,
        payload=json.loads(payload),
        label=label,
        state=SubmissionState(state),
        created_at=datetime.fromtimestamp(created_at, tz=UTC),
        task_id=task_id,
    )


def _task_row(row: tuple[Any, ...]) -> StoredTask:
    submission = _submission_row(row)
    snapshot = _snapshot(row[7:15]) if row[7] is not None else None
    assert submission.task_id is not None  # noqa: S101 - the queries select tasks with an id
    return StoredTask(submission.task_id, snapshot, submission)
