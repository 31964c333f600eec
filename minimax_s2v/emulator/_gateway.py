"""What meets a request before the emulated API does: a planned fault, the key, the rate limit.

They are met in that order, as at a real gateway. One fault is drawn per request from a
generator of the endpoint's own, so a seed fixes the sequence of faults per endpoint. V1
answers in band (HTTP 200 and ``base_resp``), V2 with real HTTP statuses in its envelope.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from collections.abc import Callable

from aiohttp import web

from ._answers import base, drop, inband, v2_error
from ._config import EmulatorConfig, Endpoint, EndpointFaults
from ._engine import Counters

__all__ = ["Admitted", "Gateway"]

#: The key a request was admitted with, and the fault drawn for it that is played later
#: (``"lost_response"``, after the work) or already was (``"slow"``), else ``None``.
Admitted = tuple[str, str | None]

_MISSING_KEY = (
    "login fail: Please carry the API secret key in the 'Authorization' field of the request header"
)
_SERVER_ERRORS = (
    (1000, "unknown error"),
    (1001, "request timeout"),
    (1013, "internal service error"),
)
_BAD_GATEWAY_PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"


class Gateway:
    """Plays the fault plan, checks the key and keeps each key's rate windows.

    Args:
        config: the settings in force (read on every request: they may change).
        counters: where refused requests and faults are counted.
        clock: monotonic seconds, for the rate windows.
    """

    def __init__(
        self,
        config: Callable[[], EmulatorConfig],
        counters: Counters,
        clock: Callable[[], float],
    ) -> None:
        seed = config().seed
        self._config = config
        self._counters = counters
        self._clock = clock
        self._fault_rngs = {
            endpoint: random.Random(None if seed is None else f"{seed}:{endpoint.value}")  # noqa: S311
            for endpoint in Endpoint
        }
        self._detail_rng = random.Random(seed)  # noqa: S311 - simulation
        self._windows: dict[tuple[str, Endpoint], deque[float]] = {}

    def draw_fault(self, endpoint: Endpoint) -> str | None:
        """One draw per request, so a seed fixes the sequence of faults per endpoint."""
        faults = self._config().faults.for_endpoint(endpoint)
        point = self._fault_rngs[endpoint].random()
        for kind in EndpointFaults.KINDS:
            point -= getattr(faults, kind)
            if point < 0:
                self._counters.faults.setdefault(endpoint.value, Counter())[kind] += 1
                return kind
        return None

    async def admit(
        self, request: web.Request, endpoint: Endpoint, *, v2: bool = False
    ) -> Admitted | web.StreamResponse:
        """The key and the fault still to play, or the answer that refuses the request."""
        name = endpoint.value
        fault = self.draw_fault(endpoint)
        if fault == "slow":
            await asyncio.sleep(self._config().faults.for_endpoint(endpoint).slow_seconds)
        elif fault not in (None, "lost_response"):  # a lost response is played after the work
            self._counters.count(name, f"fault_{fault}")
            return self._fault_answer(request, fault, v2=v2)
        key, code, message = self._authenticate(request)
        if key is None:
            self._counters.count(name, "auth_error")
            return v2_error(401, message, code) if v2 else inband(code, message)
        if not self._within_rate(key, endpoint):
            self._counters.count(name, "rate_limited")
            return self.rate_limited(v2=v2)
        return key, fault

    def rate_limited(self, *, v2: bool = False) -> web.Response:
        """The answer to a request over the rate limit (V1: as ``rate_limit_mode`` says)."""
        if v2:
            return v2_error(429, "rate limit, please retry later", 1002)
        if self._config().rate_limit_mode == "http":
            return web.json_response(
                {"base_resp": base(1002, "rate limit exceeded(RPM)")},
                status=429,
                headers={"Retry-After": "1"},
            )
        return inband(1002, "rate limit exceeded(RPM)")

    def _fault_answer(self, request: web.Request, kind: str, *, v2: bool) -> web.StreamResponse:
        rng = self._detail_rng
        if kind == "http_5xx":  # V2: a gateway in front of it, so not MiniMax's envelope either
            status = rng.choice((502, 503) if v2 else (500, 502, 503))
            return web.Response(status=status, text=f"upstream error {status}")
        if kind == "server_error":
            if not v2:
                return inband(*rng.choice(_SERVER_ERRORS))
            if rng.random() < 0.5:
                return v2_error(500, "internal error", 1000)
            return v2_error(529, "overloaded, please retry later")
        if kind == "rate_limit":
            return self.rate_limited(v2=v2)
        if kind == "non_json":
            return web.Response(text=_BAD_GATEWAY_PAGE, content_type="text/html")
        return drop(request)  # drop: close the connection without an answer

    def _authenticate(self, request: web.Request) -> tuple[str | None, int, str]:
        """The accepted key, else ``None`` with the code and message that refuse it."""
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return None, 1004, _MISSING_KEY
        if key in self._config().api_keys:
            return key, 0, ""
        # Also what MiniMax answers a key of the other region.
        return None, 2049, "invalid api key"

    def _within_rate(self, api_key: str, endpoint: Endpoint) -> bool:
        limit = self._config().rate_limits.get(endpoint)
        if limit is None:
            return True
        now = self._clock()
        window = self._windows.setdefault((api_key, endpoint), deque())
        while window and now - window[0] >= 60.0:
            window.popleft()
        if len(window) >= limit:
            return False
        window.append(now)
        return True
