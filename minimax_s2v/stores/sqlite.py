"""SQLiteStore: an embedded, durable journal with group commit, written by its own process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import struct
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from .._errors import ConfigurationError
from .._models import EventSource, TaskSnapshot, TaskStatus
from ._base import StoredSubmission, StoredTask, SubmissionState
from ._batch import Batcher
from ._sqlite_worker import EVENT_COLUMNS, SNAPSHOT_COLUMNS, SUBMISSION_COLUMNS

__all__ = ["SQLiteStore"]

logger = logging.getLogger("minimax_s2v")

_WORKER = Path(__file__).with_name("_sqlite_worker.py")
_HEADER = struct.Struct(">I")

# Every statement names its columns (the worker's lists), and rows are read by those names.
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

# A statement for the worker: SQL, parameters, and whether its rows are wanted.
Statement = tuple[str, "list[Any] | tuple[Any, ...]", bool]
Rows = list[list[Any]]


class _Rows:
    """One row for an INSERT that the worker runs together with its neighbours' rows."""

    __slots__ = ("prefix", "row")

    def __init__(self, prefix: str, row: tuple[Any, ...]) -> None:
        self.prefix = prefix  # "INSERT INTO t (columns) VALUES "
        self.row = row


# What one call asks for: statements (or a row to insert), its future, whether it writes.
_Item = tuple["list[Statement] | _Rows", "asyncio.Future[list[Rows | None]]", bool]


class SQLiteStore:
    """A durable journal in one SQLite file (WAL mode).

    The file is owned by a small worker process (by default run by the same Python; it uses
    the standard library only), so SQLite never blocks the event loop and never competes with
    it for the interpreter lock. Writes are gathered on the event loop while the worker
    commits the previous batch and are then sent together: one transaction, one disk flush,
    and one multi-row ``INSERT`` for the updates in it (group commit). A write's coroutine
    returns only once its transaction is committed.

    The worker ignores SIGINT and SIGTERM and ends when this process closes the store or
    exits (even by ``kill -9``): a Ctrl-C cannot cut a commit short, and what was committed
    stays committed. If the worker dies, the calls in flight fail with
    :class:`sqlite3.OperationalError` and the next call starts a new one.

    Args:
        path: the database file (created with its directory if missing).
        synchronous: SQLite's ``synchronous`` setting: ``"FULL"`` (the default) survives
            power loss, ``"NORMAL"`` survives a crash of the process.
        max_batch: writes committed in one transaction at most.
        python: the Python interpreter that runs the worker; by default the one running this
            process. A frozen application (PyInstaller, …) has no interpreter of its own to
            start, so it must name one here (any Python 3.11 or newer: the worker uses the
            standard library only).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        max_batch: int = 1000,
        python: str | os.PathLike[str] | None = None,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be 'FULL' or 'NORMAL'")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.path = Path(path)
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._python = python
        self._process: asyncio.subprocess.Process | None = None
        self._opening: asyncio.Task[None] | None = None
        self._variables = 999  # SQLite's limit on parameters per statement, as the worker says
        # Calls gathered on the event loop while the worker commits the previous batch.
        self._batches = Batcher(self._exchange, max_batch=max_batch)
        self.commits = 0  # transactions committed (for tests and benchmarks)
        self.writes = 0  # writes committed

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    @property
    def worker_pid(self) -> int | None:
        """The process id of the worker that owns the file, while the store is open."""
        return self._process.pid if self._process is not None else None

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the worker and create the tables if needed.

        Raises:
            OSError: the file's directory cannot be created, or ``python`` cannot be started.
            sqlite3.Error: SQLite cannot open the file.
            ConfigurationError: the file holds a journal of another schema version, or the
                application is frozen and no ``python`` was given.
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

    def _interpreter(self) -> str:
        if self._python is not None:
            return os.fspath(self._python)
        if getattr(sys, "frozen", False) or not sys.executable:
            raise ConfigurationError(
                "SQLiteStore runs its journal in a Python worker process, and this application "
                "has no Python interpreter of its own to start (it is frozen): give one with "
                "SQLiteStore(path, python='/usr/bin/python3')"
            )
        return sys.executable

    async def _start(self) -> None:
        python = self._interpreter()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            python,
            "-I",  # isolated: only the standard library, whatever the working directory
            str(_WORKER),
            str(self.path),
            self._synchronous,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            hello = await _read_frame(process)
        except (asyncio.IncompleteReadError, ConnectionError) as lost:
            await process.wait()
            raise sqlite3.OperationalError(
                f"the SQLite journal process for {self.path} did not start "
                f"(exit code {process.returncode})"
            ) from lost
        if not hello["ok"]:
            await process.wait()
            raise _error(hello)
        self._variables = int(hello["variables"])
        self._process = process

    async def close(self) -> None:
        """Commit what is pending and stop the worker."""
        if self._opening is not None:
            try:
                await self.open()
            except (OSError, sqlite3.Error, ConfigurationError):
                return
        while self._process is not None and not self._batches.idle:
            try:
                await self._call([], write=False)  # everything asked before it is committed
            except sqlite3.Error:
                break  # the worker ended; the calls in flight were told so
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        await process.wait()

    # -- batching on the event loop ---------------------------------------------------------

    @property
    def _running(self) -> bool:
        return self._process is not None

    async def _call(self, ask: list[Statement] | _Rows, *, write: bool = True) -> list[Rows | None]:
        if not self._running:
            await self.open()
        future: asyncio.Future[list[Rows | None]] = asyncio.get_running_loop().create_future()
        self._batches.add((ask, future, write))
        return await future

    async def _exchange(self, batch: list[_Item]) -> None:
        process = self._process
        if process is None:  # the worker died or the store was closed meanwhile
            self._fail(batch, sqlite3.OperationalError("the SQLiteStore is not open"))
            return
        units, owners = self._units(batch)
        writes = sum(1 for _, _, write in batch if write)
        request = {"begin": "BEGIN IMMEDIATE" if writes else "BEGIN", "units": units}
        answer: dict[str, Any] | None = None
        try:
            assert process.stdin is not None  # noqa: S101 - opened with a pipe
            body = json.dumps(request, separators=(",", ":")).encode()
            process.stdin.write(_HEADER.pack(len(body)) + body)
            await process.stdin.drain()
            answer = await _read_frame(process)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if answer is None:  # the worker is gone (or this exchange was cancelled)
                self._lost(process, batch)
        if answer is None:
            return
        if answer["ok"]:
            self.commits += 1
            self.writes += writes
            for futures, result in zip(owners, answer["results"], strict=True):
                failure = _error(result) if isinstance(result, dict) else None
                for future in futures:
                    _settle(future, result, failure)
        else:
            logger.error("SQLite commit failed: %s", answer["error"])
            self._fail(batch, _error(answer))

    def _units(self, batch: list[_Item]) -> tuple[list[list[Statement]], list[list[Any]]]:
        """The batch as the worker's units, and the futures each unit's result settles.

        Consecutive rows for the same table become multi-row INSERTs, as few as SQLite's
        parameter limit allows.
        """
        units: list[list[Statement]] = []
        owners: list[list[Any]] = []
        index = 0
        while index < len(batch):
            ask, future, _ = batch[index]
            if not isinstance(ask, _Rows):
                units.append(ask)
                owners.append([future])
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
            owners.append([item[1] for item in batch[index:end]])
            index = end
        return units, owners

    def _lost(self, process: asyncio.subprocess.Process, batch: list[_Item]) -> None:
        if self._process is process:
            self._process = None  # the next call starts a new worker
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()  # a worker still running ends once it has read this far
        error = sqlite3.OperationalError(
            f"the SQLite journal process for {self.path} ended (exit code {process.returncode}); "
            "these writes may or may not have been committed"
        )
        logger.error("%s", error)
        self._fail(batch + self._batches.take_pending(), error)

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
            "payload": json.dumps(submission.payload, separators=(",", ":")),
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


async def _read_frame(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None  # noqa: S101 - opened with a pipe
    (length,) = _HEADER.unpack(await process.stdout.readexactly(_HEADER.size))
    document: dict[str, Any] = json.loads(await process.stdout.readexactly(length))
    return document


def _error(failure: dict[str, Any]) -> Exception:
    """The exception a worker's ``{"kind": …, "error": …}`` stands for."""
    kind, message = str(failure.get("kind")), str(failure.get("error"))
    if kind == "SchemaMismatchError":
        return ConfigurationError(message)
    found = getattr(sqlite3, kind, None)
    if isinstance(found, type) and issubclass(found, sqlite3.Error):
        return found(message)
    if kind in ("OSError", "PermissionError", "FileNotFoundError", "NotADirectoryError"):
        return OSError(message)
    return sqlite3.Error(f"{kind}: {message}")


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
