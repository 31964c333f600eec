"""Waiting in tests for something to happen, never longer than a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from minimax_s2v.emulator import Emulator


async def wait_until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Return once ``condition()`` is true; fail the test if it is not within ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.005)


async def claim_weighed(emu: Emulator, task_id: str, before: int, timeout: float = 10.0) -> None:
    """Wait until the client has checked a final callback of ``task_id`` with the API.

    The claim is checked with a query; once the answer has been weighed and the claim not
    believed, the client polls the task again soon. So two queries after ``before`` (the
    task's count when the claim was sent) mean the answer was applied: a claim believed
    would have ended the task instead, and the second query never comes.
    """
    queries = emu.counters.queries_by_task
    await wait_until(
        lambda: queries[task_id] >= before + 2,
        f"the check of the claim about task {task_id} and the poll after it",
        timeout,
    )
