"""Chaos: 500 generations with every fault kind at 5% on every endpoint."""

from __future__ import annotations

from pathlib import Path

from minimax_s2v import VideoRequest
from minimax_s2v.emulator import Emulator, Endpoint
from tests.chaos import FILE_SIZE, chaos_plan, check_chaos_outcomes
from tests.client_setup import fast_client

TASKS = 500


async def test_chaos_nothing_lost_nothing_paid_twice(tmp_path: Path) -> None:
    """Every task ends in success or a typed error; each task created reached the caller.

    A task is created at most once per request; every task the client reports exists;
    every task that exists was reported by its id or, its answer lost, as uncertain.
    """
    requests = [
        VideoRequest(subject="https://example.com/f.jpg", prompt=f"chaos {i}") for i in range(TASKS)
    ]
    async with (
        Emulator(seed=2026, faults=chaos_plan(), file_size=FILE_SIZE) as emu,
        fast_client(emu) as client,
    ):
        outcomes = [
            o async for o in client.generate_many(requests, concurrency=100, dest_dir=tmp_path)
        ]
        check_chaos_outcomes(
            outcomes,
            emu,
            submit=Endpoint.SUBMIT,
            faulty=("query", "retrieve", "download"),
            total=TASKS,
        )
