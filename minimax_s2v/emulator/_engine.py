"""The emulator's task engine: task life cycles, outcomes, files and counters (no HTTP)."""

from __future__ import annotations

import enum
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import attrs

from .._models import Dialect, H3Task, TaskStatus
from ._config import Durations, EmulatorConfig
from ._state import CounterState

__all__ = ["V2_STATUS_TEXT", "Counters", "EmulatedFile", "EmulatedTask", "Outcome", "TaskEngine"]

#: Size of the bundled clip, reported as the video size of every successful task.
VIDEO_WIDTH, VIDEO_HEIGHT = 1280, 720


class Outcome(enum.Enum):
    """How a task ends, decided when it is created."""

    SUCCESS = "success"
    INPUT_SENSITIVE = "input_sensitive"  # 1026 right after Preparing
    OUTPUT_SENSITIVE = "output_sensitive"  # 1027 after Processing


_FAILURES = {
    Outcome.INPUT_SENSITIVE: (1026, "input new_sensitive"),
    Outcome.OUTPUT_SENSITIVE: (1027, "output new_sensitive"),
}
_V2_FAILURES = {
    Outcome.INPUT_SENSITIVE: (1026, "video description contains sensitive content"),
    Outcome.OUTPUT_SENSITIVE: (1027, "output video contains sensitive content"),
}
#: How V2 spells each status.
V2_STATUS_TEXT = {
    TaskStatus.PREPARING: "queued",
    TaskStatus.QUEUEING: "queued",
    TaskStatus.PROCESSING: "running",
    TaskStatus.SUCCESS: "succeeded",
    TaskStatus.FAIL: "failed",
    TaskStatus.CANCELLED: "cancelled",
}


@attrs.define
class EmulatedFile:
    """A generated video file."""

    file_id: int
    task_id: str
    size: int
    created_at: int  # Unix seconds


@attrs.define
class EmulatedTask:
    """One task: its request, its timeline (monotonic seconds) and its outcome."""

    task_id: str
    api_key: str = attrs.field(repr=False)
    prompt: str
    callback_url: str | None
    created_mono: float
    created_wall: float
    preparing_end: float
    queueing_end: float
    processing_end: float
    outcome: Outcome
    file_id: int | None = None
    dialect: Dialect = Dialect.V1
    model: str = "S2V-01"
    resolution: str | None = None
    duration: int | None = None
    ratio: str | None = None
    cancelled_at: float | None = None  # V2: cancelled while queued (never charged)

    @property
    def end(self) -> float:
        """When the task reaches its final status."""
        return (
            self.preparing_end if self.outcome is Outcome.INPUT_SENSITIVE else self.processing_end
        )

    def status_at(self, now: float) -> TaskStatus:
        """The status the task has at monotonic time ``now``."""
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return TaskStatus.CANCELLED
        if now >= self.end:
            return TaskStatus.SUCCESS if self.outcome is Outcome.SUCCESS else TaskStatus.FAIL
        if now < self.preparing_end:
            return TaskStatus.PREPARING
        if now < self.queueing_end:
            return TaskStatus.QUEUEING
        return TaskStatus.PROCESSING

    def charged(self, now: float) -> bool:
        """Whether the task is charged: it started running (a cancel while queued is free)."""
        return self.status_at(now) in (TaskStatus.PROCESSING, TaskStatus.SUCCESS) or (
            self.status_at(now) is TaskStatus.FAIL and self.outcome is Outcome.OUTPUT_SENSITIVE
        )

    def v2_task(self, status: TaskStatus, video_url: str | None, now_wall: float) -> H3Task:
        """The V2 ``VideoTask`` for ``status``; ``video_url`` is the succeeded task's link."""
        done = status is TaskStatus.SUCCESS
        code = message = None
        if status is TaskStatus.FAIL:
            number, message = _V2_FAILURES[self.outcome]
            code = str(number)
        seconds = self.duration or 5
        usage: tuple[tuple[str, int | float], ...] = ()
        if done:
            usage = (
                ("total_seconds", seconds),
                ("input_seconds", 0),
                ("output_seconds", seconds),
                ("input_image_count", 1),
                ("input_audio_seconds", 0),
                ("total_tokens", 0),
                ("prompt_tokens", 0),
                ("completion_tokens", 0),
            )
        return H3Task(
            id=self.task_id,
            status=status,
            status_text=V2_STATUS_TEXT[status],
            model=self.model,
            created_at=int(self.created_wall),
            updated_at=int(now_wall),
            video_url=video_url if done else None,
            resolution=self.resolution,
            duration=self.duration,
            ratio=self.ratio or "",
            task_type="generation",
            modality="video",
            error_code=code,
            error_message=message,
            usage=usage,
        )

    def callback_events(self) -> list[tuple[float, TaskStatus]]:
        """The status changes MiniMax reports by callback: processing, then the final one."""
        events: list[tuple[float, TaskStatus]] = []
        if self.outcome is not Outcome.INPUT_SENSITIVE:
            events.append((self.queueing_end, TaskStatus.PROCESSING))
        events.append((self.end, self.status_at(self.end)))
        return events

    def body(self, status: TaskStatus, status_text: str) -> dict[str, Any]:
        """The query-shaped body for ``status``, with the documented placeholders."""
        done = status is TaskStatus.SUCCESS
        code, message = (0, "success")
        if status is TaskStatus.FAIL:
            code, message = _FAILURES[self.outcome]
        return {
            "task_id": self.task_id,
            "status": status_text,
            "file_id": str(self.file_id) if done and self.file_id is not None else "",
            "video_width": VIDEO_WIDTH if done else 0,
            "video_height": VIDEO_HEIGHT if done else 0,
            "base_resp": {"status_code": code, "status_msg": message},
        }


@attrs.define
class Counters:
    """What the emulator has seen and done, for tests in this process or another."""

    tasks_created: int = 0
    backup_downloads: int = 0
    requests: dict[str, Counter[str]] = attrs.field(factory=dict)
    faults: dict[str, Counter[str]] = attrs.field(factory=dict)
    queries_by_task: Counter[str] = attrs.field(factory=Counter)
    v2_max_in_flight_seen: int = 0  # the most V2 tasks one key had queued or running at once
    callbacks: Counter[str] = attrs.field(factory=Counter)
    challenge_latencies: deque[float] = attrs.field(factory=lambda: deque(maxlen=100_000))

    def count(self, endpoint: str, outcome: str) -> None:
        """Count one request to ``endpoint`` that ended as ``outcome``."""
        self.requests.setdefault(endpoint, Counter())[outcome] += 1

    def requests_to(self, endpoint: str) -> int:
        """All requests to ``endpoint``, whatever their outcome."""
        return sum(self.requests.get(endpoint, Counter()).values())

    def as_json(self) -> CounterState:
        """The counters as plain JSON."""
        latencies = sorted(self.challenge_latencies)
        return {
            "tasks_created": self.tasks_created,
            "backup_downloads": self.backup_downloads,
            "requests": {name: dict(counts) for name, counts in self.requests.items()},
            "faults": {name: dict(counts) for name, counts in self.faults.items()},
            "callbacks": dict(self.callbacks),
            "v2_max_in_flight_seen": self.v2_max_in_flight_seen,
            "challenge_latency_ms": {
                "count": len(latencies),
                "p50": _percentile(latencies, 0.50) * 1000,
                "p99": _percentile(latencies, 0.99) * 1000,
                "max": (latencies[-1] if latencies else 0.0) * 1000,
            },
        }


def _percentile(ordered: list[float], share: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class TaskEngine:
    """Creates tasks and files and answers what state they are in at any moment."""

    def __init__(self, config: Callable[[], EmulatorConfig], clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        seed = config().seed
        self._rng = random.Random(seed)  # noqa: S311 - simulation, not security
        self._next_id = self._rng.randrange(10**14, 2 * 10**14)
        self.tasks: dict[str, EmulatedTask] = {}
        self.files: dict[int, EmulatedFile] = {}
        self.counters = Counters()
        # Unfinished tasks per key and API, pruned as they end (the in-flight cap).
        self._active: dict[tuple[str, Dialect], set[str]] = {}

    def _new_id(self) -> int:
        self._next_id += self._rng.randrange(1, 1000)
        return self._next_id

    def _draw(self, span: tuple[float, float]) -> float:
        low, high = span
        return low if high == low else self._rng.uniform(low, high)

    def create(
        self,
        api_key: str,
        prompt: str,
        callback_url: str | None,
        *,
        dialect: Dialect = Dialect.V1,
        model: str = "S2V-01",
        resolution: str | None = None,
        duration: int | None = None,
        ratio: str | None = None,
    ) -> EmulatedTask:
        """Create a task whose timeline and outcome are drawn now."""
        config = self._config()
        durations: Durations = config.durations
        now = self._clock()
        preparing_end = now + self._draw(durations.preparing)
        queueing_end = preparing_end + self._draw(durations.queueing)
        processing_end = queueing_end + self._draw(durations.processing)
        late_fail = self._rng.random() < config.late_fail_ratio
        if config.sensitive_marker and config.sensitive_marker in prompt:
            outcome = Outcome.INPUT_SENSITIVE
        elif late_fail:
            outcome = Outcome.OUTPUT_SENSITIVE
        else:
            outcome = Outcome.SUCCESS
        task = EmulatedTask(
            task_id=str(self._new_id()),
            api_key=api_key,
            prompt=prompt,
            callback_url=callback_url,
            created_mono=now,
            created_wall=time.time(),
            preparing_end=preparing_end,
            queueing_end=queueing_end,
            processing_end=processing_end,
            outcome=outcome,
            dialect=dialect,
            model=model,
            resolution=resolution,
            duration=duration,
            ratio=ratio,
        )
        if outcome is Outcome.SUCCESS:
            file = EmulatedFile(
                file_id=self._new_id() + 10**14,
                task_id=task.task_id,
                size=config.file_size,
                created_at=int(task.created_wall + (processing_end - now)),
            )
            task.file_id = file.file_id
            self.files[file.file_id] = file
        self.tasks[task.task_id] = task
        self._active.setdefault((api_key, dialect), set()).add(task.task_id)
        self.counters.tasks_created += 1
        return task

    def find(self, task_id: str, api_key: str) -> EmulatedTask | None:
        """The task, if it exists, belongs to ``api_key`` and has not expired."""
        task = self.tasks.get(task_id)
        if task is None or task.api_key != api_key:
            return None
        if self._clock() - task.created_mono > self._config().task_ttl:
            return None
        return task

    def in_flight(self, api_key: str, dialect: Dialect) -> int:
        """Tasks of ``api_key`` on ``dialect``'s API that are queued or running now."""
        now = self._clock()
        active = self._active.setdefault((api_key, dialect), set())
        for task_id in [
            t for t in active if t not in self.tasks or self.tasks[t].status_at(now).is_terminal
        ]:
            active.discard(task_id)
        return len(active)

    def file(self, file_id: int, api_key: str) -> EmulatedFile | None:
        """The file, if its task is finished and belongs to ``api_key``."""
        file = self.files.get(file_id)
        if file is None:
            return None
        task = self.tasks.get(file.task_id)
        if task is None or task.api_key != api_key or self._clock() < task.end:
            return None
        return file
