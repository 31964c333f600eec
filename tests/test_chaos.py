"""Chaos: 500 generations with every fault kind at 5% on every endpoint."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from minimax_s2v import (
    APIError,
    SubmissionUncertainError,
    TransportError,
    VideoRequest,
)
from minimax_s2v.emulator import Emulator, Endpoint, EndpointFaults, FaultPlan
from tests.client_setup import fast_client

TASKS = 500


async def test_chaos_nothing_lost_nothing_paid_twice(tmp_path: Path) -> None:
    """Every task ends in success or a typed error, and the emulator's task list agrees.

    A task is created at most once per request; every task the client reports as submitted
    exists; every task that exists belongs to a request reported as submitted or as
    uncertain (never created unknowingly).
    """
    chaos = FaultPlan.chaos(0.05, slow_seconds=0.2)
    plan = FaultPlan(
        endpoints={
            **chaos.endpoints,
            Endpoint.DOWNLOAD: EndpointFaults.uniform(0.05, slow_seconds=0.2),
        }
    )
    requests = [
        VideoRequest(subject="https://example.com/f.jpg", prompt=f"chaos {i}") for i in range(TASKS)
    ]
    async with (
        Emulator(seed=2026, faults=plan, file_size=40_000) as emu,
        fast_client(emu) as client,
    ):
        outcomes = [
            o async for o in client.generate_many(requests, concurrency=100, dest_dir=tmp_path)
        ]
        created = Counter(task["prompt"] for task in emu.state(tasks=True)["tasks"])
        faults = emu.counters.faults

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
    assert set(created) <= submitted | uncertain | {
        o.request.prompt for o in outcomes if o.error in other
    }
    assert len(created) == len(submitted) + len(uncertain & set(created)) + len(
        {o.request.prompt for o in outcomes if o.error in other} & set(created)
    )
    # Every fault kind really happened on the submit endpoint, ambiguous submits included.
    assert set(faults["submit"]) == set(EndpointFaults.KINDS)
    for endpoint in ("query", "retrieve", "download"):
        assert faults[endpoint], endpoint
    # Uncertain without a task are exactly the ambiguous faults that created nothing.
    assert (
        len(uncertain - set(created))
        <= faults["submit"]["drop"] + faults["submit"]["http_5xx"] + faults["submit"]["non_json"]
    )
    assert len(uncertain & set(created)) == faults["submit"]["lost_response"]
    saved = [o.generation.path for o in outcomes if o.generation is not None and o.generation.path]
    assert len(saved) == len(submitted)
    assert all(p.stat().st_size == 40_000 for p in saved)
