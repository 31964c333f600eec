"""Two receiver replicas behind a load balancer and a submitter, sharing one RedisStore."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from urllib.request import urlopen

from tests.processes import emulator_process, free_port, python_process
from tests.redis_server import redis_server

COUNT = 100


def get_json(url: str) -> object:
    with urlopen(url, timeout=30) as response:
        return json.load(response)


def test_callbacks_on_other_replicas_resolve_the_submitter(tmp_path: Path) -> None:
    """Callbacks alternate between two receivers; every task awaited elsewhere resolves.

    Not one query is made: every update reaches the submitter through Redis.
    """
    first_port, second_port = free_port(), free_port()  # known to the emulator beforehand
    prefix = "replicas:"
    with redis_server(tmp_path) as redis_url:
        first = ["-m", "tests.e2e.replica", "receiver", str(first_port), redis_url, prefix]
        second = ["-m", "tests.e2e.replica", "receiver", str(second_port), redis_url, prefix]
        targets = [f"http://127.0.0.1:{first_port}", f"http://127.0.0.1:{second_port}"]
        with (
            python_process(first, first_port),
            python_process(second, second_port),
            emulator_process(
                "--speed", "0.005", "--seed", "3", *(f"--callback-target={t}" for t in targets)
            ) as emulator,
        ):
            emulator_url = emulator.url
            # The public URL names the load balancer; the emulator plays it by alternating.
            public = f"http://127.0.0.1:{first_port}/cb"
            submitter = [
                "-m",
                "tests.e2e.replica",
                "submitter",
                emulator_url,
                redis_url,
                prefix,
                public,
                str(COUNT),
            ]
            with python_process(submitter) as process:
                output, _ = process.communicate(timeout=120)
            assert process.returncode == 0, output[-3000:]
            state = get_json(f"{emulator_url}/_emulator/state")
            deliveries = get_json(f"{emulator_url}/_emulator/deliveries")
    assert isinstance(state, dict)
    assert isinstance(deliveries, list)
    done = [line.split() for line in output.splitlines() if line.startswith("done ")]
    assert len(done) == COUNT
    assert {status for _, _, status, _ in done} == {"Success"}
    assert {video for *_, video in done} == {"video=True"}  # confirmed by retrieval, once each
    # Every update came by callback: one confirming query per task, and not one poll.
    assert state["requests"]["query"] == {"success": COUNT}
    assert state["requests"]["retrieve"] == {"ok": COUNT}
    assert state["requests"]["retrieve"] == {"ok": COUNT}
    ports = Counter(d["url"].split("/")[2] for d in deliveries if d["http_status"] == 200)
    assert set(ports) == {f"127.0.0.1:{first_port}", f"127.0.0.1:{second_port}"}
    assert min(ports.values()) >= COUNT  # both replicas carried a fair share
    assert all(d["http_status"] == 200 for d in deliveries)
