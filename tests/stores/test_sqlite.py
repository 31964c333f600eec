"""SQLiteStore's own promises: its worker process, its schema, its failure modes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

from minimax_s2v import ConfigurationError, EventSource, TaskSnapshot, TaskStatus
from minimax_s2v.stores import SQLiteStore, StoredSubmission, SubmissionState
from tests.processes import ROOT
from tests.stores.test_contract import submission


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has ended all the same.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[1].split()[0] == "Z")


async def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def _opened(tmp_path: Path) -> tuple[SQLiteStore, int]:
    """An open store on a fresh file, and its worker's process id."""
    store = SQLiteStore(tmp_path / "j.db")
    await store.open()
    assert store.worker_pid is not None
    return store, store.worker_pid


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


async def test_a_dead_worker_fails_calls_clearly_then_is_replaced(tmp_path: Path) -> None:
    """Killing the worker fails the write in flight with OperationalError; the next starts anew."""
    store = SQLiteStore(tmp_path / "j.db")
    await store.save_submission(submission("nonce-before"))
    first = store.worker_pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert await _wait_gone(first)
    with pytest.raises(sqlite3.OperationalError, match="journal process"):
        await store.save_submission(submission("nonce-lost"))
    await store.save_submission(submission("nonce-after"))
    assert store.worker_pid not in (None, first)
    nonces = {s.nonce for s in await store.submissions()}
    await store.close()
    assert {"nonce-before", "nonce-after"} <= nonces


async def test_worker_ignores_ctrl_c_and_ends_with_the_store(tmp_path: Path) -> None:
    """SIGINT and SIGTERM sent to the process group do not cut the journal short."""
    store, pid = await _opened(tmp_path)
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    await asyncio.sleep(0.2)
    await store.save_submission(submission("nonce-after-signals"))
    assert store.worker_pid == pid
    await store.close()
    assert store.worker_pid is None
    assert await _wait_gone(pid)


def test_worker_exits_when_its_owner_is_killed(tmp_path: Path) -> None:
    """A `kill -9` of the process using the store leaves no worker behind."""
    script = (
        "import asyncio, sys\n"
        "from minimax_s2v.stores import SQLiteStore\n"
        "async def main():\n"
        "    store = SQLiteStore(sys.argv[1])\n"
        "    await store.open()\n"
        "    print(store.worker_pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "j.db")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    worker = int(owner.stdout.readline())
    assert _alive(worker)
    owner.kill()
    owner.wait(timeout=10)
    assert asyncio.run(_wait_gone(worker))


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
    """A lone surrogate in a label fails that write only; the worker and the rest go on."""
    store = SQLiteStore(tmp_path / "j.db")
    await store.open()
    pid = store.worker_pid
    bad = asyncio.ensure_future(store.save_submission(submission("nonce-bad", label="x\ud800")))
    good = asyncio.ensure_future(store.save_submission(submission("nonce-good", label="ok")))
    with pytest.raises(sqlite3.Error, match="surrogate"):
        await bad
    await good
    assert store.worker_pid == pid
    assert [s.nonce for s in await store.submissions()] == ["nonce-good"]
    await store.close()


async def test_close_after_the_worker_died_ends_quietly(tmp_path: Path) -> None:
    """close() with writes in flight to a dead worker fails them, starts nothing, and returns."""
    store, pid = await _opened(tmp_path)
    os.kill(pid, signal.SIGKILL)
    assert await _wait_gone(pid)
    pending = asyncio.ensure_future(store.save_submission(submission("nonce-in-flight")))
    await asyncio.sleep(0)
    await store.close()
    with pytest.raises(sqlite3.OperationalError):
        await pending
    assert store.worker_pid is None


async def test_the_worker_runs_under_the_python_given(tmp_path: Path) -> None:
    """``python=`` names the interpreter that runs the worker: a missing one fails to open."""
    missing = SQLiteStore(tmp_path / "a.db", python=tmp_path / "no-such-python")
    with pytest.raises(FileNotFoundError):
        await missing.open()
    assert missing.worker_pid is None
    store = SQLiteStore(tmp_path / "b.db", python=sys.executable)
    await store.save_submission(submission("n1"))
    assert store.worker_pid is not None
    await store.close()
    assert [s.nonce for s in await _reopened(tmp_path / "b.db")] == ["n1"]


async def _reopened(path: Path) -> list[StoredSubmission]:
    store = SQLiteStore(path)
    try:
        return await store.submissions()
    finally:
        await store.close()


async def test_a_frozen_application_is_told_to_name_a_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frozen app cannot start itself as the worker: a clear error says what to give."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    store = SQLiteStore(tmp_path / "j.db")
    with pytest.raises(ConfigurationError, match=r"python="):
        await store.open()
    assert not (tmp_path / "j.db").exists()
