"""Kill -9 in the middle of S2V-01 and MiniMax-H3 generations; a new process resumes both."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.e2e.test_kill_restart import get_json
from tests.processes import ROOT, free_port, python_process, wait_for_port

COUNT = 200  # even labels S2V-01 (V1), odd ones MiniMax-H3 (V2)


def start_worker(emulator: str, db: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.e2e.worker",
            emulator,
            str(db),
            str(port),
            str(COUNT),
            "mixed",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_kill_nine_then_resume_v1_and_v2(tmp_path: Path) -> None:
    """After kill -9, every V1 and V2 task ends, none is created twice, each on its own API."""
    emulator_port, receiver_port = free_port(), free_port()
    db = tmp_path / "journal.db"
    args = ["-m", "minimax_s2v.emulator", "--port", str(emulator_port), "--speed", "0.01"]
    with python_process([*args, "--seed", "19"], emulator_port):
        emulator = f"http://127.0.0.1:{emulator_port}"
        first = start_worker(emulator, db, receiver_port)
        assert first.stdout is not None
        submitted = done = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (submitted < 100 or done < 30):
            line = first.stdout.readline()
            submitted += line.startswith("submitted")
            done += line.startswith("done")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        first.stdout.close()
        assert submitted >= 100, "the first process did not get far enough"

        second = start_worker(emulator, db, receiver_port)
        wait_for_port(receiver_port, second)
        output, _ = second.communicate(timeout=240)
        assert second.returncode == 0, output
        final = [line for line in output.splitlines() if line.startswith("ALL DONE")]
        assert final, output[-2000:]
        reported_uncertain = {u for u in final[0].split("uncertain=")[1].split(",") if u}
        state = get_json(f"{emulator}/_emulator/state?tasks=1")
    assert isinstance(state, dict)
    assert not [line for line in output.splitlines() if line.startswith(("error", "submit-error"))]
    created = Counter(task["prompt"].removeprefix("kill test ") for task in state["tasks"])
    assert max(created.values()) == 1  # no task created twice
    assert set(created) | reported_uncertain == {str(i) for i in range(COUNT)}
    requests = state["requests"]
    assert sum(requests["submit"].values()) >= COUNT // 2 - len(reported_uncertain)
    assert sum(requests["v2_submit"].values()) >= COUNT // 2 - len(reported_uncertain)
    assert state["v2_max_in_flight_seen"] <= 30
    with sqlite3.connect(db) as connection:
        finished = {
            row[0] for row in connection.execute("SELECT task_id FROM tasks WHERE terminal = 1")
        }
    for task in state["tasks"]:
        label = task["prompt"].removeprefix("kill test ")
        assert task["task_id"] in finished or label in reported_uncertain, label
    resumed = [line for line in output.splitlines() if line.startswith("resumed")]
    print(f"{resumed[0]}; created {len(created)}, finished {len(finished)}")  # noqa: T201
