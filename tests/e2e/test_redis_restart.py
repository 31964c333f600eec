"""Redis killed and restarted under two receiver replicas: every task resolves by callback."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

from tests.processes import free_port, python_process
from tests.redis_server import RestartableRedis

COUNT = 40


@pytest.mark.slow
def test_tasks_resolve_by_callback_across_a_redis_restart(tmp_path: Path) -> None:
    """Kill -9 Redis for 2 s while tasks are processing: all end by callback, none twice.

    The submitter's fallback is 120 s and its waits end after 60 s, so a task that only a
    fallback poll could have found would fail the run.
    """
    emulator_port, first_port, second_port = free_port(), free_port(), free_port()
    prefix = "restart:"
    with RestartableRedis(tmp_path) as redis:
        first = ["-m", "tests.e2e.replica", "receiver", str(first_port), redis.url, prefix]
        second = ["-m", "tests.e2e.replica", "receiver", str(second_port), redis.url, prefix]
        targets = [f"http://127.0.0.1:{first_port}", f"http://127.0.0.1:{second_port}"]
        emulator = ["-m", "tests.e2e.replica", "emulator", str(emulator_port), *targets]
        with (
            python_process(first, first_port),
            python_process(second, second_port),
            python_process(emulator, emulator_port),
        ):
            emulator_url = f"http://127.0.0.1:{emulator_port}"
            public = f"http://127.0.0.1:{first_port}/cb"
            args = ["-m", "tests.e2e.replica", "submitter", emulator_url, redis.url, prefix]
            with python_process([*args, public, str(COUNT)]) as submitter:
                assert submitter.stdout is not None
                lines = []
                for line in submitter.stdout:  # until every task was created
                    lines.append(line)
                    if line.startswith("SUBMITTED"):
                        break
                redis.kill()
                time.sleep(2.0)
                redis.start()
                rest, _ = submitter.communicate(timeout=90)
                output = "".join(lines) + rest
            assert submitter.returncode == 0, output[-3000:]
            with urlopen(f"{emulator_url}/_emulator/state", timeout=30) as response:
                state = json.load(response)
    done = [line.split() for line in output.splitlines() if line.startswith("done ")]
    assert len(done) == COUNT, output[-3000:]
    assert {status for _, _, status, _ in done} == {"Success"}
    assert state["tasks_created"] == COUNT  # none created twice
    assert "lost the subscription to Redis" in output
    assert "subscribed to Redis again" in output
