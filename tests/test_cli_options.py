"""Command-line option values: one ``error:`` line and exit 2, no secret echoed; --out dir/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minimax_s2v.cli import EXIT, main
from minimax_s2v.emulator import EmulatorThread

KEY = "sk-cli-0123456789abcdefSECRETKEY"
SECRET = "cli-callback-secret-0123456789"

BAD_OPTIONS = [
    ["--api-key", KEY, "status", "1"],  # a key before the command: argparse's "invalid choice"
    [f"--api-key={KEY}", "status", "1"],
    [KEY, "status", "1"],
    ["status", "--api-key", KEY, "--region", "mars", "1"],
    ["status", "--api-key", KEY, "--base-url", "ftp://x", "1"],
    ["status", "--api-key", KEY, "--base-url", "not a url", "1"],
    ["status", "--api-key", KEY, "--poll-interval", "soon", "1"],
    ["status", "--api-key", KEY, "--poll-interval", "-1", "1"],
    ["status", "--api-key", KEY, "--poll-interval", "nan", "1"],
    ["status", "--api-key", KEY, "1", "--unknown", KEY],
    ["status", "--api-key", KEY, "../../etc/passwd"],
    ["download", "--api-key", KEY, "1/2", "--out", "x"],
    ["serve", "--public-url", "https://hooks.example.com/cb", "--secret", "short"],
    ["serve", "--public-url", "ftp://hooks.example.com/cb", "--secret", SECRET],
    ["serve", "--public-url", "https://hooks.example.com/cb?a=1", "--secret", SECRET],
    ["serve", "--public-url", "https://hooks.example.com/cb", "--secret", SECRET, "--port", "x"],
    ["serve", "--public-url", "https://hooks.example.com/cb", "--secret", SECRET, "--port", "-5"],
    ["generate", "--api-key", KEY, "--image", "f.png", "--callback-url", "ftp://x"],
    [
        "generate",
        "--api-key",
        KEY,
        "--image",
        "f.png",
        "--callback-url",
        "https://hooks.example.com/cb",
        "--callback-secret",
        "tiny",
    ],
    ["generate", "--api-key", KEY, "--image", "f.png", "--timeout", "0"],
    ["batch", "lines.jsonl", "--out", "o", "--concurrency", "many", "--api-key", KEY],
    ["batch", "lines.jsonl", "--out", "o", "--rpm", "-3", "--api-key", KEY],
]


@pytest.mark.parametrize("argv", BAD_OPTIONS, ids=lambda argv: " ".join(argv)[:60])
def test_bad_option_is_one_error_line(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Each bad value: exit 2, one line starting with ``error:``, neither secret printed."""
    assert main(argv) == EXIT["usage"]
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in captured.err
    for secret in (KEY, SECRET, "short", "tiny"):
        assert secret not in captured.err
    assert list(tmp_path.iterdir()) == []


def test_secret_from_the_environment_is_not_echoed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key in MINIMAX_API_KEY typed as a command by mistake is not printed back either."""
    monkeypatch.setenv("MINIMAX_API_KEY", KEY)
    assert main([KEY]) == EXIT["usage"]
    assert KEY not in capsys.readouterr().err


@pytest.mark.parametrize("existing", [False, True])
def test_out_directory_saves_inside(
    minimax_emulator: EmulatorThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    existing: bool,
) -> None:
    """``--out new/`` (or an existing directory) saves ``<task id>.mp4`` inside it."""
    api = ["--api-key", minimax_emulator.api_key, "--base-url", str(minimax_emulator.url)]
    api += ["--poll-interval", "0.05"]
    first, second = tmp_path / "gen", tmp_path / "dl"
    if existing:
        first.mkdir()
        second.mkdir()
    out_first = str(first) if existing else f"{first}/"
    image = "https://example.com/face.jpg"
    assert main(["generate", *api, "--image", image, "--out", out_first, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    task_id = result["task_id"]
    assert Path(result["path"]) == first / f"{task_id}.mp4"
    assert (first / f"{task_id}.mp4").read_bytes()[4:8] == b"ftyp"
    out_second = str(second) if existing else f"{second}/"
    assert main(["download", *api, task_id, "--out", out_second]) == 0
    assert (second / f"{task_id}.mp4").read_bytes() == (first / f"{task_id}.mp4").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dl", "gen"]
