"""The installed ``minimax-s2v`` command as a newcomer meets it, run as a real process."""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from minimax_s2v.cli import EXIT, build_parser
from minimax_s2v.cli import _client as cli_client
from minimax_s2v.emulator import EmulatorThread
from tests.processes import free_port

ENTRY_POINT = Path(sys.executable).with_name("minimax-s2v")


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``minimax-s2v ARGS`` with no MINIMAX_* variables but those in ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MINIMAX_")}
    return subprocess.run(
        [str(ENTRY_POINT), *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def api(emu: EmulatorThread) -> list[str]:
    return ["--api-key", emu.api_key, "--base-url", str(emu.url), "--poll-interval", "0.05"]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_version(tmp_path: Path) -> None:
    """`minimax-s2v --version` prints the installed version."""
    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"minimax-s2v {importlib.metadata.version('minimax-s2v')}"


def test_emulate_help_names_the_command(tmp_path: Path) -> None:
    """`minimax-s2v emulate --help` shows the command as typed, not the module."""
    result = run("emulate", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: minimax-s2v emulate ")
    assert "python -m" not in result.stdout


def test_missing_key_names_the_option_and_the_variable(tmp_path: Path) -> None:
    """Without a key the command line says --api-key or MINIMAX_API_KEY, not Python."""
    result = run("status", "123", cwd=tmp_path)
    assert result.returncode == EXIT["auth"]
    assert result.stderr.strip().splitlines() == [
        "error: no API key: pass --api-key or set MINIMAX_API_KEY"
    ]


def test_explicit_options_win_over_the_environment(
    minimax_emulator: EmulatorThread, tmp_path: Path, busy_port: int
) -> None:
    """--base-url and --api-key win over MINIMAX_BASE_URL and MINIMAX_API_KEY."""
    env = {"MINIMAX_BASE_URL": f"http://127.0.0.1:{busy_port}", "MINIMAX_API_KEY": "wrong"}
    result = run("status", *api(minimax_emulator), "123", cwd=tmp_path, env=env)
    assert "[2013]" in result.stderr  # the emulator's answer: it has no task 123
    assert minimax_emulator.state()["requests"]["query"] == {"not_found": 1}


def test_explicit_region_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--region cn` with MINIMAX_BASE_URL set talks to the cn host (checked without sending)."""
    monkeypatch.setenv("MINIMAX_BASE_URL", "http://127.0.0.1:9")
    args = build_parser().parse_args(["status", "--api-key", "k", "--region", "cn", "1"])
    assert cli_client(args).base_url.host == "api.minimaxi.com"
    args = build_parser().parse_args(["status", "--api-key", "k", "1"])
    assert str(cli_client(args).base_url) == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "command",
    [
        ["emulate", "--host", "127.0.0.1", "--port", "{port}"],
        ["serve", "--host", "127.0.0.1", "--port", "{port}", "--public-url", "http://x/cb"],
        [
            "generate",
            "--api-key",
            "k",
            "--base-url",
            "http://127.0.0.1:{closed}",
            "--image",
            "https://example.com/f.jpg",
            "--callback-url",
            "http://127.0.0.1:{port}/cb",
            "--serve-callbacks",
            "127.0.0.1:{port}",
        ],
    ],
)
def test_busy_port_is_one_clear_line(command: list[str], busy_port: int, tmp_path: Path) -> None:
    """A port in use: one line naming it, exit code 2, no traceback, no unclosed session."""
    args = [part.format(port=busy_port, closed=free_port()) for part in command]
    env = {"MINIMAX_CALLBACK_SECRET": "s" * 32}
    result = run(*args, cwd=tmp_path, env=env, timeout=30)
    assert result.returncode == EXIT["usage"], result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot listen on 127.0.0.1:{busy_port}: ")
    assert "in use" in lines[0]


@pytest.mark.slow
def test_two_seeded_demos_do_not_overwrite_each_other(tmp_path: Path) -> None:
    """The same --seed twice makes the same task ids: the second run refuses, unless asked."""
    first = run("demo", "--count", "1", "--seed", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (video,) = (tmp_path / "demo-output").iterdir()
    video.write_bytes(b"the first run's video")
    second = run("demo", "--count", "1", "--seed", "1", cwd=tmp_path)
    assert second.returncode == EXIT["usage"]
    assert "--overwrite" in second.stderr
    assert video.read_bytes() == b"the first run's video"
    third = run("demo", "--count", "1", "--seed", "1", "--overwrite", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert video.read_bytes()[4:8] == b"ftyp"


@pytest.mark.slow
def test_the_readme_demo_can_be_run_twice(tmp_path: Path) -> None:
    """Without --seed each run's task ids are new: a second run adds its videos beside."""
    for _ in range(2):
        result = run("demo", "--count", "1", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "demo-output").glob("*.mp4"))) == 2


def test_batch_reports_every_skipped_line_with_file_line_and_id(
    minimax_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Preflight rejections, bad JSON and unsafe ids: each one `FILE:LINE: skipped ID: why`."""
    face = tmp_path / "face.png"
    Image.new("RGB", (512, 640), (200, 160, 140)).save(face)
    lines = [
        {"id": "good", "image": "face.png", "prompt": "fine"},
        {"id": "no-file", "image": "missing.png", "prompt": "the image is not there"},
        {"id": "long", "image": "face.png", "prompt": "x" * 2001},
        {"id": ".", "image": "face.png"},
        {"id": "..", "image": "face.png"},
        {"id": ".hidden", "image": "face.png"},
    ]
    batch = tmp_path / "jobs.jsonl"
    batch.write_text("\n".join([*(json.dumps(line) for line in lines), "{not json"]) + "\n")
    out = tmp_path / "out"
    result = run("batch", *api(minimax_emulator), str(batch), "--out", str(out), cwd=tmp_path)
    assert result.returncode == EXIT["usage"], result.stderr
    # Bad files and prompts are found when submitting, the rest when reading: one format.
    printed = result.stdout + result.stderr
    assert f"{batch}:2: skipped no-file: " in printed
    assert f"{batch}:3: skipped long: " in printed
    for number, label in ((4, "'.'"), (5, "'..'"), (6, "'.hidden'")):
        assert f"{batch}:{number}: skipped: id {label}" in result.stderr
    assert f"{batch}:7: skipped: " in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".minimax-s2v-journal.db", "good.mp4"]
    assert "1 saved" in result.stdout
    assert "6 bad lines" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--poll-interval", "-1", "1"], "--poll-interval: must be a number >= 0"),
        (["batch", "jobs.jsonl", "--out", "o", "--rpm", "-3"], "--rpm: must be a number > 0"),
    ],
)
def test_values_the_settings_refuse_are_usage_errors(
    args: list[str], message: str, tmp_path: Path
) -> None:
    """Numbers that PollPolicy or RateLimit would refuse are bad options (2), not key errors (3)."""
    # Should a value get through, the call goes to a closed loopback port, nowhere else.
    env = {"MINIMAX_API_KEY": "k", "MINIMAX_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    result = run(*args, cwd=tmp_path, env=env)
    assert result.returncode == EXIT["usage"]
    assert message in result.stderr
