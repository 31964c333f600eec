"""Kill -9 in the middle of 500 generations; a new process resumes from the SQLite journal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.e2e.restarts import PROMPT, kill_then_resume

COUNT = 500


@pytest.mark.slow
def test_kill_nine_then_resume(tmp_path: Path) -> None:
    """Every acknowledged update is journaled, every task ends, none is created twice."""
    run = kill_then_resume(tmp_path, count=COUNT, seed=5, submitted=250, done=60)
    run.check_every_line_ran_once_and_ended(COUNT)

    with sqlite3.connect(run.db) as connection:
        journal = {
            (task_id, status_text.lower())
            for task_id, status_text in connection.execute(
                "SELECT task_id, status_text FROM events WHERE source = 'callback'"
            )
        }
        known = {
            (task_id, status_text.lower())
            for task_id, status_text in connection.execute(
                "SELECT task_id, status_text FROM events WHERE confirmed = 1"
            )
        }
        labels = dict(
            connection.execute("SELECT task_id, label FROM submissions WHERE task_id IS NOT NULL")
        )
    finished = run.finished()
    acknowledged = {
        (d["task_id"], d["status"].lower())
        for d in run.deliveries
        if d["kind"] == "status" and d["http_status"] == 200
    }
    # Every acknowledged update was on disk first, or changed nothing: its status (or the
    # task's end) was already known from the journal, by callback, poll or resume.
    unrecorded = acknowledged - journal
    assert all(
        (task_id, status) in known or task_id in finished for task_id, status in unrecorded
    ), unrecorded
    task_of = {task["prompt"].removeprefix(PROMPT): task["task_id"] for task in run.state["tasks"]}
    assert set(labels.values()) | run.uncertain >= set(task_of)
    print(  # noqa: T201 - figures for the record
        f"kill -9 after {run.submitted} submitted / {run.done} done; created "
        f"{len(run.created())}, finished {len(finished)}, acknowledged {len(acknowledged)}, "
        f"uncertain {sorted(run.uncertain)}"
    )
