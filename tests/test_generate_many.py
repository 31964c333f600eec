"""generate_many: one outcome per request, bounded, never stopped by a failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minimax_s2v import SubmissionUncertainError, TaskFailedError, VideoRequest
from minimax_s2v.emulator import Durations, Emulator, Endpoint, EndpointFaults, FaultPlan
from tests.client_setup import face_request, fast_client


async def test_outcomes_for_every_request(tmp_path: Path) -> None:
    """Every request yields one outcome; failures are outcomes; files are saved."""
    pulled = 0
    yielded = 0
    most_ahead = 0

    async def requests() -> AsyncIterator[VideoRequest]:
        nonlocal pulled, most_ahead
        for i in range(40):
            pulled += 1
            most_ahead = max(most_ahead, pulled - yielded)
            yield face_request("oops [sensitive]" if i % 10 == 3 else f"scene {i}")

    durations = Durations(processing=(0.0, 0.2))
    async with Emulator(seed=3, durations=durations) as emu, fast_client(emu) as client:
        outcomes = []
        async for outcome in client.generate_many(requests(), concurrency=5, dest_dir=tmp_path):
            yielded += 1
            outcomes.append(outcome)
    assert sorted(o.index for o in outcomes) == list(range(40))
    failed = [o for o in outcomes if not o.ok]
    assert {o.index for o in failed} == {3, 13, 23, 33}
    assert all(isinstance(o.error, TaskFailedError) for o in failed)
    saved = [o.generation.path for o in outcomes if o.generation is not None]
    assert len(saved) == 36
    assert all(p is not None and p.stat().st_size == emu.config.file_size for p in saved)
    assert most_ahead <= 5 + 1  # never more than `concurrency` in flight (plus the one pulled)


async def test_submission_errors_do_not_stop_the_batch() -> None:
    """Uncertain submissions come back as outcomes while the rest go on."""
    faults = FaultPlan(endpoints={Endpoint.SUBMIT: EndpointFaults(lost_response=0.3)})
    async with Emulator(seed=6, faults=faults) as emu, fast_client(emu) as client:
        outcomes = [o async for o in client.generate_many([face_request()] * 30, concurrency=8)]
    errors = [o.error for o in outcomes if o.error is not None]
    assert errors
    assert all(isinstance(e, SubmissionUncertainError) for e in errors)
    assert sum(o.ok for o in outcomes) == 30 - len(errors)


async def test_leaving_early_cancels_the_rest() -> None:
    """Cancelling the iteration cancels the generations in flight and reads no more input."""
    pulled = 0

    async def requests() -> AsyncIterator[VideoRequest]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield face_request()

    async with Emulator(durations=Durations(processing=30)) as emu, fast_client(emu) as client:
        batch = client.generate_many(requests(), concurrency=4)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(batch), 0.5)
        await batch.aclose()
        assert emu.counters.tasks_created == 4
        await asyncio.sleep(0.2)
        assert emu.counters.tasks_created == 4
    assert pulled == 5  # the four in flight, and the one waiting for a free slot
