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

from .._models import EventSource, TaskSnapshot
from .._wire import parse_snapshot, snapshot_payload
from ._base import StoredSubmission, StoredTask, SubmissionState

__all__ = ["SQLiteStore"]

logger = logging.getLogger("minimax_s2v")
T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]

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
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL,
    terminal INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    source TEXT NOT NULL,
    confirmed INTEGER NOT NULL,
    terminal INTEGER NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_task ON events (task_id);
-- A confirmed update becomes the task's state in the same statement, so that consecutive
-- updates are one executemany() in the writer thread.
CREATE TRIGGER IF NOT EXISTS events_confirmed AFTER INSERT ON events WHEN NEW.confirmed = 1
BEGIN
    INSERT OR REPLACE INTO tasks VALUES (NEW.task_id, NEW.snapshot, NEW.terminal);
END;
"""
_INSERT_EVENT = (
    "INSERT INTO events (task_id, snapshot, source, confirmed, terminal, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)

_STOP = object()


class _Rows:
    """One row for a statement that the writer may run together with its neighbours."""

    __slots__ = ("row", "sql")

    def __init__(self, sql: str, row: tuple[Any, ...]) -> None:
        self.sql = sql
        self.row = row


class SQLiteStore:
    """A durable journal in one SQLite file (WAL mode).

    All SQLite work runs on one writer thread, never on the event loop. Writes that arrive
    while a transaction is being committed are committed together in the next one (group
    commit), so many concurrent updates cost one disk flush, not one each. A write's
    coroutine returns only once its transaction is committed.

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
        self.path = Path(path)
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._opened: asyncio.Future[None] | None = None
        self.commits = 0  # transactions committed (for tests and benchmarks)
        self.writes = 0  # writes committed

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- the writer thread ------------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
            connection.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as error:
            opened = self._opened
            if opened is not None:
                loop.call_soon_threadsafe(_settle, opened, None, error)
            return
        if self._opened is not None:
            loop.call_soon_threadsafe(_settle, self._opened, None, None)
        try:
            self._serve(connection, loop)
        finally:
            connection.close()

    def _serve(self, connection: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._commit(connection, batch, loop)
            if stop:
                return

    def _commit(
        self,
        connection: sqlite3.Connection,
        batch: list[tuple[Operation | _Rows, asyncio.Future[Any], bool]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        writes = sum(1 for _, _, write in batch if write)
        try:
            connection.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
            index = 0
            while index < len(batch):
                operation, future, _ = batch[index]
                if isinstance(operation, _Rows):
                    # A run of rows for the same statement: one executemany() for all.
                    run = [batch[index]]
                    while index + len(run) < len(batch):
                        following = batch[index + len(run)][0]
                        if not isinstance(following, _Rows) or following.sql != operation.sql:
                            break
                        run.append(batch[index + len(run)])
                    try:
                        connection.executemany(operation.sql, [item[0].row for item in run])  # type: ignore[union-attr]
                        results.extend((item[1], None, None) for item in run)
                    except sqlite3.Error as failed:
                        results.extend((item[1], None, failed) for item in run)
                    index += len(run)
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
        loop.call_soon_threadsafe(_settle_all, results)

    async def _call(
        self, operation: Callable[[sqlite3.Connection], T] | _Rows, *, write: bool = True
    ) -> T:
        if self._thread is None:
            await self.open()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((operation, future, write))
        return await future

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the writer thread and create the tables if needed."""
        if self._opened is not None:
            await self._opened
            return
        loop = asyncio.get_running_loop()
        self._opened = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(loop,), name=f"minimax-s2v-sqlite-{self.path.name}", daemon=True
        )
        self._thread.start()
        await self._opened

    async def close(self) -> None:
        """Commit what is pending and stop the writer thread."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(thread.join)
        self._thread = None
        self._opened = None

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
        text = json.dumps(snapshot_payload(snapshot), separators=(",", ":"))
        row = (
            snapshot.task_id,
            text,
            source.value,
            int(confirmed),
            int(snapshot.is_terminal),
            time.time(),
        )
        await self._call(_Rows(_INSERT_EVENT, row))

    async def unfinished(self) -> list[StoredTask]:
        """Submitted tasks whose last confirmed status is not final."""
        rows = await self._call(
            lambda c: c.execute(
                "SELECT s.*, t.snapshot FROM submissions s LEFT JOIN tasks t USING (task_id) "
                "WHERE s.task_id IS NOT NULL AND COALESCE(t.terminal, 0) = 0 ORDER BY s.created_at"
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
            row = connection.execute(
                "SELECT s.*, t.snapshot FROM submissions s LEFT JOIN tasks t USING (task_id) "
                "WHERE s.task_id = ?",
                (task_id,),
            ).fetchone()
            if row is not None:
                return _task_row(row)
            alone = connection.execute(
                "SELECT snapshot FROM tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
            return StoredTask(task_id, _snapshot(alone[0]), None) if alone else None

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
        query = "SELECT snapshot, source, confirmed FROM events"
        params: tuple[str, ...] = ()
        if task_id is not None:
            query += " WHERE task_id = ?"
            params = (task_id,)
        rows = await self._call(
            lambda c: c.execute(query + " ORDER BY id", params).fetchall(), write=False
        )
        return [
            (_snapshot(text), EventSource(source), bool(confirmed))
            for text, source, confirmed in rows
        ]


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _settle_all(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        _settle(future, value, error)


def _snapshot(text: str) -> TaskSnapshot:
    return parse_snapshot(json.loads(text))


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
    snapshot = _snapshot(row[7]) if row[7] else None
    assert submission.task_id is not None  # noqa: S101 - the queries select tasks with an id
    return StoredTask(submission.task_id, snapshot, submission)
