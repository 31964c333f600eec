"""Attacks from outside on replicas sharing a journal: callbacks on a URL whose task ended."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from yarl import URL

from minimax_s2v import TaskStatus
from minimax_s2v.emulator import Durations, Emulator
from minimax_s2v.stores.redis import RedisStore
from tests.client_setup import face_request
from tests.receiver_setup import new_receiver, served_client, status_update
from tests.redis_server import redis_server


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One private redis-server for this module's tests (each uses a prefix of its own)."""
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as url:
        yield url


QUICK = Durations(preparing=0.05, queueing=0.05, processing=0.1)


@pytest.mark.parametrize("status", ["Success", "Processing", "Fail"])
async def test_callbacks_on_an_ended_tasks_url_do_not_grow_the_shared_journal(
    redis_url: str, status: str
) -> None:
    """Trust rule 4: anything after the end is acknowledged without a write.

    A replica that does not hold the nonce (another process, or this one after a restart)
    reads the submission from the shared journal; it used to journal every update on the
    URL for the other replicas, so that the holder of an ended task's URL could write to the
    journal at will and push other tasks' events out of its bounded replay.
    """
    prefix = f"ended-{status.lower()}:"
    raw = aioredis.Redis.from_url(redis_url)
    try:
        async with Emulator(durations=QUICK) as emu:
            async with served_client(emu, store=RedisStore(redis_url, prefix=prefix)) as (
                client,
                _,
            ):
                task = await client.submit(face_request())
                await task.wait(timeout=20)
                assert task.status is TaskStatus.SUCCESS
                callback_url = emu.task(task.task_id).callback_url
                assert callback_url is not None
                callback_path = URL(callback_url).path
            before = await raw.xlen(f"{prefix}events")
            assert before > 0  # the real task's updates were journaled
            async with served_client(
                emu, new_receiver(), store=RedisStore(redis_url, prefix=prefix)
            ) as (_, replica):
                assert replica.public_url is not None
                url = str(replica.public_url.with_path(callback_path))
                async with aiohttp.ClientSession() as session:
                    for _ in range(30):
                        update = status_update(task.task_id, status, "1")
                        async with session.post(url, json=update) as response:
                            assert response.status == 200  # acknowledged: nothing to retry
                callbacks = replica.stats().callbacks
            assert await raw.xlen(f"{prefix}events") == before
            assert callbacks.applied == 0
            assert callbacks.duplicate == 30
    finally:
        await raw.aclose()
