"""The process that owns an SQLiteStore's database file (standard library only).

:class:`~minimax_s2v.stores.SQLiteStore` starts it as ``python -I _sqlite_worker.py PATH
SYNCHRONOUS`` and talks to it over its standard input and output in frames: a 4-byte
big-endian length, then a JSON document. A separate process has its own interpreter lock,
so the journal's work never competes with the event loop for it, and a commit's disk flush
never waits for the event loop to let a thread run.

Protocol:
    ready    -> {"ok": true, "variables": N}  or  {"ok": false, "kind": K, "error": E}
    request  <- {"begin": "BEGIN IMMEDIATE" | "BEGIN", "units": [[[sql, params, fetch], ...], ...]}
    answer   -> {"ok": true, "results": [[rows | null, ...] | {"kind": K, "error": E}, ...]}
                or {"ok": false, "kind": K, "error": E} when the transaction failed as a whole.

Each unit is a list of statements run in order; its result is the rows each ``fetch``
statement returned, or the error that stopped it. The worker exits when its input ends.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import struct
import sys
from typing import Any, BinaryIO

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
_HEADER = struct.Struct(">I")


class SchemaMismatchError(Exception):
    """The file holds a journal of another schema version."""


def read_frame(stream: BinaryIO) -> Any:
    """The next JSON document on ``stream``, or ``None`` at its end."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (length,) = _HEADER.unpack(header)
    body = stream.read(length)
    if len(body) < length:
        return None
    return json.loads(body)


def write_frame(stream: BinaryIO, document: object) -> None:
    """Write one JSON document to ``stream`` and flush it."""
    body = json.dumps(document, separators=(",", ":")).encode()
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def prepare(connection: sqlite3.Connection, path: str, synchronous: str) -> None:
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
        raise SchemaMismatchError(
            f"{path} holds a journal of schema version {max(version, 0)}, but this version "
            f"of minimax_s2v reads version {SCHEMA_VERSION}; use a new file for the new journal"
        )
    connection.executescript(SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")


def _failure(error: BaseException) -> dict[str, str]:
    return {"kind": type(error).__name__, "error": str(error)}


def run_unit(connection: sqlite3.Connection, unit: list[Any]) -> list[Any] | Exception:
    """Run one unit's statements; its rows per statement, or the error that stopped it."""
    results: list[Any] = []
    try:
        for sql, params, fetch in unit:
            cursor = connection.execute(sql, params)
            results.append(cursor.fetchall() if fetch else None)
    except (sqlite3.Error, ValueError, OverflowError) as error:
        # A value SQLite cannot take (a lone surrogate, an integer over 64 bits) fails its
        # unit only; the rest of the transaction carries on.
        return error
    return results


def commit(
    connection: sqlite3.Connection, begin: str, units: list[Any]
) -> list[list[Any] | Exception]:
    """Run units in one transaction; each unit's result as :func:`run_unit` gives it.

    Raises:
        sqlite3.Error: the transaction failed as a whole (it was rolled back).
    """
    if len(units) == 1 and len(units[0]) == 1:
        # One statement is a transaction of its own (SQLite's autocommit): BEGIN and COMMIT
        # would add two steps, each a wait for the interpreter lock in a busy process.
        return [run_unit(connection, units[0])]
    try:
        connection.execute(begin)
        results = [run_unit(connection, unit) for unit in units]
        connection.execute("COMMIT")
    except sqlite3.Error:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return results


def answer(connection: sqlite3.Connection, request: dict[str, Any]) -> dict[str, Any]:
    """A request's answer frame."""
    try:
        results = commit(connection, request["begin"], request["units"])
    except sqlite3.Error as error:
        return {"ok": False, **_failure(error)}
    return {
        "ok": True,
        "results": [_failure(r) if isinstance(r, Exception) else r for r in results],
    }


def main(path: str, synchronous: str) -> int:
    """Serve requests on standard input until it ends."""
    # The worker lives as long as its pipe: a Ctrl-C or a SIGTERM sent to the whole process
    # group must not cut a commit short while the store's process is still shutting down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    try:
        connection = sqlite3.connect(path, isolation_level=None)
        prepare(connection, path, synchronous)
    except (sqlite3.Error, OSError, SchemaMismatchError) as error:
        write_frame(sink, {"ok": False, **_failure(error)})
        return 1
    variables = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    write_frame(sink, {"ok": True, "variables": variables})
    try:
        while (request := read_frame(source)) is not None:
            write_frame(sink, answer(connection, request))
    except BrokenPipeError:  # the store's process is gone; what was committed stays
        pass
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
