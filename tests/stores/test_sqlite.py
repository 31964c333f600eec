"""SQLiteStore's own promises: its writer thread, its schema, its failure modes."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import attrs
import pytest

from minimax_s2v import ConfigurationError, EventSource, TaskSnapshot, TaskStatus
from minimax_s2v.stores import SQLiteStore, SubmissionState
from tests.processes import ROOT
from tests.stores.test_contract import submission


class _Fatal(BaseException):
    """What no journal catches: it ends the thread that meets it."""


class _FatalId(str):
    """A task id whose adaptation to SQLite raises :class:`_Fatal` in the writer thread."""

    __slots__ = ()

    def __conform__(self, protocol: object) -> object:
        raise _Fatal("the journal's thread meets what it cannot handle")


def _writer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "minimax-s2v-sqlite"}


def _assert_ended(threads: set[threading.Thread]) -> None:
    """Each of ``threads`` ends within seconds (a closed store's thread ends by itself)."""
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()


async def test_tasks_view_shows_each_tasks_last_confirmed_update(tmp_path: Path) -> None:
    """The journal reads in the sqlite3 shell: `tasks` is each task's last confirmed event."""
    path = tmp_path / "j.db"
    store = SQLiteStore(path)
    await store.save_event(TaskSnapshot("1", TaskStatus.QUEUEING), EventSource.POLL, confirmed=True)
    await store.save_event(
        TaskSnapshot("1", TaskStatus.PROCESSING), EventSource.CALLBACK, confirmed=True
    )
    await store.save_event(
        TaskSnapshot("1", TaskStatus.SUCCESS, file_id="9"), EventSource.CALLBACK, confirmed=False
    )
    await store.save_event(
        TaskSnapshot("2", TaskStatus.FAIL, error_code=1026, error_message="sensitive"),
        EventSource.POLL,
        confirmed=True,
    )
    await store.close()
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT task_id, status, terminal, error_code FROM tasks ORDER BY task_id"
        ).fetchall()
    assert rows == [("1", "Processing", 0, None), ("2", "Fail", 1, 1026)]
    reopened = SQLiteStore(path)
    failed = await reopened.task("2")
    await reopened.close()
    assert failed is not None
    assert failed.snapshot is not None
    assert failed.snapshot.error_message == "sensitive"
    assert failed.finished


async def test_a_journal_of_another_schema_is_refused(tmp_path: Path) -> None:
    """A file written by another schema version is a clear error, and is left untouched."""
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(ConfigurationError, match="schema version 99"):
        await SQLiteStore(newer).open()
    unversioned = tmp_path / "old.db"
    with sqlite3.connect(unversioned) as connection:
        connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, snapshot TEXT)")
    with pytest.raises(ConfigurationError, match="use a new file"):
        await SQLiteStore(unversioned).open()
    with sqlite3.connect(unversioned) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (0,)
        assert [r[0] for r in connection.execute("SELECT name FROM sqlite_master")] == ["events"]


async def test_rows_are_read_by_column_name_whatever_the_tables_order(tmp_path: Path) -> None:
    """A journal whose tables hold the same columns in another order reads back the same."""
    path = tmp_path / "shuffled.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "CREATE TABLE submissions (created_at REAL NOT NULL, task_id TEXT, state TEXT NOT "
            "NULL, label TEXT, payload TEXT NOT NULL, fingerprint TEXT NOT NULL, nonce TEXT "
            "PRIMARY KEY);"
            "CREATE TABLE events (received_at REAL NOT NULL, nonce TEXT, terminal INTEGER NOT "
            "NULL, confirmed INTEGER NOT NULL, source TEXT NOT NULL, error_message TEXT, "
            "error_code INTEGER, height INTEGER, width INTEGER, file_id TEXT, status_text TEXT "
            "NOT NULL, status TEXT NOT NULL, task_id TEXT NOT NULL, id INTEGER PRIMARY KEY);"
            "PRAGMA user_version = 2;"
        )
    store = SQLiteStore(path)
    sent = submission("nonce-1", label="line 1")
    await store.save_submission(sent)
    await store.mark_submitted("nonce-1", "77")
    done = TaskSnapshot("77", TaskStatus.FAIL, error_code=1026, error_message="sensitive")
    await store.save_event(done, EventSource.POLL, confirmed=True)
    found, events, kept = await store.task("77"), await store.events(), await store.submissions()
    await store.close()
    assert found is not None
    assert found.snapshot == done
    assert found.submission == attrs.evolve(sent, state=SubmissionState.SUBMITTED, task_id="77")
    assert events == [(done, EventSource.POLL, True)]
    assert kept == [found.submission]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_a_writer_thread_that_ends_fails_its_calls_then_is_replaced(tmp_path: Path) -> None:
    """The thread ends by an error: its call fails with OperationalError; the next starts anew."""
    before = _writer_threads()
    store = SQLiteStore(tmp_path / "j.db")
    await store.save_submission(submission("nonce-before"))
    (first,) = _writer_threads() - before
    fatal = TaskSnapshot(_FatalId("1"), TaskStatus.QUEUEING)
    with pytest.raises(sqlite3.OperationalError, match="writer thread ended"):
        await store.save_event(fatal, EventSource.POLL, confirmed=True)
    first.join(timeout=10)
    assert not first.is_alive()
    await store.save_submission(submission("nonce-after"))
    nonces = {s.nonce for s in await store.submissions()}
    await store.close()
    assert {"nonce-before", "nonce-after"} <= nonces
    _assert_ended(_writer_threads() - before)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_close_after_the_writer_thread_ended_returns(tmp_path: Path) -> None:
    """close() after the thread ended by an error returns at once and leaves no thread."""
    before = _writer_threads()
    store = SQLiteStore(tmp_path / "j.db")
    fatal = TaskSnapshot(_FatalId("1"), TaskStatus.QUEUEING)
    with pytest.raises(sqlite3.OperationalError):
        await store.save_event(fatal, EventSource.POLL, confirmed=True)
    async with asyncio.timeout(10):
        await store.close()
    _assert_ended(_writer_threads() - before)


async def test_a_store_dropped_without_closing_ends_its_thread(tmp_path: Path) -> None:
    """A store nobody closed, once forgotten, commits what it was asked and ends its thread."""
    before = _writer_threads()
    store = SQLiteStore(tmp_path / "j.db")
    await store.save_submission(submission("nonce-kept"))
    left = _writer_threads() - before
    assert left
    del store
    gc.collect()
    _assert_ended(left)
    with sqlite3.connect(tmp_path / "j.db") as connection:
        assert connection.execute("SELECT nonce FROM submissions").fetchall() == [("nonce-kept",)]


_OWNER = """
import asyncio, sys
from minimax_s2v import EventSource, TaskSnapshot, TaskStatus
from minimax_s2v.stores import SQLiteStore

async def write(store, i):
    snapshot = TaskSnapshot(str(i), TaskStatus.QUEUEING)
    await store.save_event(snapshot, EventSource.POLL, confirmed=True)
    print(i, flush=True)  # told it is committed

async def main():
    store = SQLiteStore(sys.argv[1])
    try:
        for start in range(0, 10**9, 50):
            await asyncio.gather(*(write(store, start + k) for k in range(50)))
    finally:
        await store.close()

asyncio.run(main())
"""


@pytest.mark.parametrize("stop", ["ctrl-c", "kill -9"])
def test_every_acknowledged_write_outlives_its_process(tmp_path: Path, stop: str) -> None:
    """Ctrl-C (SIGINT to the process group) or kill -9 mid-burst: every committed write stays.

    After a Ctrl-C the store is also closed as the program unwinds: SQLite removes the
    write-ahead log only when the last connection closes cleanly.
    """
    path = tmp_path / "j.db"
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert owner.stdout is not None
    told = [owner.stdout.readline() for _ in range(500)]
    if stop == "ctrl-c":
        os.killpg(owner.pid, signal.SIGINT)
    else:
        owner.kill()
    rest, _ = owner.communicate(timeout=30)
    acknowledged = {int(line) for line in [*told, *rest.splitlines()]}
    closed_cleanly = not path.with_name("j.db-wal").exists()
    with sqlite3.connect(path) as connection:
        journaled = {int(row[0]) for row in connection.execute("SELECT task_id FROM events")}
    assert len(acknowledged) >= 500
    assert acknowledged <= journaled
    if stop == "ctrl-c":
        assert owner.returncode == -signal.SIGINT  # ended by KeyboardInterrupt, after close()
        assert closed_cleanly


async def test_calls_made_while_closing_are_committed(tmp_path: Path) -> None:
    """Writes asked for during close() are committed before the worker stops."""
    path = tmp_path / "j.db"
    store = SQLiteStore(path)
    await store.open()
    writes = [
        asyncio.ensure_future(
            store.save_event(
                TaskSnapshot(str(i), TaskStatus.QUEUEING), EventSource.POLL, confirmed=True
            )
        )
        for i in range(50)
    ]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*writes)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM events").fetchone() == (50,)


def test_bad_arguments_are_refused() -> None:
    """Settings are checked when the store is made, not at the first write."""
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore("x.db", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_batch"):
        SQLiteStore("x.db", max_batch=0)


async def test_a_value_sqlite_cannot_take_fails_alone(tmp_path: Path) -> None:
    """A lone surrogate in a label fails that write only; the writer and the rest go on."""
    store = SQLiteStore(tmp_path / "j.db")
    await store.open()
    bad = asyncio.ensure_future(store.save_submission(submission("nonce-bad", label="x\ud800")))
    good = asyncio.ensure_future(store.save_submission(submission("nonce-good", label="ok")))
    with pytest.raises(sqlite3.Error, match="surrogate"):
        await bad
    await good
    assert [s.nonce for s in await store.submissions()] == ["nonce-good"]
    await store.close()


async def test_a_frozen_application_needs_no_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frozen app (PyInstaller, no Python of its own to start) keeps its journal as any other."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "")
    store = SQLiteStore(tmp_path / "j.db")
    await store.save_submission(submission("n1"))
    await store.close()
    monkeypatch.undo()
    with sqlite3.connect(tmp_path / "j.db") as connection:
        assert connection.execute("SELECT nonce FROM submissions").fetchall() == [("n1",)]
