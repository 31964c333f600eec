"""The thread that owns an SQLiteStore's database file, and the file's schema.

One thread holds the :mod:`sqlite3` connection, so SQLite never runs on the event loop. The
loop hands it whole batches (gathered by :class:`~minimax_s2v.stores.SQLiteStore`); each
batch is one transaction, and its outcome goes back to the loop in one
``call_soon_threadsafe``: the loop wakes once per batch, not once per write. SQLite lets go
of the interpreter lock while it steps a statement (a commit's disk flush included), but
each step must take the lock back, which costs a wait while the loop is busy: a batch of a
single statement therefore runs as a transaction of its own, without ``BEGIN`` and
``COMMIT``.

A batch is a list of units; a unit is the statements of one call, run in order. A unit's
result is the rows each of its fetching statements returned, or the error that stopped it
(a value SQLite cannot take fails its own unit only); a transaction that fails as a whole
(``BEGIN`` or ``COMMIT`` refused: a full disk, a read-only file) fails every unit.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError

__all__ = [
    "EVENT_COLUMNS",
    "SNAPSHOT_COLUMNS",
    "SUBMISSION_COLUMNS",
    "Outcome",
    "Statement",
    "Writer",
]

SCHEMA_VERSION = 2
# The columns of each table, named once: the store writes and reads rows by these names.
_SUBMISSIONS = (
    ("nonce", "TEXT PRIMARY KEY"),
    ("fingerprint", "TEXT NOT NULL"),
    ("payload", "TEXT NOT NULL"),
    ("label", "TEXT"),
    ("state", "TEXT NOT NULL"),
    ("task_id", "TEXT"),
    ("created_at", "REAL NOT NULL"),
)
# A snapshot's columns of an event, the first after its id.
_SNAPSHOT = (
    ("task_id", "TEXT NOT NULL"),
    ("status", "TEXT NOT NULL"),
    ("status_text", "TEXT NOT NULL"),
    ("file_id", "TEXT"),
    ("width", "INTEGER"),
    ("height", "INTEGER"),
    ("error_code", "INTEGER"),
    ("error_message", "TEXT"),
)
_EVENTS = (
    ("id", "INTEGER PRIMARY KEY"),
    *_SNAPSHOT,
    ("source", "TEXT NOT NULL"),
    ("confirmed", "INTEGER NOT NULL"),
    ("terminal", "INTEGER NOT NULL"),
    ("nonce", "TEXT"),
    ("received_at", "REAL NOT NULL"),
)
SUBMISSION_COLUMNS = tuple(name for name, _ in _SUBMISSIONS)
SNAPSHOT_COLUMNS = tuple(name for name, _ in _SNAPSHOT)
#: The columns an event is written with (its id is SQLite's to give).
EVENT_COLUMNS = tuple(name for name, _ in _EVENTS if name != "id")


def _table(name: str, columns: tuple[tuple[str, str], ...]) -> str:
    lines = ",\n".join(f"    {column} {kind}" for column, kind in columns)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n{lines}\n);"


SCHEMA = f"""
{_table("submissions", _SUBMISSIONS)}
CREATE INDEX IF NOT EXISTS submissions_task ON submissions (task_id);
CREATE INDEX IF NOT EXISTS submissions_label ON submissions (label);
-- Every update, in arrival order. A task's known state is its last confirmed event: it is
-- derived when read, so that journaling an update is one row in one table.
{_table("events", _EVENTS)}
CREATE INDEX IF NOT EXISTS events_task ON events (task_id);
-- For people reading the journal with the sqlite3 shell: each task's last confirmed event.
CREATE VIEW IF NOT EXISTS tasks AS
    SELECT e.* FROM events e
    WHERE e.confirmed = 1
      AND e.id = (SELECT MAX(x.id) FROM events x WHERE x.task_id = e.task_id AND x.confirmed = 1);
"""

# A statement: SQL, parameters, and whether its rows are wanted.
Statement = tuple[str, Sequence[Any], bool]
# A batch's outcome: each unit's rows per statement or its error; or the transaction's error.
Outcome = list[list[Any] | sqlite3.Error] | sqlite3.Error
# What the thread is asked: BEGIN's form, the units (None: end the thread), and the future
# that gets the outcome (None for the end), if anyone waits for it.
_Request = tuple[str, "list[list[Statement]] | None", "asyncio.Future[Outcome | None] | None"]


def _prepare(connection: sqlite3.Connection, path: Path, synchronous: str) -> None:
    """Set the connection up and create the schema, or refuse a file of another version."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version == 0:
        (existing,) = connection.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('submissions', 'events')"
        ).fetchone()
        if existing:
            version = -1  # tables without a version: written by a pre-release build
    if version not in (0, SCHEMA_VERSION):
        raise ConfigurationError(
            f"{path} holds a journal of schema version {max(version, 0)}, but this version "
            f"of minimax_s2v reads version {SCHEMA_VERSION}; use a new file for the new journal"
        )
    connection.executescript(SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")


def _run_unit(connection: sqlite3.Connection, unit: list[Statement]) -> list[Any] | sqlite3.Error:
    results: list[Any] = []
    try:
        for sql, params, fetch in unit:
            cursor = connection.execute(sql, params)
            results.append(cursor.fetchall() if fetch else None)
    except sqlite3.Error as error:
        return error
    except Exception as error:  # noqa: BLE001 - a value SQLite cannot take fails its unit only
        # A lone surrogate, an integer over 64 bits, a value whose adaptation fails.
        failure = sqlite3.Error(f"{type(error).__name__}: {error}")
        failure.__cause__ = error
        return failure
    return results


def _commit(connection: sqlite3.Connection, begin: str, units: list[list[Statement]]) -> Outcome:
    if len(units) == 1 and len(units[0]) == 1:
        return [_run_unit(connection, units[0])]  # one statement: its own transaction
    try:
        connection.execute(begin)
        results = [_run_unit(connection, unit) for unit in units]
        connection.execute("COMMIT")
    except BaseException as error:
        if connection.in_transaction:
            connection.execute("ROLLBACK")  # none of the batch's writes happened
        if isinstance(error, sqlite3.Error):
            return error
        raise
    return results


class Writer:
    """The thread that owns one database file and runs the transactions asked of it.

    It is a daemon thread: a process that exits without closing its store does not wait for
    it. A transaction cut short by the exit is undone by SQLite when the file is next
    opened, and none of its writes had been reported committed.
    """

    def __init__(self, path: Path, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        # Taken to queue a request and by the thread as it ends: no request is queued
        # after the thread stopped reading, so none waits forever.
        self._lock = threading.Lock()
        self._ended = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.variables = 999  # SQLite's limit on parameters per statement, read when opened

    @property
    def ended(self) -> bool:
        """The thread is gone (stopped, or ended by an error); it takes no more requests."""
        return self._ended

    async def start(self) -> None:
        """Start the thread and open the file in it.

        Raises:
            OSError: the file's directory cannot be created.
            sqlite3.Error: SQLite cannot open the file.
            ConfigurationError: the file holds a journal of another schema version.
        """
        loop = self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[BaseException | None] = loop.create_future()
        threading.Thread(
            target=self._run, args=(opened,), name="minimax-s2v-sqlite", daemon=True
        ).start()
        error = await opened
        if error is not None:
            raise error

    async def run(self, begin: str, units: list[list[Statement]]) -> Outcome:
        """Run one transaction; its :data:`Outcome`.

        Cancelling the wait does not undo the transaction: it may or may not be committed.
        """
        outcome = await self._ask(begin, units)
        assert outcome is not None  # noqa: S101 - only the request to end has no outcome
        return outcome

    async def stop(self) -> None:
        """End the thread once what was queued before is committed, and close the file."""
        await self._ask("", None)

    def abandon(self) -> None:
        """End the thread once what was queued is committed, with nobody waiting (any thread)."""
        with self._lock:
            if not self._ended:
                self._requests.put(("", None, None))

    def _ask(
        self, begin: str, units: list[list[Statement]] | None
    ) -> asyncio.Future[Outcome | None]:
        assert self._loop is not None  # noqa: S101 - set by start()
        future: asyncio.Future[Outcome | None] = self._loop.create_future()
        with self._lock:
            if not self._ended:
                self._requests.put((begin, units, future))
                return future
        future.set_result(None if units is None else _ended_error())
        return future

    def _reply(self, future: asyncio.Future[Any] | None, outcome: object) -> bool:
        assert self._loop is not None  # noqa: S101 - set by start()
        if future is None:
            return True
        try:
            self._loop.call_soon_threadsafe(_resolve, future, outcome)
        except RuntimeError:  # the event loop is closed: nobody is left to tell
            return False
        return True

    def _run(self, opened: asyncio.Future[BaseException | None]) -> None:
        connection: sqlite3.Connection | None = None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self._path, isolation_level=None)
            _prepare(connection, self._path, self._synchronous)
            self.variables = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except BaseException as error:  # OSError, sqlite3.Error, ConfigurationError
            if connection is not None:
                connection.close()
            self._end()
            self._reply(opened, error if isinstance(error, Exception) else _ended_error())
            if not isinstance(error, Exception):
                raise
            return
        if self._reply(opened, None):
            self._serve(connection)
        else:
            connection.close()
            self._end()

    def _serve(self, connection: sqlite3.Connection) -> None:
        asked: _Request | None = None
        try:
            while True:
                asked = self._requests.get()
                begin, units, done = asked
                if units is None:
                    break
                outcome = _commit(connection, begin, units)
                asked = None
                if not self._reply(done, outcome):
                    break
        finally:
            # Also when an error escaped: the calls waiting are told, and the store starts
            # a new thread for the next one.
            try:
                connection.close()
            finally:
                for _, units, done in [*([asked] if asked else []), *self._end()]:
                    self._reply(done, None if units is None else _ended_error())

    def _end(self) -> list[_Request]:
        """Take no more requests; those queued meanwhile are returned."""
        with self._lock:
            self._ended = True
        left = []
        while True:
            try:
                left.append(self._requests.get_nowait())
            except queue.Empty:
                return left


def _resolve(future: asyncio.Future[Any], outcome: object) -> None:
    if not future.done():  # a wait that was cancelled has nobody to tell
        future.set_result(outcome)


def _ended_error() -> sqlite3.Error:
    return sqlite3.OperationalError(
        "the SQLite journal's writer thread ended; these writes may or may not have been committed"
    )
