"""The command line against the emulator: generate, status, download, batch, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from minimax_s2v.cli import EXIT, main
from minimax_s2v.emulator import EmulatorThread
from tests.processes import ROOT, emulator_process, free_port


def api(emu: EmulatorThread, key: str | None = None) -> list[str]:
    return ["--api-key", key or emu.api_key, "--base-url", str(emu.url), "--poll-interval", "0.05"]


@pytest.fixture
def face(tmp_path: Path) -> Path:
    path = tmp_path / "face.png"
    Image.new("RGB", (512, 640), (200, 160, 140)).save(path)
    return path


def test_generate_status_download(
    minimax_emulator: EmulatorThread, face: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Generating saves a video; status and download find it again by task id."""
    out = tmp_path / "v.mp4"
    assert (
        main(
            [
                "generate",
                *api(minimax_emulator),
                "--image",
                str(face),
                "--prompt",
                "hi",
                "--out",
                str(out),
                "--json",
            ]
        )
        == EXIT["ok"]
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "Success"
    assert out.read_bytes()[4:8] == b"ftyp"
    assert main(["status", *api(minimax_emulator), result["task_id"]]) == EXIT["ok"]
    assert f"task {result['task_id']}: Success" in capsys.readouterr().out
    again = tmp_path / "again.mp4"
    assert (
        main(["download", *api(minimax_emulator), result["task_id"], "--out", str(again)])
        == EXIT["ok"]
    )
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.slow
def test_one_line_errors_with_exit_codes(
    minimax_emulator: EmulatorThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing image, a wrong key, an unreachable host: one line each, documented codes."""
    missing = ["generate", *api(minimax_emulator), "--image", str(tmp_path / "nope.jpg")]
    assert main(missing) == EXIT["usage"]
    wrong_key = ["generate", *api(minimax_emulator, "wrong"), "--image", "https://e.com/f.jpg"]
    assert main(wrong_key) == EXIT["auth"]
    dead = ["status", "--api-key", "k", "--base-url", f"http://127.0.0.1:{free_port()}", "1"]
    assert main(dead) == EXIT["unavailable"]
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3
    assert "no such file" in errors[0]
    assert "api.minimaxi.com" in errors[1]
    assert "could not connect" in errors[2]
    assert all(line.startswith("error: ") for line in errors)


def test_unreachable_callback_url_is_one_line(
    minimax_emulator: EmulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --callback-url MiniMax cannot reach: one `error:` line naming it, with what to check."""
    public = f"http://127.0.0.1:{free_port()}/hooks"
    args = ["generate", *api(minimax_emulator), "--image", "https://e.com/f.jpg"]
    args += ["--callback-url", public, "--callback-secret", "cli-test-secret-0123456789"]
    assert main(args) == EXIT["usage"]
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: [2013] invalid params, fail to check callback url")
    assert f"at {public} while creating the task" in line
    assert "minimax-s2v serve --check" in line
    assert minimax_emulator.state()["tasks_created"] == 0


def write_batch(path: Path, face: Path, count: int) -> None:
    lines = [
        json.dumps({"id": f"clip-{i:03d}", "image": str(face), "prompt": f"batch line {i}"})
        for i in range(count)
    ]
    lines.insert(3, "{not json")
    lines.insert(7, json.dumps({"id": "no-image", "prompt": "x"}))
    path.write_text("\n".join(lines) + "\n")


def test_batch_reports_bad_lines_and_saves_the_rest(
    minimax_emulator: EmulatorThread, face: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad lines are reported with their numbers and skipped; the others are saved."""
    batch = tmp_path / "jobs.jsonl"
    write_batch(batch, face, 6)
    out = tmp_path / "out"
    assert main(["batch", *api(minimax_emulator), str(batch), "--out", str(out)]) == EXIT["usage"]
    err = capsys.readouterr().err
    assert f"{batch}:4: skipped" in err
    assert f"{batch}:8: skipped" in err
    assert sorted(p.name for p in out.glob("*.mp4")) == [f"clip-{i:03d}.mp4" for i in range(6)]
    # Run again: nothing is resubmitted, everything is already done.
    assert main(["batch", *api(minimax_emulator), str(batch), "--out", str(out)]) == EXIT["usage"]
    assert minimax_emulator.state()["tasks_created"] == 6
    assert "6 already done" in capsys.readouterr().out


@pytest.mark.slow
def test_batch_killed_then_rerun_submits_each_line_once(face: Path, tmp_path: Path) -> None:
    """A kill -9 in the middle of a batch; the re-run finishes every line, none submitted twice."""
    batch = tmp_path / "jobs.jsonl"
    count = 60
    batch.write_text(
        "".join(
            json.dumps({"id": f"clip-{i:03d}", "image": str(face), "prompt": f"kill line {i}"})
            + "\n"
            for i in range(count)
        )
    )
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "minimax_s2v",
        "batch",
        str(batch),
        "--out",
        str(out),
        "--api-key",
        "emulator-key",
        "--poll-interval",
        "0.2",
        "--concurrency",
        "20",
    ]
    with emulator_process("--speed", "0.01", "--seed", "2") as emu:
        command += ["--base-url", emu.url]
        first = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert first.stdout is not None
        saved = 0
        deadline = time.monotonic() + 60
        while saved < 15 and time.monotonic() < deadline:
            saved += "saved" in first.stdout.readline()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        first.stdout.close()
        assert 15 <= saved < count
        second = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        from urllib.request import urlopen

        with urlopen(f"{emu.url}/_emulator/state?tasks=1", timeout=10) as response:
            state = json.load(response)
    assert second.returncode in (EXIT["ok"], EXIT["uncertain"]), second.stderr[-2000:]
    created = Counter(task["prompt"] for task in state["tasks"])
    assert max(created.values()) == 1  # no line submitted twice
    finished = sorted(p.name for p in out.glob("*.mp4"))
    uncertain = second.stdout.count("outcome unknown")
    assert len(finished) + uncertain == count
    assert second.returncode == (EXIT["uncertain"] if uncertain else EXIT["ok"])
