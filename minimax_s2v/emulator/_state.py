"""The shapes of what the emulator reports about itself (``state()``, ``GET /_emulator/state``)."""

# No `from __future__ import annotations` here: TypedDict reads NotRequired only when
# the annotations are real objects, not strings.
from typing import NotRequired, TypedDict

__all__ = ["ChallengeLatency", "CounterState", "EmulatorState", "TaskState"]


class ChallengeLatency(TypedDict):
    """How long callback receivers took to echo challenges, in milliseconds."""

    count: int
    p50: float
    p99: float
    max: float


class CounterState(TypedDict):
    """What the emulator has seen and done.

    ``requests`` and ``faults`` map an endpoint (``submit``, ``query``, ``retrieve``,
    ``download``) to outcome counts, e.g. ``{"submit": {"ok": 3, "auth_error": 1}}``;
    ``callbacks`` counts callback deliveries by outcome.
    """

    tasks_created: int
    backup_downloads: int
    requests: dict[str, dict[str, int]]
    faults: dict[str, dict[str, int]]
    callbacks: dict[str, int]
    challenge_latency_ms: ChallengeLatency
    v2_max_in_flight_seen: int


class TaskState(TypedDict):
    """One emulated task as ``state(tasks=True)`` lists it."""

    task_id: str
    status: str
    prompt: str
    callback_url: str | None
    created_at: float


class EmulatorState(CounterState):
    """:class:`CounterState` and the tasks still sending callbacks (and every task, asked for)."""

    pending_callback_tasks: int
    v2_charged: int
    tasks: NotRequired[list[TaskState]]
