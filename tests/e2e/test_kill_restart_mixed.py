"""Kill -9 in the middle of S2V-01 and MiniMax-H3 generations; a new process resumes both."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.restarts import kill_then_resume

COUNT = 200  # even labels S2V-01 (V1), odd ones MiniMax-H3 (V2)


@pytest.mark.slow
def test_kill_nine_then_resume_v1_and_v2(tmp_path: Path) -> None:
    """After kill -9, every V1 and V2 task ends, none is created twice, each on its own API."""
    run = kill_then_resume(tmp_path, count=COUNT, seed=19, submitted=100, done=30, mixed=True)
    output = run.output.splitlines()
    assert not [line for line in output if line.startswith(("error", "submit-error"))]
    run.check_every_line_ran_once_and_ended(COUNT)
    requests = run.state["requests"]
    assert sum(requests["submit"].values()) >= COUNT // 2 - len(run.uncertain)
    assert sum(requests["v2_submit"].values()) >= COUNT // 2 - len(run.uncertain)
    assert run.state["v2_max_in_flight_seen"] <= 30
    resumed = [line for line in output if line.startswith("resumed")]
    print(f"{resumed[0]}; created {len(run.created())}, finished {len(run.finished())}")  # noqa: T201
