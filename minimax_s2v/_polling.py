"""Polling: one loop for all tasks, backing off per task, with a cap on the total poll rate."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
from collections.abc import Awaitable, Callable

import attrs

from ._errors import ConfigurationError, MiniMaxError
from ._models import TaskSnapshot
from ._ratelimit import TokenBucket
from ._tasks import TaskRecord, TaskRegistry
from ._validators import number

__all__ = ["PollPolicy", "Poller"]

logger = logging.getLogger("minimax_s2v")


@attrs.frozen
class PollPolicy:
    """How tasks are polled when no callback tells their status.

    The n-th poll of a task comes ``first_interval * multiplier ** n`` seconds after the
    previous one (capped at ``max_interval``, ± ``jitter`` of it at random). However many
    tasks are followed, at most ``max_rate`` queries per second are made and at most
    ``max_in_flight`` are outstanding.

    A poll that fails with a retryable error is simply made again later; one that fails
    for good (unknown or expired task, refused key) ends the waits on that task with it.
    """

    first_interval: float = attrs.field(default=5.0, validator=number(at_least=0))
    max_interval: float = attrs.field(default=20.0, validator=number(at_least=0))
    multiplier: float = attrs.field(default=1.5, validator=number(at_least=1))
    jitter: float = attrs.field(default=0.1, validator=number(at_least=0, at_most=1))
    max_rate: float = attrs.field(default=2.0, validator=number(above=0))
    max_in_flight: int = attrs.field(default=8, validator=number(at_least=1, integer=True))

    def __attrs_post_init__(self) -> None:
        if self.max_interval < self.first_interval:
            raise ConfigurationError(
                f"PollPolicy.max_interval ({self.max_interval!r}) must not be below "
                f"first_interval ({self.first_interval!r})"
            )

    def interval(self, polls: int) -> float:
        """Seconds before the next poll of a task polled ``polls`` times already."""
        base = min(self.max_interval, self.first_interval * self.multiplier**polls)
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))  # noqa: S311


class Poller:
    """Polls followed tasks until they end; started lazily, stopped with the client."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[TaskSnapshot]],
        registry: TaskRegistry,
        policy: PollPolicy,
        apply: Callable[[TaskSnapshot], Awaitable[None]],
    ) -> None:
        self._fetch = fetch
        self._apply = apply
        self._registry = registry
        self.policy = policy
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}  # task id -> when its one live heap entry is due
        self._polls: dict[str, int] = {}
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._bucket = TokenBucket(policy.max_rate * 60.0, burst=1.0)
        self._slots = asyncio.Semaphore(policy.max_in_flight)
        self._loop_task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.polls_made = 0

    @property
    def following(self) -> int:
        """How many tasks are waiting for a poll."""
        return len(self._due)

    def follow(self, record: TaskRecord, delay: float | None = None) -> None:
        """Poll ``record``'s task after ``delay`` seconds (default: the first interval)."""
        if record.finished:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + (self.policy.interval(0) if delay is None else delay)
        current = self._due.get(record.task_id)
        if current is not None and current <= when:
            return
        self._due[record.task_id] = when
        heapq.heappush(self._heap, (when, next(self._order), record.task_id))
        self._wake.set()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = loop.create_task(self._run(), name="minimax-s2v-poller")

    def unfollow(self, task_id: str) -> None:
        """Stop polling ``task_id`` (its heap entry is skipped when reached)."""
        self._due.pop(task_id, None)
        self._polls.pop(task_id, None)

    async def close(self) -> None:
        """Stop polling; in-flight polls are cancelled."""
        tasks = [t for t in (self._loop_task, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._heap:
            when, _, task_id = self._heap[0]
            if self._due.get(task_id) != when:
                heapq.heappop(self._heap)  # stale: rescheduled or unfollowed
                continue
            delay = when - loop.time()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue  # an earlier entry may have arrived
            heapq.heappop(self._heap)
            del self._due[task_id]
            await self._bucket.acquire()
            await self._slots.acquire()
            job = loop.create_task(self._poll(task_id))
            self._in_flight.add(job)
            job.add_done_callback(self._in_flight.discard)

    async def _poll(self, task_id: str) -> None:
        try:
            record = self._registry.get(task_id)
            if record is None or record.finished:
                return
            self.polls_made += 1
            polls = self._polls[task_id] = self._polls.get(task_id, 0) + 1
            try:
                snapshot = await self._fetch(task_id)
            except MiniMaxError as error:
                if not error.retryable:
                    logger.warning("giving up polling task %s: %s", task_id, error)
                    self._registry.fail(task_id, error)
                    self.unfollow(task_id)
                    return
                logger.debug("poll of task %s failed, polling again later: %s", task_id, error)
            else:
                await self._apply(snapshot)
            if record.finished:
                self.unfollow(task_id)
            else:
                self.follow(record, self.policy.interval(polls))
        finally:
            self._slots.release()
