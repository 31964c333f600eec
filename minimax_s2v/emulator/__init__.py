"""A local MiniMax S2V-01 service for tests, demos and offline development.

It plays the documented API (submit, query, retrieve, download), the task life cycle, the
callback protocol (challenge, then status updates) and the documented quirks, and it can
inject faults from a seeded plan. Run it in-process (``async with Emulator() as emu``), as
``python -m minimax_s2v.emulator``, or through the ``minimax_emulator`` pytest fixture.
"""

from __future__ import annotations

from ._callbacks import Delivery
from ._config import (
    CallbackFaults,
    Durations,
    EmulatorConfig,
    Endpoint,
    EndpointFaults,
    FaultPlan,
)
from ._engine import Counters
from ._server import Emulator
from ._state import ChallengeLatency, CounterState, EmulatorState, TaskState
from ._thread import EmulatorThread

__all__ = [
    "CallbackFaults",
    "ChallengeLatency",
    "CounterState",
    "Counters",
    "Delivery",
    "Durations",
    "Emulator",
    "EmulatorConfig",
    "EmulatorState",
    "EmulatorThread",
    "Endpoint",
    "EndpointFaults",
    "FaultPlan",
    "TaskState",
]
