"""How tasks are polled when no callback reports them (the loop itself is in the tracker)."""

from __future__ import annotations

import random

import attrs

from ._errors import ConfigurationError
from ._validators import number

__all__ = ["PollPolicy"]


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
