"""Ctrl-C and a journal that cannot be used, as a user of the command line meets them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.request import urlopen

import pytest
from PIL import Image

from minimax_s2v.cli import EXIT
from tests.processes import ROOT, EmulatorProcess, emulator_process


@pytest.fixture
def face(tmp_path: Path) -> Path:
    path = tmp_path / "face.png"
    Image.new("RGB", (512, 640), (200, 160, 140)).save(path)
    return path


def batch_file(directory: Path, face: Path, count: int, prompt: str) -> Path:
    """``jobs.jsonl`` in ``directory``: ``count`` lines ``line-<i>`` of ``face``, each prompted."""
    batch = directory / "jobs.jsonl"
    batch.write_text(
        "".join(
            json.dumps({"id": f"line-{i}", "image": str(face), "prompt": f"{prompt} {i}"}) + "\n"
            for i in range(count)
        )
    )
    return batch


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "minimax_s2v", *args]


def start(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def emulator(speed: str = "0.01") -> AbstractContextManager[EmulatorProcess]:
    return emulator_process("--speed", speed, "--seed", "4")


def state(url: str) -> dict[str, object]:
    with urlopen(f"{url}/_emulator/state?tasks=1", timeout=10) as response:
        result: dict[str, object] = json.load(response)
        return result


@pytest.mark.slow
def test_interrupted_batch_reruns_exactly_the_lines_never_sent(face: Path, tmp_path: Path) -> None:
    """SIGINT while lines wait for the rate limit: the re-run sends those, 0 uncertain."""
    batch = batch_file(tmp_path, face, 4, "ctrl-c line")
    out = tmp_path / "out"
    with emulator() as emu:
        base = ["batch", str(batch), "--out", str(out), "--api-key", "emulator-key"]
        base += ["--base-url", emu.url, "--poll-interval", "0.1"]
        first = start(cli(*base, "--rpm", "6"))  # one now, the next in 10 s
        time.sleep(3.0)
        first.send_signal(signal.SIGINT)
        _, first_err = first.communicate(timeout=30)
        sent_first = state(emu.url)["tasks_created"]
        second = subprocess.run(
            cli(*base, "--rpm", "600"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        tasks = state(emu.url)["tasks"]
    assert first.returncode == EXIT["interrupted"], first_err[-2000:]
    assert sent_first == 1
    assert second.returncode == EXIT["ok"], second.stderr[-2000:]
    assert "0 uncertain" in second.stderr + second.stdout
    assert isinstance(tasks, list)
    created = Counter(task["prompt"] for task in tasks)
    assert sorted(created) == [f"ctrl-c line {i}" for i in range(4)]
    assert set(created.values()) == {1}  # each line sent exactly once
    assert sorted(p.name for p in out.glob("*.mp4")) == [f"line-{i}.mp4" for i in range(4)]


def test_ctrl_c_during_generate_never_advises_paying_twice(face: Path, tmp_path: Path) -> None:
    """The task id and the exact commands to follow it, and a plain warning."""
    with emulator("0.2") as emu:
        run = start(
            cli(
                "generate",
                "--image",
                str(face),
                "--prompt",
                "a wave",
                "--api-key",
                "emulator-key",
                "--base-url",
                emu.url,
                "--out",
                str(tmp_path / "v.mp4"),
            )
        )
        assert run.stderr is not None
        line = run.stderr.readline()
        assert line.startswith("submitted task "), line
        task_id = line.split()[-1]
        run.send_signal(signal.SIGINT)
        _, rest = run.communicate(timeout=30)
    assert run.returncode == EXIT["interrupted"]
    assert f"minimax-s2v status {task_id}" in rest
    assert f"minimax-s2v download {task_id} --out FILE" in rest
    assert "creates and pays for a new task" in rest
    assert "run the same command again to resume" not in rest


def test_a_journal_that_cannot_be_made_is_one_line(face: Path, tmp_path: Path) -> None:
    """--out under a regular file: one error line naming the journal, exit 4."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    batch = tmp_path / "jobs.jsonl"
    batch.write_text(json.dumps({"id": "a", "image": str(face)}) + "\n")
    result = subprocess.run(
        cli("batch", str(batch), "--out", str(blocker / "out"), "--api-key", "k"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT["unavailable"] == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the journal could not create")
    assert "Traceback" not in result.stderr
