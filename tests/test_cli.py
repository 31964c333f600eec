"""The command line: the demo end to end, usage errors."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from minimax_s2v.cli import main


def test_demo_writes_valid_mp4s(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`minimax-s2v demo` generates N videos through emulator and client, and sums up."""
    out = tmp_path / "nested" / "demo-output"
    assert main(["demo", "--count", "3", "--out", str(out), "--seed", "1"]) == 0
    files = sorted(out.iterdir())
    assert len(files) == 3
    for path in files:
        head = path.read_bytes()[:8]
        assert struct.unpack(">I4s", head)[1] == b"ftyp"
    printed = capsys.readouterr().out
    assert "3 succeeded, 0 failed" in printed
    assert printed.count("succeeded:") == 3
    assert "3 callback challenges answered" in printed
    assert "3 callbacks confirmed by a query, 0 fallback polls needed" in printed


def test_demo_count_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    """A count below one is a usage error with exit code 2."""
    assert main(["demo", "--count", "0"]) == 2
    assert "--count must be at least 1" in capsys.readouterr().err
