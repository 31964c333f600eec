"""Kill -9 in the middle of 500 generations; a new process resumes from the SQLite journal."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.request import urlopen

from tests.processes import ROOT, free_port, python_process, wait_for_port

COUNT = 500


def start_worker(emulator: str, db: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.worker", emulator, str(db), str(port), str(COUNT)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def get_json(url: str) -> object:
    with urlopen(url, timeout=30) as response:
        return json.load(response)


def test_kill_nine_then_resume(tmp_path: Path) -> None:
    """Every acknowledged update is journaled, every task ends, none is created twice."""
    emulator_port, receiver_port = free_port(), free_port()
    db = tmp_path / "journal.db"
    args = [
        "-m",
        "minimax_s2v.emulator",
        "--port",
        str(emulator_port),
        "--speed",
        "0.01",
        "--seed",
        "5",
    ]
    with python_process(args, emulator_port):
        emulator = f"http://127.0.0.1:{emulator_port}"
        first = start_worker(emulator, db, receiver_port)
        assert first.stdout is not None
        submitted = done = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (submitted < 250 or done < 60):
            line = first.stdout.readline()
            submitted += line.startswith("submitted")
            done += line.startswith("done")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        first.stdout.close()
        assert submitted >= 250, "the first process did not get far enough"

        second = start_worker(emulator, db, receiver_port)
        wait_for_port(receiver_port, second)
        output, _ = second.communicate(timeout=240)
        assert second.returncode == 0, output
        final = [line for line in output.splitlines() if line.startswith("ALL DONE")]
        assert final, output[-2000:]
        reported_uncertain = {u for u in final[0].split("uncertain=")[1].split(",") if u}

        state = get_json(f"{emulator}/_emulator/state?tasks=1")
        deliveries = get_json(f"{emulator}/_emulator/deliveries")
    assert isinstance(state, dict)
    assert isinstance(deliveries, list)
    created = Counter(task["prompt"].removeprefix("kill test ") for task in state["tasks"])
    assert max(created.values()) == 1  # no task created twice
    assert set(created) | reported_uncertain == {str(i) for i in range(COUNT)}  # every line ran

    with sqlite3.connect(db) as connection:
        journal = {
            (task_id, status_text.lower())
            for task_id, status_text in connection.execute(
                "SELECT task_id, status_text FROM events WHERE source = 'callback'"
            )
        }
        known = {
            (task_id, status_text.lower())
            for task_id, status_text in connection.execute(
                "SELECT task_id, status_text FROM events WHERE confirmed = 1"
            )
        }
        finished = {
            row[0] for row in connection.execute("SELECT task_id FROM tasks WHERE terminal = 1")
        }
        labels = dict(
            connection.execute("SELECT task_id, label FROM submissions WHERE task_id IS NOT NULL")
        )
    acknowledged = {
        (d["task_id"], d["status"].lower())
        for d in deliveries
        if d["kind"] == "status" and d["http_status"] == 200
    }
    # Every acknowledged update was on disk first, or changed nothing: its status (or the
    # task's end) was already known from the journal, by callback, poll or resume.
    unrecorded = acknowledged - journal
    assert all(
        (task_id, status) in known or task_id in finished for task_id, status in unrecorded
    ), unrecorded
    task_of = {
        task["prompt"].removeprefix("kill test "): task["task_id"] for task in state["tasks"]
    }
    for label, task_id in task_of.items():
        # Every created task ended in the journal, unless it is a reported uncertain one.
        assert task_id in finished or label in reported_uncertain, (label, task_id)
    assert set(labels.values()) | reported_uncertain >= set(task_of)
    print(  # noqa: T201 - figures for the record
        f"kill -9 after {submitted} submitted / {done} done; created {len(created)}, "
        f"finished {len(finished)}, acknowledged {len(acknowledged)}, "
        f"uncertain {sorted(reported_uncertain)}"
    )
