"""Replica processes for the Redis test: receivers behind a load balancer, and a submitter.

``python -m tests.e2e.replica receiver PORT REDIS PREFIX``: serves callbacks only.
``python -m tests.e2e.replica submitter EMULATOR REDIS PREFIX PUBLIC_URL COUNT``: submits
COUNT generations and awaits them; it serves no callbacks itself.
``python -m tests.e2e.replica emulator PORT TARGET...``: an emulator whose tasks take 5 to
7 seconds, delivering callbacks to the TARGET origins in turn.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from minimax_s2v import Client, PollPolicy, RetryPolicy, VideoRequest
from minimax_s2v.emulator import Durations, Emulator
from minimax_s2v.receiver import CallbackReceiver
from minimax_s2v.stores.redis import RedisStore

SECRET = "replica-test-secret-0123456789abcdef"
KEY = "emulator-key"


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - the test reads these lines


async def receiver_replica(port: int, redis_url: str, prefix: str) -> None:
    receiver = CallbackReceiver(f"http://127.0.0.1:{port}/cb", secret=SECRET)
    store = RedisStore(redis_url, prefix=prefix)
    # The client is this replica's sink: it records updates in Redis for the submitter.
    async with Client(KEY, base_url="http://127.0.0.1:9", receiver=receiver, store=store):
        async with receiver.serve("127.0.0.1", port):
            say(f"receiver listening on {port}")
            await asyncio.Event().wait()


async def submitter(
    emulator: str, redis_url: str, prefix: str, public_url: str, count: int
) -> None:
    receiver = CallbackReceiver(public_url, secret=SECRET, fallback_after=120.0)
    store = RedisStore(redis_url, prefix=prefix)
    polling = PollPolicy(first_interval=1.0, max_interval=2.0, max_rate=100)
    async with Client(
        KEY,
        base_url=emulator,
        receiver=receiver,
        store=store,
        polling=polling,
        retry=RetryPolicy(wait_initial=0.05, wait_max=0.5),
    ) as client:
        tasks = await asyncio.gather(
            *(
                client.submit(
                    VideoRequest(subject="https://example.com/f.jpg", prompt=f"replica {i}")
                )
                for i in range(count)
            )
        )
        say(f"SUBMITTED {len(tasks)}")
        results = await asyncio.gather(*(t.wait(timeout=60) for t in tasks))
        for task, snapshot in zip(tasks, results, strict=True):
            say(f"done {task.task_id} {snapshot.status.value} video={task.video is not None}")
        say(f"ALL DONE {len(results)}")
    await store.close()


async def slow_emulator(port: int, targets: list[str]) -> None:
    durations = Durations(preparing=0.3, queueing=0.3, processing=(4.5, 6.5))
    async with Emulator(port=port, seed=5, durations=durations, callback_targets=tuple(targets)):
        say(f"emulator listening on {port}")
        await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    role = sys.argv[1]
    if role == "emulator":
        asyncio.run(slow_emulator(int(sys.argv[2]), sys.argv[3:]))
    elif role == "receiver":
        asyncio.run(receiver_replica(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
    else:
        emulator_url, redis, key_prefix, public, number = sys.argv[2:7]
        asyncio.run(submitter(emulator_url, redis, key_prefix, public, int(number)))
