"""Submit + query round trips: the SDK against bare aiohttp making the same calls.

Run: ``.venv/bin/python benchmarks/bench_submit.py [--tasks 5000] [--concurrency 50]``.
The emulator runs in its own process; the SDK and the bare client alternate in one
invocation (each going first in every other round), and the last line prints the median of
the per-round ratios and the ratio of the best times (target: <= 1.3x).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import aiohttp

from benchmarks.emulator_process import emulator_process
from minimax_s2v import Client, PollPolicy, VideoRequest

KEY = "emulator-key"
BODY: dict[str, Any] = {
    "model": "S2V-01",
    "prompt": "A girl runs toward the camera and winks with a smile.",
    "subject_reference": [{"type": "character", "image": ["https://example.com/face.jpg"]}],
}


async def run_bare(url: str, tasks: int, concurrency: int) -> float:
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with session.post(f"{url}/v1/video_generation", json=BODY, headers=headers) as r:
                body = await r.json()
            if body["base_resp"]["status_code"] != 0:
                raise RuntimeError(body)
            params = {"task_id": body["task_id"]}
            async with session.get(
                f"{url}/v1/query/video_generation", params=params, headers=headers
            ) as r:
                status = (await r.json())["status"]
            if status != "Success":
                raise RuntimeError(status)

        return await _timed(one, tasks, concurrency)


async def run_sdk(url: str, tasks: int, concurrency: int) -> float:
    request = VideoRequest(subject="https://example.com/face.jpg", prompt=BODY["prompt"])
    async with Client(KEY, base_url=url, polling=PollPolicy()) as client:

        async def one() -> None:
            task = await client.submit(request)
            snapshot = await client.get_task(task.task_id)
            if snapshot.status.value != "Success":
                raise RuntimeError(snapshot)

        return await _timed(one, tasks, concurrency)


async def _timed(one: Any, tasks: int, concurrency: int) -> float:
    remaining = tasks

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def main(tasks: int, concurrency: int, rounds: int) -> None:
    with emulator_process() as url:
        await run_bare(url, 200, concurrency)  # warm up both paths
        await run_sdk(url, 200, concurrency)
        bare: list[float] = []
        sdk: list[float] = []
        for round_number in range(rounds):
            # Bare first, then the SDK first: the emulator slows down a little as its task
            # list grows, and alternating keeps that from favouring either client.
            if round_number % 2 == 0:
                bare.append(await run_bare(url, tasks, concurrency))
                sdk.append(await run_sdk(url, tasks, concurrency))
            else:
                sdk.append(await run_sdk(url, tasks, concurrency))
                bare.append(await run_bare(url, tasks, concurrency))
            print(f"round {round_number + 1}: bare {bare[-1]:.2f}s  sdk {sdk[-1]:.2f}s")
    best_bare, best_sdk = min(bare), min(sdk)
    paired = statistics.median(s / b for s, b in zip(sdk, bare, strict=True))
    print(f"{'client':<12}{'best s':>10}{'round trips/s':>16}")
    print(f"{'bare aiohttp':<12}{best_bare:>10.2f}{tasks / best_bare:>16.0f}")
    print(f"{'minimax_s2v':<12}{best_sdk:>10.2f}{tasks / best_sdk:>16.0f}")
    print(
        f"ratio sdk/bare time: {paired:.2f}x median of {rounds} rounds, "
        f"{best_sdk / best_bare:.2f}x best against best (target <= 1.3x), {tasks} round trips"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    options = parser.parse_args()
    asyncio.run(main(options.tasks, options.concurrency, options.rounds))
