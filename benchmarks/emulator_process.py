"""Run the emulator in its own process, so that a benchmark measures only the client side."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tests.processes import free_port


@contextmanager
def emulator_process(options: Sequence[str] = (), *, nice: int = 0) -> Iterator[str]:
    """Start ``python -m minimax_s2v.emulator`` on a free loopback port; yield its URL.

    ``nice`` lowers the emulator's CPU priority (Linux), for benchmarks of the client alone
    on a small machine: MiniMax does not take its CPU time from the client's.
    """
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "minimax_s2v.emulator",
            "--port",
            str(port),
            "--speed",
            "instant",
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if nice:
        os.setpriority(os.PRIO_PROCESS, process.pid, nice)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
