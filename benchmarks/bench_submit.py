"""Submit + query round trips: the SDK against bare aiohttp making the same calls.

Run: ``.venv/bin/python benchmarks/bench_submit.py [--tasks 5000] [--concurrency 50]
[--api v2]``. ``--api v2`` makes the same round trips on the V2 API (MiniMax-H3 reference
requests, ``GET /v2/query/video_generation/{id}``), the client's V2 RPM pacing turned off.
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
from minimax_s2v import AnyRequest, Client, H3Request, PollPolicy, RateLimit, VideoRequest

KEY = "emulator-key"
BODY: dict[str, Any] = {
    "model": "S2V-01",
    "prompt": "A girl runs toward the camera and winks with a smile.",
    "subject_reference": [{"type": "character", "image": ["https://example.com/face.jpg"]}],
}


V2_BODY: dict[str, Any] = {
    "model": "MiniMax-H3",
    "content": [
        {"type": "text", "text": BODY["prompt"]},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.com/face.jpg"},
            "role": "reference_image",
        },
    ],
    "resolution": "2K",
    "duration": 5,
}


async def run_bare_v2(url: str, tasks: int, concurrency: int) -> float:
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with session.post(
                f"{url}/v2/video_generation", json=V2_BODY, headers=headers
            ) as r:
                if r.status != 200:
                    raise RuntimeError(await r.text())
                task_id = (await r.json())["task_id"]
            async with session.get(
                f"{url}/v2/query/video_generation/{task_id}", headers=headers
            ) as r:
                status = (await r.json())["task"]["status"]
            if status != "succeeded":
                raise RuntimeError(status)

        return await _timed(one, tasks, concurrency)


async def run_bare(url: str, tasks: int, concurrency: int, api: str = "v1") -> float:
    if api == "v2":
        return await run_bare_v2(url, tasks, concurrency)
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


async def run_sdk(url: str, tasks: int, concurrency: int, api: str = "v1") -> float:
    request: AnyRequest = VideoRequest(
        subject="https://example.com/face.jpg", prompt=BODY["prompt"]
    )
    if api == "v2":
        request = H3Request(BODY["prompt"], references=["https://example.com/face.jpg"])
    limits = RateLimit(v2_submit_rpm=None)
    async with Client(KEY, base_url=url, polling=PollPolicy(), rate_limit=limits) as client:

        async def one() -> None:
            task = await client.submit(request)
            snapshot = await client.get_task(task.task_id)
            if snapshot.status.value != "Success":
                raise RuntimeError(snapshot)

        return await _timed(one, tasks, concurrency)


#: The client's CPU time of each timed run, in seconds (``time.process_time``), in order.
CPU_SECONDS: list[float] = []


async def _timed(one: Any, tasks: int, concurrency: int) -> float:
    remaining = tasks

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    CPU_SECONDS.append(time.process_time() - cpu_started)
    return time.perf_counter() - started


async def main(tasks: int, concurrency: int, rounds: int, api: str) -> None:
    with emulator_process() as url:
        await run_bare(url, 200, concurrency, api)  # warm up both paths
        await run_sdk(url, 200, concurrency, api)
        bare: list[float] = []
        sdk: list[float] = []
        bare_cpu: list[float] = []
        sdk_cpu: list[float] = []
        for round_number in range(rounds):
            # Bare first, then the SDK first: the emulator slows down a little as its task
            # list grows, and alternating keeps that from favouring either client.
            if round_number % 2 == 0:
                bare.append(await run_bare(url, tasks, concurrency, api))
                bare_cpu.append(CPU_SECONDS[-1])
                sdk.append(await run_sdk(url, tasks, concurrency, api))
                sdk_cpu.append(CPU_SECONDS[-1])
            else:
                sdk.append(await run_sdk(url, tasks, concurrency, api))
                sdk_cpu.append(CPU_SECONDS[-1])
                bare.append(await run_bare(url, tasks, concurrency, api))
                bare_cpu.append(CPU_SECONDS[-1])
            print(
                f"round {round_number + 1}: bare {bare[-1]:.2f}s  sdk {sdk[-1]:.2f}s  "
                f"(client CPU {bare_cpu[-1]:.2f}s / {sdk_cpu[-1]:.2f}s)"
            )
    best_bare, best_sdk = min(bare), min(sdk)
    paired = statistics.median(s / b for s, b in zip(sdk, bare, strict=True))
    print(f"{'client':<12}{'best s':>10}{'round trips/s':>16}")
    print(f"{'bare aiohttp':<12}{best_bare:>10.2f}{tasks / best_bare:>16.0f}")
    print(f"{'minimax_s2v':<12}{best_sdk:>10.2f}{tasks / best_sdk:>16.0f}")
    print(
        f"ratio sdk/bare time: {paired:.2f}x median of {rounds} rounds, "
        f"{best_sdk / best_bare:.2f}x best against best (target <= 1.3x), {tasks} round trips"
        f" on the {api} API"
    )
    # The client's own CPU per round trip (both clients are CPU-bound here): what the SDK's
    # work costs in absolute terms, next to the rate MiniMax allows.
    bare_us = statistics.median(bare_cpu) / tasks * 1e6
    sdk_us = statistics.median(sdk_cpu) / tasks * 1e6
    print(
        f"client CPU per round trip (median of rounds): bare {bare_us:.0f} us, "
        f"sdk {sdk_us:.0f} us, {sdk_us - bare_us:+.0f} us"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--api", choices=("v1", "v2"), default="v1")
    options = parser.parse_args()
    asyncio.run(main(options.tasks, options.concurrency, options.rounds, options.api))
