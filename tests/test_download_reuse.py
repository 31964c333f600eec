"""download(task) reuses the file details the task already carries while they are fresh."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

import minimax_s2v._wire
from minimax_s2v.emulator import Durations, Emulator
from tests.client_setup import face_request
from tests.receiver_setup import served_client


async def test_download_of_a_confirmed_task_retrieves_nothing_again(tmp_path: Path) -> None:
    """A success confirmed by retrieval (callback) is downloaded with that retrieval's URL."""
    async with Emulator(seed=3, durations=Durations(processing=0.05)) as emu:
        async with served_client(emu) as (client, _):
            tasks = await asyncio.gather(*(client.submit(face_request()) for _ in range(30)))
            await asyncio.gather(*(task.wait(timeout=20) for task in tasks))
            assert all(task.video is not None for task in tasks)
            retrieves = emu.counters.requests_to("retrieve")
            for task in tasks:
                path = await client.download(task, tmp_path / f"{task.task_id}.mp4")
                assert path.stat().st_size > 0
        assert emu.counters.requests_to("retrieve") == retrieves == 30


async def test_an_expired_url_is_retrieved_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task whose kept URL has expired is not downloaded with it: it is retrieved again."""
    # URLs that expire as they are retrieved: the one the confirmation got is stale at once.
    monkeypatch.setattr(minimax_s2v._wire, "DOWNLOAD_URL_LIFETIME", timedelta(0))
    async with Emulator(seed=4, durations=Durations(processing=0.05)) as emu:
        async with served_client(emu) as (client, _):
            task = await client.submit(face_request())
            await task.wait(timeout=20)
            assert task.video is not None
            before = emu.counters.requests_to("retrieve")
            await client.download(task, tmp_path / "v.mp4")
        assert emu.counters.requests_to("retrieve") > before
