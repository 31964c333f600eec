"""Chaos on the V2 API: every fault kind at 5% on every V2 endpoint, MiniMax-H3 requests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from minimax_s2v import (
    APIError,
    CancelRefusedError,
    H3Request,
    RateLimit,
    TaskCancelledError,
    TaskStatus,
    TransportError,
)
from minimax_s2v.emulator import Durations, Emulator, Endpoint, EndpointFaults, FaultPlan
from tests.chaos import FILE_SIZE, chaos_plan, check_chaos_outcomes
from tests.client_setup import fast_client

TASKS = 300


async def test_v2_chaos_nothing_lost_nothing_paid_twice(tmp_path: Path) -> None:
    """Every H3 task ends in success or a typed error; each task created reached the caller."""
    requests = [
        H3Request(f"chaos {i}", references=["https://example.com/f.jpg"]) for i in range(TASKS)
    ]
    async with (
        Emulator(seed=1919, faults=chaos_plan(), file_size=FILE_SIZE) as emu,
        fast_client(emu, rate_limit=RateLimit(v2_submit_rpm=None)) as client,
    ):
        outcomes = [
            o async for o in client.generate_many(requests, concurrency=100, dest_dir=tmp_path)
        ]
        check_chaos_outcomes(
            outcomes, emu, submit=Endpoint.V2_SUBMIT, faulty=("v2_query", "download"), total=TASKS
        )
        assert emu.counters.v2_max_in_flight_seen <= 30


async def test_v2_chaos_cancels_end_typed_and_free() -> None:
    """Under chaos on query and cancel, a cancel cancels (no charge) or raises a typed error."""
    faults = FaultPlan(
        endpoints={
            Endpoint.V2_CANCEL: EndpointFaults.uniform(0.05, slow_seconds=0.1),
            Endpoint.V2_QUERY: EndpointFaults.uniform(0.05, slow_seconds=0.1),
        }
    )
    async with (
        Emulator(seed=7, durations=Durations(queueing=30.0)) as emu,
        fast_client(emu, rate_limit=RateLimit(v2_submit_rpm=None)) as client,
    ):
        tasks = [
            await client.submit(H3Request(f"c {i}", references=["https://example.com/f.jpg"]))
            for i in range(30)
        ]
        emu.configure(faults=faults)

        async def cancel(task: object) -> object:
            try:
                return await task.cancel()  # type: ignore[attr-defined]
            except (APIError, TransportError) as error:
                return error

        results = await asyncio.gather(*(cancel(t) for t in tasks))
        cancelled = [t for t, r in zip(tasks, results, strict=True) if r is True]
        statuses = {t["task_id"]: t["status"] for t in emu.state(tasks=True)["tasks"]}
        for task in cancelled:
            assert statuses[task.task_id] == TaskStatus.CANCELLED.value
            with pytest.raises(TaskCancelledError):
                await task.wait(5)
        charged = emu.charged()
        counted = emu.counters.faults
    assert all(r is True or isinstance(r, APIError | TransportError) for r in results)
    assert not any(isinstance(r, CancelRefusedError) for r in results)  # all were queued
    assert len(cancelled) >= 20
    assert charged == []
    assert counted["v2_cancel"]
