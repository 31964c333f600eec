"""The emulator's callback sender: the challenge, then one POST per status change.

By default the challenge is sent while the submission is being answered (the server awaits
:meth:`CallbackSender.challenge` before it creates the task); with ``challenge_timing
"after_create"`` it is the first POST of the task's background sequence instead.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import aiohttp
import attrs
from yarl import URL

from .._models import Dialect, TaskStatus
from ._config import EmulatorConfig
from ._engine import V2_STATUS_TEXT, Counters, EmulatedTask
from ._validation import parse_json

#: Builds a status callback's body: (task, status, status text) -> JSON.
Renderer = Callable[[EmulatedTask, TaskStatus, str], dict[str, Any]]

__all__ = ["CallbackSender", "Delivery"]

_BODY_KEEP = 1024
_LOWER = {
    TaskStatus.PROCESSING: "processing",
    TaskStatus.SUCCESS: "success",
    TaskStatus.FAIL: "failed",
}


@attrs.frozen
class Delivery:
    """One callback POST as the emulator made it.

    Attributes:
        task_id: the task; ``""`` for a challenge during a submission that failed (no task
            was created).
        url: where the POST went.
        kind: ``"challenge"`` or ``"status"``.
        status: the status text sent (``None`` for a challenge).
        sent_at: Unix time the POST started.
        latency: seconds until the answer (``None`` when none came).
        http_status: the answer's HTTP status (``None`` when none came).
        response_body: the first KiB of the answer.
        error: what went wrong, when something did (timeout, refused, wrong echo).
        fault: the fault applied (``"duplicate"``, ``"reorder"``, ``"delay"``) if any.
    """

    task_id: str
    url: str
    kind: Literal["challenge", "status"]
    status: str | None
    sent_at: float
    latency: float | None
    http_status: int | None
    response_body: str
    error: str | None = None
    fault: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The delivery as plain JSON."""
        return attrs.asdict(self)


@attrs.frozen
class _Send:
    at: float
    status: TaskStatus
    fault: str | None


class CallbackSender:
    """Sends each task's callbacks in its own tracked task; records every delivery."""

    def __init__(
        self,
        config: Callable[[], EmulatorConfig],
        counters: Counters,
        clock: Callable[[], float],
        max_deliveries: int = 200_000,
    ) -> None:
        self._config = config
        self._counters = counters
        self._clock = clock
        self._rng = random.Random(config().seed)  # noqa: S311 - simulation, not security
        self._session: aiohttp.ClientSession | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._job_of: dict[str, asyncio.Task[None]] = {}  # task id -> its sequence's job
        self.deliveries: deque[Delivery] = deque(maxlen=max_deliveries)
        #: Builds each status body; the server sets it to add V2 bodies (content.url).
        self.render: Renderer = lambda task, status, text: task.body(status, text)
        self._turn = 0  # next of the config's callback_targets

    async def start(self) -> None:
        """Open the HTTP session callbacks are sent with."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, force_close=False),
            headers={"User-Agent": "minimax-s2v-emulator"},
        )

    async def close(self) -> None:
        """Cancel every pending callback and close the session."""
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def pending(self) -> int:
        """Tasks whose callbacks are still being sent."""
        return len(self._jobs)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every scheduled callback has been sent (or ``timeout`` passed)."""
        if self._jobs:
            await asyncio.wait(list(self._jobs), timeout=timeout)

    def schedule(self, task: EmulatedTask, *, challenged: bool = False) -> None:
        """Start sending the callbacks of ``task`` (``challenged``: its URL passed already)."""
        job = asyncio.get_running_loop().create_task(self._run(task, challenged))
        self._track(task.task_id, job)

    def _track(self, task_id: str, job: asyncio.Task[None]) -> None:
        self._jobs.add(job)
        self._job_of[task_id] = job
        job.add_done_callback(self._jobs.discard)
        job.add_done_callback(
            lambda done: (
                self._job_of.pop(task_id, None) if self._job_of.get(task_id) is done else None
            )
        )

    def cancelled(self, task: EmulatedTask) -> None:
        """``task`` was cancelled: its pending callbacks stop, one ``cancelled`` is sent."""
        job = self._job_of.pop(task.task_id, None)
        if job is not None:
            job.cancel()
        url = task.callback_url
        if url is None:
            return

        async def send() -> None:
            status = TaskStatus.CANCELLED
            text = V2_STATUS_TEXT[status]
            self.deliveries.append(
                await self._post(
                    task.task_id,
                    url=url,
                    kind="status",
                    status=text,
                    body=self.render(task, status, text),
                    fault=None,
                )
            )

        self._track(task.task_id, asyncio.get_running_loop().create_task(send()))

    def _plan(self, task: EmulatedTask) -> list[_Send]:
        faults = self._config().faults.callbacks
        events = task.callback_events()
        sends: list[_Send] = []
        index = 0
        while index < len(events):
            at, status = events[index]
            draw = self._rng.random
            if draw() < faults.drop:
                self._counters.callbacks["dropped"] += 1
                index += 1
                continue
            if draw() < faults.reorder and index + 1 < len(events):
                later_at, later = events[index + 1]
                self._counters.callbacks["reordered"] += 1
                sends += [_Send(later_at, later, None), _Send(later_at, status, "reorder")]
                index += 2
                continue
            if draw() < faults.delay:
                self._counters.callbacks["delayed"] += 1
                sends.append(_Send(at + faults.delay_seconds, status, "delay"))
            else:
                sends.append(_Send(at, status, None))
            if draw() < faults.duplicate:
                self._counters.callbacks["duplicated"] += 1
                sends.append(_Send(sends[-1].at, status, "duplicate"))
            index += 1
        sends.sort(key=lambda send: send.at)  # stable: reorders at one instant stay swapped
        return sends

    async def _run(self, task: EmulatedTask, challenged: bool) -> None:
        url = task.callback_url
        if url is None:
            return
        config = self._config()
        if config.challenge and not challenged:
            delivery = await self.challenge(url, task.task_id)
            self.deliveries.append(delivery)
            if delivery.error is not None and config.stop_after_failed_challenge:
                return
        for send in self._plan(task):
            delay = send.at - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            text = self._status_text(task, send.status)
            body = self.render(task, send.status, text)
            self.deliveries.append(
                await self._post(
                    task.task_id, url=url, kind="status", status=text, body=body, fault=send.fault
                )
            )

    def record(self, delivery: Delivery) -> None:
        """Keep ``delivery`` in the list of deliveries (bounded: the oldest go first)."""
        self.deliveries.append(delivery)

    def _status_text(self, task: EmulatedTask, status: TaskStatus) -> str:
        if task.dialect is Dialect.V2:
            return V2_STATUS_TEXT[status]
        if self._config().callback_casing == "lower":
            return _LOWER[status]
        return status.value

    async def challenge(self, url: str, task_id: str = "") -> Delivery:
        """POST a ``challenge`` to ``url`` and check the echo; the delivery says how it went.

        The delivery's ``error`` is set when the check failed: no connection, no answer
        within ``challenge_timeout``, a non-2xx answer, or a body without the same challenge.
        It is not recorded here: the caller records it once it knows the task's id.
        """
        token = secrets.token_urlsafe(16)
        self._counters.callbacks["challenges_sent"] += 1
        delivery = await self._post(
            task_id, url=url, kind="challenge", status=None, body={"challenge": token}, fault=None
        )
        timeout = self._config().challenge_timeout
        error = delivery.error
        if error is None and not (delivery.http_status and 200 <= delivery.http_status < 300):
            error = f"challenge answered with HTTP {delivery.http_status}"
        if error is None:
            try:
                echoed = parse_json(delivery.response_body.encode()).get("challenge")
            except (ValueError, AttributeError):  # not JSON (too deep too), or not an object
                echoed = None
            if echoed != token:
                error = "challenge not echoed"
            elif delivery.latency is None or delivery.latency > timeout:
                error = f"challenge answered after {delivery.latency:.3f}s"
        if error is not None:
            self._counters.callbacks["challenges_failed"] += 1
            return attrs.evolve(delivery, error=error)
        self._counters.callbacks["challenges_passed"] += 1
        if delivery.latency is not None:
            self._counters.challenge_latencies.append(delivery.latency)
        return delivery

    async def _post(
        self,
        task_id: str,
        *,
        url: str,
        kind: Literal["challenge", "status"],
        status: str | None,
        body: dict[str, Any],
        fault: str | None,
    ) -> Delivery:
        session = self._session
        assert session is not None, "CallbackSender.start() was not awaited"  # noqa: S101
        config = self._config()
        limit = config.challenge_timeout if kind == "challenge" else config.callback_timeout
        if config.callback_targets:
            target = URL(config.callback_targets[self._turn % len(config.callback_targets)])
            self._turn += 1
            url = str(
                URL(url)
                .with_scheme(target.scheme)
                .with_host(target.host or "")
                .with_port(target.port)
            )
        sent_at = time.time()
        started = time.perf_counter()
        latency: float | None = None
        http_status: int | None = None
        text = ""
        error: str | None = None
        self._counters.callbacks["sent"] += 1
        try:
            async with session.post(
                url, json=body, timeout=aiohttp.ClientTimeout(total=limit)
            ) as response:
                raw = await response.content.read(_BODY_KEEP)
                latency = time.perf_counter() - started
                http_status = response.status
                text = raw.decode("utf-8", "replace")
        except TimeoutError:
            error = f"no answer within {limit}s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        if error is None and http_status is not None and 200 <= http_status < 300:
            self._counters.callbacks["acknowledged"] += 1
        else:
            self._counters.callbacks["failed"] += 1
        return Delivery(
            task_id=task_id,
            url=url,
            kind=kind,
            status=status,
            sent_at=sent_at,
            latency=latency,
            http_status=http_status,
            response_body=text,
            error=error,
            fault=fault,
        )
