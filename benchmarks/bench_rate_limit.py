"""Client-side rate limiting against an emulator limited to 120 submissions per minute.

Run: ``.venv/bin/python benchmarks/bench_rate_limit.py [--seconds 60] [--rpm 120]``.
Three clients run side by side for the same minute, each against its own emulator:
the limit configured (target: zero 1002 and >= 97% of the limit), adaptive with the limit
unknown (target: >= 85%, 1002s printed), and no client limit at all (the baseline: what
retrying blindly on 1002 costs). The last line prints the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

from minimax_s2v import Client, RateLimit, RateLimitError, RetryPolicy, VideoRequest
from minimax_s2v.emulator import Emulator, Endpoint

WORKERS = 8
REQUEST = VideoRequest(subject="https://example.com/face.jpg", prompt="rate test")


async def run(limit: RateLimit, rpm: int, seconds: float) -> dict[str, float]:
    """Submit as fast as the client allows for ``seconds``; count accepted and 1002s."""
    retry = RetryPolicy(attempts=1_000_000, timeout=None, wait_initial=0.5, wait_max=5.0)
    async with Emulator(rate_limits={Endpoint.SUBMIT: rpm}) as emu:
        async with Client(emu.api_key, base_url=emu.url, rate_limit=limit, retry=retry) as client:
            deadline = time.monotonic() + seconds

            async def worker() -> None:
                while time.monotonic() < deadline:
                    try:
                        task = await asyncio.wait_for(
                            client.submit(REQUEST), deadline - time.monotonic()
                        )
                    except (TimeoutError, RateLimitError):
                        return
                    del task  # only the count matters

            await asyncio.gather(*(worker() for _ in range(WORKERS)))
        submits = emu.counters.requests.get("submit", Counter())
        return {"accepted": submits.get("ok", 0), "rejected": submits.get("rate_limited", 0)}


async def main(seconds: float, rpm: int) -> None:
    configured, adaptive, unlimited = await asyncio.gather(
        run(RateLimit(submit_rpm=rpm), rpm, seconds),
        run(RateLimit(adaptive=True), rpm, seconds),
        run(RateLimit(), rpm, seconds),
    )
    allowed = rpm * seconds / 60.0
    print(f"emulator limit {rpm} RPM, {seconds:.0f} s: at most {allowed:.0f} accepted submissions")
    print(f"{'client':<26}{'accepted':>10}{'of limit':>10}{'1002s':>8}")
    rows = (
        ("limit configured", configured),
        ("adaptive (limit unknown)", adaptive),
        ("no client limit", unlimited),
    )
    for name, row in rows:
        share = row["accepted"] / allowed
        print(f"{name:<26}{row['accepted']:>10.0f}{share:>10.1%}{row['rejected']:>8.0f}")
    print(
        f"ratios of the limit: configured {configured['accepted'] / allowed:.3f} with "
        f"{configured['rejected']:.0f} x 1002 (target >= 0.97, 0), adaptive "
        f"{adaptive['accepted'] / allowed:.3f} with {adaptive['rejected']:.0f} x 1002 "
        "(target >= 0.85), "
        f"no limit {unlimited['accepted'] / allowed:.3f} with {unlimited['rejected']:.0f} x 1002"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rpm", type=int, default=120)
    options = parser.parse_args()
    asyncio.run(main(options.seconds, options.rpm))
