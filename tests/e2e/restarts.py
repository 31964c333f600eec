"""Kill -9 a service process in the middle of its generations; a new one resumes the journal.

Both service processes (``tests.e2e.worker``) talk to one emulator process and serve
callbacks on the same port, so that callbacks sent to the first reach the second.
"""

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
from typing import Any
from urllib.request import urlopen

import attrs

from tests.processes import ROOT, emulator_process, free_port, wait_for_port

PROMPT = "kill test "


@attrs.frozen
class KillRun:
    """What a kill -9 and resume run left: the second process's report and the emulator's."""

    submitted: int  # "submitted" lines of the first process before the kill
    done: int  # "done" lines of the first process before the kill
    output: str  # the second process's output
    uncertain: set[str]  # the labels the second process reported uncertain at the end
    state: dict[str, Any]  # the emulator's state, with every task
    deliveries: list[dict[str, Any]]  # every callback the emulator sent
    db: Path

    def created(self) -> Counter[str]:
        """How many tasks the emulator created per label."""
        return Counter(task["prompt"].removeprefix(PROMPT) for task in self.state["tasks"])

    def finished(self) -> set[str]:
        """The tasks whose end is in the journal."""
        with sqlite3.connect(self.db) as connection:
            rows = connection.execute("SELECT task_id FROM tasks WHERE terminal = 1")
            return {task_id for (task_id,) in rows}

    def check_every_line_ran_once_and_ended(self, count: int) -> None:
        """No task created twice, every line ran; every task ended, unless reported uncertain."""
        created = self.created()
        assert max(created.values()) == 1  # no task created twice
        assert set(created) | self.uncertain == {str(i) for i in range(count)}  # every line ran
        finished = self.finished()
        for task in self.state["tasks"]:
            label = task["prompt"].removeprefix(PROMPT)
            assert task["task_id"] in finished or label in self.uncertain, (label, task)


def _get_json(url: str) -> Any:
    with urlopen(url, timeout=30) as response:
        return json.load(response)


def _start_worker(
    emulator: str, db: Path, port: int, count: int, mixed: bool
) -> subprocess.Popen[str]:
    args = [emulator, str(db), str(port), str(count), *(["mixed"] if mixed else [])]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def kill_then_resume(
    tmp_path: Path, *, count: int, seed: int, submitted: int, done: int, mixed: bool = False
) -> KillRun:
    """Run ``count`` generations, kill -9 the process after ``submitted`` and ``done`` lines.

    A second process then resumes from the journal and runs to the end.
    """
    receiver_port = free_port()  # the same for both processes: their callback URLs match
    db = tmp_path / "journal.db"
    with emulator_process("--speed", "0.01", "--seed", str(seed)) as emulator:
        first = _start_worker(emulator.url, db, receiver_port, count, mixed)
        assert first.stdout is not None
        seen = Counter[str]()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            seen["submitted"] < submitted or seen["done"] < done
        ):
            line = first.stdout.readline()
            seen[line.split(" ", 1)[0]] += 1
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        first.stdout.close()
        assert seen["submitted"] >= submitted, "the first process did not get far enough"

        second = _start_worker(emulator.url, db, receiver_port, count, mixed)
        wait_for_port(receiver_port, second)
        output, _ = second.communicate(timeout=240)
        assert second.returncode == 0, output
        final = [line for line in output.splitlines() if line.startswith("ALL DONE")]
        assert final, output[-2000:]
        uncertain = {u for u in final[0].split("uncertain=")[1].split(",") if u}
        state = _get_json(f"{emulator.url}/_emulator/state?tasks=1")
        deliveries = _get_json(f"{emulator.url}/_emulator/deliveries")
    return KillRun(seen["submitted"], seen["done"], output, uncertain, state, deliveries, db)
