"""Chaos on the V2 API: every fault kind at 5% on every V2 endpoint, MiniMax-H3 requests."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from minimax_s2v import (
    APIError,
    CancelRefusedError,
    H3Request,
    RateLimit,
    SubmissionUncertainError,
    TaskCancelledError,
    TaskStatus,
    TransportError,
)
from minimax_s2v.emulator import Durations, Emulator, Endpoint, EndpointFaults, FaultPlan
from tests.client_setup import fast_client

TASKS = 300


def plan() -> FaultPlan:
    chaos = FaultPlan.chaos(0.05, slow_seconds=0.2)
    return FaultPlan(
        endpoints={
            **chaos.endpoints,
            Endpoint.DOWNLOAD: EndpointFaults.uniform(0.05, slow_seconds=0.2),
        }
    )


async def test_v2_chaos_nothing_lost_nothing_paid_twice(tmp_path: Path) -> None:
    """Every H3 task ends in success or a typed error; none is created twice or unknowingly."""
    requests = [
        H3Request(f"chaos {i}", references=["https://example.com/f.jpg"]) for i in range(TASKS)
    ]
    async with (
        Emulator(seed=1919, faults=plan(), file_size=40_000) as emu,
        fast_client(emu, rate_limit=RateLimit(v2_submit_rpm=None)) as client,
    ):
        outcomes = [
            o async for o in client.generate_many(requests, concurrency=100, dest_dir=tmp_path)
        ]
        created = Counter(task["prompt"] for task in emu.state(tasks=True)["tasks"])
        faults = emu.counters.faults
        in_flight = emu.counters.v2_max_in_flight_seen

    assert sorted(o.index for o in outcomes) == list(range(TASKS))
    submitted = {o.request.prompt for o in outcomes if o.generation is not None}
    uncertain = {
        o.request.prompt for o in outcomes if isinstance(o.error, SubmissionUncertainError)
    }
    other = [
        o.error
        for o in outcomes
        if o.error is not None and not isinstance(o.error, SubmissionUncertainError)
    ]
    assert all(isinstance(e, APIError | TransportError) for e in other), other
    assert max(created.values()) == 1  # nothing created twice
    assert submitted <= set(created)  # every reported task exists
    failed_prompts = {o.request.prompt for o in outcomes if o.error in other}
    assert set(created) <= submitted | uncertain | failed_prompts
    assert set(faults["v2_submit"]) == set(EndpointFaults.KINDS)
    for endpoint in ("v2_query", "download"):
        assert faults[endpoint], endpoint
    assert len(uncertain & set(created)) == faults["v2_submit"]["lost_response"]
    assert (
        len(uncertain - set(created))
        <= faults["v2_submit"]["drop"]
        + faults["v2_submit"]["http_5xx"]
        + faults["v2_submit"]["non_json"]
    )
    # Only the ambiguous submits (about 4 kinds at 5%) may leave a request without its video.
    assert len(submitted) + len(uncertain) + len(other) == TASKS
    saved = [o.generation.path for o in outcomes if o.generation is not None and o.generation.path]
    assert len(saved) == len(submitted)
    assert all(p.stat().st_size == 40_000 for p in saved)
    assert in_flight <= 30


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
