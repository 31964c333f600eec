"""Client-side rate limits: one async token bucket per endpoint class, fixed or adaptive (AIMD)."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque

import attrs

from ._validators import instance_of, number

__all__ = ["EndpointClass", "InFlightCap", "RateLimit", "RateLimiter", "TokenBucket"]

logger = logging.getLogger("minimax_s2v")


class EndpointClass(enum.Enum):
    """The endpoint classes that are limited separately."""

    SUBMIT = "submit"
    QUERY = "query"
    RETRIEVE = "retrieve"
    #: The V2 API (MiniMax-H3): creates, and queries (by id, list, cancel).
    V2_SUBMIT = "v2_submit"
    V2_QUERY = "v2_query"


@attrs.frozen
class RateLimit:
    """Requests per minute the client allows itself, per endpoint class.

    MiniMax documents 5 RPM (free) and 20 RPM (paid) for video generation; it is unknown
    whether queries and retrievals count. ``None`` means no limit on that class.

    MiniMax's V2 page lists MiniMax-H3 at 300 RPM with at most 30 tasks in flight: those
    are the V2 defaults.

    Args:
        submit_rpm, query_rpm, retrieve_rpm: the limits; with ``adaptive`` the starting rates.
        v2_submit_rpm, v2_query_rpm: the same for the V2 API (creates; queries, lists and
            cancels).
        v2_max_in_flight: V2 tasks this client has queued or running at once; a further
            submission waits until one ends. ``None``: no cap.
        adaptive: the limit is unknown: start at the given (or ``adaptive_start_rpm``) rate,
            grow while calls succeed and cut the rate on every 1002 (AIMD).
        headroom: run this share under a configured limit, so that network jitter never
            pushes a burst over the server's window.
    """

    submit_rpm: float | None = attrs.field(default=None, validator=number(above=0, optional=True))
    query_rpm: float | None = attrs.field(default=None, validator=number(above=0, optional=True))
    retrieve_rpm: float | None = attrs.field(default=None, validator=number(above=0, optional=True))
    v2_submit_rpm: float | None = attrs.field(
        default=300.0, validator=number(above=0, optional=True)
    )
    v2_query_rpm: float | None = attrs.field(default=None, validator=number(above=0, optional=True))
    v2_max_in_flight: int | None = attrs.field(
        default=30, validator=number(at_least=1, integer=True, optional=True)
    )
    adaptive: bool = attrs.field(default=False, validator=instance_of(bool, "True or False"))
    adaptive_start_rpm: float = attrs.field(default=60.0, validator=number(above=0))
    headroom: float = attrs.field(default=0.01, validator=number(at_least=0, below=1))

    def rpm_for(self, endpoint: EndpointClass) -> float | None:
        """The configured rate of ``endpoint``."""
        return {
            EndpointClass.SUBMIT: self.submit_rpm,
            EndpointClass.QUERY: self.query_rpm,
            EndpointClass.RETRIEVE: self.retrieve_rpm,
            EndpointClass.V2_SUBMIT: self.v2_submit_rpm,
            EndpointClass.V2_QUERY: self.v2_query_rpm,
        }[endpoint]


class TokenBucket:
    """An async token bucket: ``rpm`` per minute on average, bursts of at most ``burst``.

    Waiters are served in arrival order (an asyncio lock is fair); at the limit a caller
    waits, it is never refused.
    """

    def __init__(
        self,
        rpm: float,
        *,
        burst: float = 1.0,
        adaptive: bool = False,
        floor_rpm: float = 1.0,
        ceiling_rpm: float = 100_000.0,
    ) -> None:
        if rpm <= 0:
            raise ValueError("a rate limit must be positive")
        self._rate = rpm / 60.0
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()
        self._adaptive = adaptive
        self._floor = floor_rpm / 60.0
        self._ceiling = ceiling_rpm / 60.0
        self._slow_start = adaptive
        # One cut per congestion episode: a window-based limit keeps refusing for a while
        # whatever the rate, so further 1002s before the next success say nothing new.
        self._may_cut = True

    @property
    def rpm(self) -> float:
        """The current rate, per minute."""
        return self._rate * 60.0

    def _refill(self, now: float) -> None:
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    async def acquire(self) -> None:
        """Wait for a token."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self._refill(now)
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self._rate)

    def on_success(self) -> None:
        """Adaptive: grow the rate (by 5% per success in slow start, else by 1 RPM)."""
        if not self._adaptive:
            return
        self._may_cut = True
        step = self._rate * 0.05 if self._slow_start else 1.0 / 60.0
        self._rate = min(self._ceiling, self._rate + step)

    def on_rate_limited(self) -> None:
        """Adaptive: cut the rate by a quarter, once until a call succeeds again."""
        if not self._adaptive or not self._may_cut:
            return
        self._may_cut = False
        self._slow_start = False
        self._rate = max(self._floor, self._rate * 0.75)
        self._tokens = min(self._tokens, 0.0)
        logger.info("rate limited: lowering to %.1f requests per minute", self.rpm)


class RateLimiter:
    """The buckets of one client, built from a :class:`RateLimit`."""

    def __init__(self, config: RateLimit) -> None:
        self.config = config
        self.rate_limited = 0  # 1002/429 answers reported, all endpoints
        self._buckets: dict[EndpointClass, TokenBucket] = {}
        for endpoint in EndpointClass:
            rpm = config.rpm_for(endpoint)
            if config.adaptive and (rpm is not None or endpoint is EndpointClass.SUBMIT):
                # Submissions are always limited; other classes only when a start is given.
                start = rpm if rpm is not None else config.adaptive_start_rpm
                self._buckets[endpoint] = TokenBucket(start, adaptive=True)
            elif rpm is not None:
                self._buckets[endpoint] = TokenBucket(rpm * (1.0 - config.headroom))

    def bucket(self, endpoint: EndpointClass) -> TokenBucket | None:
        """The bucket of ``endpoint``, if it is limited."""
        return self._buckets.get(endpoint)

    def on_rate_limited(self, endpoint: EndpointClass) -> None:
        """Report a 1002/429."""
        self.rate_limited += 1
        bucket = self._buckets.get(endpoint)
        if bucket is not None:
            bucket.on_rate_limited()


class InFlightCap:
    """At most ``limit`` tasks in flight: :meth:`take` waits for room, :meth:`release` makes it.

    :meth:`force` counts a task that is in flight already (one re-attached after a restart)
    even past the limit: new ones then wait until enough have ended. Waiters are served in
    arrival order; each holds one future, so the queue is as long as the calls waiting.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("an in-flight cap must be at least 1")
        self.limit = limit
        self.count = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def take(self) -> None:
        """Wait until fewer than ``limit`` are in flight, then count one more."""
        while self.count >= self.limit or self._waiters:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif self.count < self.limit:
                    self._wake()  # woken, then cancelled: the room goes to the next one
                raise
            if self.count < self.limit:
                break
        self.count += 1

    def force(self) -> None:
        """Count one more in flight, whatever the limit."""
        self.count += 1

    def release(self) -> None:
        """One has ended: the longest waiter, if any, takes the room."""
        self.count -= 1
        if self.count < self.limit:
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
