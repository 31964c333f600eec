"""The built sdist and wheel, installed in a fresh venv outside the repository, as a user has them.

One test, a few seconds: build both artifacts, ``twine check`` them, install the wheel in a
new venv, run ``minimax-s2v demo`` from an unrelated directory, and run the README's fixture
example in a project of its own with nothing but pytest and pytest-asyncio. Dependencies
come from this environment's site-packages (linked, not downloaded), so the test needs no
network; the package itself comes only from the wheel.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.emulator.test_pytest_plugin import readme_fixture_example
from tests.processes import ROOT

VERSION = importlib.metadata.version("minimax-s2v")
SDIST_ROOT = {
    "minimax_s2v",
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "pyproject.toml",
    "PKG-INFO",
    ".gitignore",  # hatchling always adds it
}


def run(command: list[str | Path], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("MINIMAX_", "PYTHON", "PYTEST"))
    }
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"{command}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def dependency_site(target: Path, roots: list[str]) -> Path:
    """A directory of links to ``roots`` and everything they need, from this environment."""
    target.mkdir()
    todo = [Requirement(root) for root in roots]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        dist = importlib.metadata.distribution(name)
        for spec in dist.requires or []:
            needed = Requirement(spec)
            if needed.marker is None or needed.marker.evaluate({"extra": ""}):
                todo.append(needed)
        assert dist.files is not None, f"{name} was installed without a RECORD"
        for top in {file.parts[0] for file in dist.files}:
            if top in ("..", "__pycache__") or top.endswith(".pth"):
                continue
            link = target / top
            if not link.exists():
                link.symlink_to(Path(str(dist.locate_file(top))))
    return target


@pytest.mark.slow
def test_sdist_and_wheel_install_and_run_outside_the_repository(tmp_path: Path) -> None:
    """Build, check, install the wheel in a new venv; the demo and the README example run."""
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT], cwd=ROOT)
    sdist = dist / f"minimax_s2v-{VERSION}.tar.gz"
    (wheel,) = dist.glob("minimax_s2v-*.whl")
    assert "PASSED" in run([sys.executable, "-m", "twine", "check", sdist, wheel], cwd=ROOT).stdout

    # The sdist ships what building needs and no tests that would miss unshipped files.
    with tarfile.open(sdist) as archive:
        tops = {Path(name).parts[1] for name in archive.getnames() if len(Path(name).parts) > 1}
    assert tops == SDIST_ROOT

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", python]
    run([*pip, "install", "--quiet", "--no-deps", "--no-index", wheel], cwd=tmp_path)
    core = [str(r) for r in importlib.metadata.requires("minimax-s2v") or [] if "extra" not in r]
    site = dependency_site(tmp_path / "deps", [*core, "pytest", "pytest-asyncio"])
    purelib = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp_path
    )
    (Path(purelib.stdout.strip()) / "dependencies.pth").write_text(f"{site}\n")
    assert sysconfig.get_path("purelib") != purelib.stdout.strip()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([python, "-c", "import minimax_s2v; print(minimax_s2v.__file__)"], cwd=elsewhere)
    assert where.stdout.startswith(str(venv))
    version = run([venv / "bin" / "minimax-s2v", "--version"], cwd=elsewhere)
    assert version.stdout.strip() == f"minimax-s2v {VERSION}"
    demo = run([venv / "bin" / "minimax-s2v", "demo", "--count", "2"], cwd=elsewhere)
    assert "2 succeeded, 0 failed" in demo.stdout
    videos = sorted((elsewhere / "demo-output").glob("*.mp4"))
    assert len(videos) == 2
    assert all(video.read_bytes()[4:8] == b"ftyp" for video in videos)

    # A user's own project: the README's example as written, pytest's and pytest-asyncio's
    # defaults (no configuration file anywhere up the tree of tmp_path's project).
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_readme_example.py").write_text(readme_fixture_example())
    (project / "test_wrong_marker.py").write_text(
        "import pytest\n\n\n"
        "@pytest.mark.minimax_emulator(durations='fast')\n"
        "def test_marked(minimax_emulator):\n"
        "    pass\n"
    )
    passed = run(
        [python, "-m", "pytest", "-p", "no:cacheprovider", "test_readme_example.py"], cwd=project
    )
    assert "1 passed" in passed.stdout
    wrong = subprocess.run(
        [python, "-m", "pytest", "-p", "no:cacheprovider", "test_wrong_marker.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode == 1
    marker_lines = [line for line in wrong.stdout.splitlines() if "minimax_emulator marker" in line]
    assert marker_lines[0] == (
        "minimax_emulator marker: EmulatorConfig.durations must be a Durations or a speed "
        "(instant, demo, realistic or a factor), not 'fast'"
    )
    assert "Traceback" not in wrong.stdout
