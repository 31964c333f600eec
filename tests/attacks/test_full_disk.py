"""A full disk (files capped with RLIMIT_FSIZE in a child process).

README: "Everything derives from MiniMaxError". Observed on the snapshot: ``generate()``
raised a bare ``OSError`` (EFBIG) from the download (no part file was left: that held), and
``submit()`` with a full SQLite journal raised a bare ``sqlite3.OperationalError``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("what", ["download", "journal"])
def test_full_disk_is_a_typed_error(what: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.attacks.full_disk_child", what, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert lines, done.stderr[-500:]
    assert lines[-1] == "parts []"
    assert lines[0].startswith("typed "), lines[0]
