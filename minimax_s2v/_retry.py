"""Retry policy, shaped like stamina: explicit, capped, jittered, bounded by attempts and time."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs

from ._errors import ConfigurationError, MiniMaxError, RateLimitError
from ._validators import instance_of, number

__all__ = ["RetryPolicy", "is_retryable", "retry_call"]

logger = logging.getLogger("minimax_s2v")
T = TypeVar("T")


def is_retryable(error: BaseException) -> bool:
    """The default: errors whose class says a retry may succeed (transport, 5xx, 1002, …)."""
    return isinstance(error, MiniMaxError) and error.retryable


def _predicate_or_classes(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    classes = isinstance(value, tuple) and all(
        isinstance(kind, type) and issubclass(kind, BaseException) for kind in value
    )
    if not classes and (isinstance(value, tuple) or not callable(value)):
        raise ConfigurationError(
            f"{type(instance).__name__}.{attribute.name} must be a predicate or a tuple of "
            f"exception classes, not {value!r}"
        )


@attrs.frozen
class RetryPolicy:
    """When and how to retry a call that may safely be repeated.

    Waits grow as ``wait_initial * wait_exp_base ** (attempt - 1)`` plus up to ``wait_jitter``
    seconds of random jitter, capped at ``wait_max``; a server's ``Retry-After`` is honoured up
    to ``retry_after_max``. Retrying stops after ``attempts`` tries or once ``timeout``
    seconds have passed, whichever comes first; the last error is then re-raised unwrapped.

    Submissions are never retried when the request may have created a task: see
    :class:`~minimax_s2v.SubmissionUncertainError`.

    Args:
        on: which errors to retry: a predicate, or exception classes.
        attempts: tries in all, the first included (1 turns retrying off).
        timeout: seconds after which no new try starts (``None``: no limit).
        wait: ``False`` retries at once: for tests.
    """

    on: Callable[[BaseException], bool] | tuple[type[BaseException], ...] = attrs.field(
        default=is_retryable, validator=_predicate_or_classes
    )
    attempts: int = attrs.field(default=5, validator=number(at_least=1, integer=True))
    timeout: float | None = attrs.field(default=90.0, validator=number(above=0, optional=True))
    wait_initial: float = attrs.field(default=0.5, validator=number(at_least=0))
    wait_max: float = attrs.field(default=15.0, validator=number(at_least=0))
    wait_jitter: float = attrs.field(default=1.0, validator=number(at_least=0))
    wait_exp_base: float = attrs.field(default=2.0, validator=number(at_least=1))
    retry_after_max: float = attrs.field(default=60.0, validator=number(at_least=0))
    wait: bool = attrs.field(default=True, validator=instance_of(bool, "True or False"))

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that makes one try and no retry."""
        return cls(attempts=1)

    def without_waiting(self) -> RetryPolicy:
        """The same policy, retrying at once (for tests)."""
        return attrs.evolve(self, wait=False)

    def should_retry(self, error: BaseException) -> bool:
        """Whether ``error`` is one this policy retries."""
        if isinstance(self.on, tuple):
            return isinstance(error, self.on)
        return self.on(error)

    def backoff(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` after ``error``."""
        if not self.wait:
            return 0.0
        delay = self.wait_initial * self.wait_exp_base ** (attempt - 1)
        delay = min(self.wait_max, delay + random.uniform(0, self.wait_jitter))  # noqa: S311
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.retry_after_max))
        return delay


async def retry_call(
    policy: RetryPolicy,
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    should_retry: Callable[[BaseException], bool] | None = None,
    on_retry: Callable[[], object] | None = None,
) -> T:
    """Run ``call`` under ``policy``; ``should_retry`` narrows which errors are retried.

    ``on_retry`` is called before each retry (to count it).
    """
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except Exception as error:
            allowed = (
                should_retry(error) if should_retry is not None else policy.should_retry(error)
            )
            if not allowed or attempt >= policy.attempts:
                raise
            delay = policy.backoff(attempt, error)
            if policy.timeout is not None and time.monotonic() - started + delay > policy.timeout:
                raise
            logger.log(
                logging.WARNING if attempt >= 2 else logging.INFO,
                "%s failed (%s); retry %d of %d in %.2fs",
                what,
                error,
                attempt,
                policy.attempts - 1,
                delay,
            )
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(delay)
