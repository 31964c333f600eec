"""Real child processes for tests: start, wait until they listen, stop."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """Block until something listens on ``port``, or fail with the process's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"process exited with {process.returncode}: {output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


@contextmanager
def python_process(args: Sequence[str], port: int | None = None) -> Iterator[subprocess.Popen[str]]:
    """Run ``python ARGS`` from the project root; wait for ``port``; terminate at the end."""
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        if port is not None:
            wait_for_port(port, process)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout:
            process.stdout.close()


@attrs.frozen
class EmulatorProcess:
    """An emulator in a process of its own: its base URL and key, as it printed them."""

    url: str
    api_key: str
    process: subprocess.Popen[str]


@contextmanager
def emulator_process(*args: str) -> Iterator[EmulatorProcess]:
    """``python -m minimax_s2v.emulator --port 0 ARGS``, once it listens."""
    with python_process(["-m", "minimax_s2v.emulator", "--port", "0", *args]) as process:
        url, key = _first_lines(process)
        yield EmulatorProcess(url, key, process)


_LISTENING = "MiniMax emulator listening on "
_KEY = "accepted API key: "


def _first_lines(process: subprocess.Popen[str], timeout: float = 20.0) -> tuple[str, str]:
    """The URL and key the emulator prints once it listens; fails if they do not come in time."""
    found: queue.Queue[tuple[str, str]] = queue.Queue()
    seen: list[str] = []

    def read() -> None:  # a thread: readline() cannot be given a timeout
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            if line.startswith(_LISTENING):
                url = line.removeprefix(_LISTENING).strip()
            elif line.startswith(_KEY) and url:
                found.put((url, line.removeprefix(_KEY).strip()))
                return  # the rest of the output stays for the test to read
            else:
                seen.append(line)
        found.put(("", ""))

    threading.Thread(target=read, daemon=True).start()
    try:
        url, key = found.get(timeout=timeout)
    except queue.Empty:
        url = key = ""
    if not url:
        raise RuntimeError(f"the emulator did not start (exit {process.poll()}): {''.join(seen)}")
    return url, key
