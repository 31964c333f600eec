"""The deployment check: POST a challenge to the public URL as MiniMax would."""

from __future__ import annotations

import json
import secrets
import time

import aiohttp
from yarl import URL

from ._core import SelfCheckResult

__all__ = ["self_check"]

_MAX_ECHO = 64 * 1024  # an echo is a few dozen bytes; a host sending more is not echoing


async def self_check(url: URL, timeout: float) -> SelfCheckResult:
    """Send a challenge to ``url`` and report whether it came back in time (3 s)."""
    challenge = secrets.token_urlsafe(16)
    started = time.perf_counter()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url, json={"challenge": challenge}, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response,
        ):
            status = response.status
            body = bytearray()
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > _MAX_ECHO:
                    break  # no echo is this long: what came is enough to say it is wrong
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return SelfCheckResult(False, str(url), None, None, f"{type(exc).__name__}: {exc}")
    latency = time.perf_counter() - started
    try:
        echoed = json.loads(body.decode("utf-8")).get("challenge")
    except (ValueError, AttributeError, RecursionError):  # not UTF-8 or JSON, or not an object
        echoed = None
    if status != 200 or echoed != challenge:
        error = f"HTTP {status}, the challenge was not echoed back"
        return SelfCheckResult(False, str(url), latency, status, error)
    if latency > 3.0:
        error = f"answered in {latency:.2f}s; MiniMax allows 3s"
        return SelfCheckResult(False, str(url), latency, status, error)
    return SelfCheckResult(True, str(url), latency, status)
