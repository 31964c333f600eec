"""Retrying, in one place, shaped like stamina.

What is retried stays with the caller; how is decided here: a :class:`RetryPolicy` says which
errors, how many tries, for how long and how long to wait between them; :class:`Retrying`
runs the attempts of one operation under it (stamina's ``retry_context``), and
:func:`retry_call` is the caller built on it. :func:`set_testing` makes every retry go at
once, for test suites (stamina's ``set_testing()``), instead of a switch on the policy.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar

import attrs

from ._errors import ConfigurationError, MiniMaxError, RateLimitError
from ._validators import number

__all__ = [
    "Attempt",
    "RetryPolicy",
    "Retrying",
    "is_retryable",
    "is_testing",
    "retry_call",
    "set_testing",
]

logger = logging.getLogger("minimax_s2v")
T = TypeVar("T")


def is_retryable(error: BaseException) -> bool:
    """The default: errors whose class says a retry may succeed (transport, 5xx, 1002, …)."""
    return isinstance(error, MiniMaxError) and error.retryable


def _predicate_or_classes(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # Only an Exception is ever retried (a cancellation, KeyboardInterrupt or SystemExit
    # always goes through): naming another class would silently retry nothing.
    classes = isinstance(value, tuple) and all(
        isinstance(kind, type) and issubclass(kind, Exception) for kind in value
    )
    if not classes and (isinstance(value, tuple) or not callable(value)):
        raise ConfigurationError(
            f"{type(instance).__name__}.{attribute.name} must be a predicate or a tuple of "
            f"Exception classes (a BaseException such as CancelledError or KeyboardInterrupt "
            f"is never retried), not {value!r}"
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
        on: which errors to retry: a predicate, or :class:`Exception` classes (a
            cancellation, ``KeyboardInterrupt`` or ``SystemExit`` is never retried).
        attempts: tries in all, the first included (1 turns retrying off).
        timeout: seconds after which no new try starts (``None``: no limit).

    In a test suite, :func:`set_testing` makes retries go at once.
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

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that makes one try and no retry."""
        return cls(attempts=1)

    def should_retry(self, error: BaseException) -> bool:
        """Whether ``error`` is one this policy retries."""
        if isinstance(self.on, tuple):
            return isinstance(error, self.on)
        return self.on(error)

    def backoff(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` after ``error``."""
        delay = self.wait_initial * self.wait_exp_base ** (attempt - 1)
        delay = min(self.wait_max, delay + random.uniform(0, self.wait_jitter))  # noqa: S311
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.retry_after_max))
        return delay


class _Testing:
    """Whether retries wait (see :func:`set_testing`); usable as a context manager."""

    enabled = False

    def __init__(self, previous: bool) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        _Testing.enabled = self._previous


def set_testing(testing: bool = True) -> AbstractContextManager[None]:
    """Make every retry of this SDK go at once (``True``) or wait as its policy says again.

    For test suites, as stamina's ``set_testing()``: the policies (attempts, which errors,
    the waits they would compute) stay as configured; only the waiting is skipped. Used as a
    context manager, the previous setting comes back at the end of the block::

        with minimax_s2v.set_testing():
            ...
    """
    previous = _Testing.enabled
    _Testing.enabled = testing
    return _Testing(previous)


def is_testing() -> bool:
    """Whether :func:`set_testing` has turned retry waits off."""
    return _Testing.enabled


class Attempt:
    """One try of an operation being retried: ``with attempt:`` reports how it ended.

    An error the policy retries is swallowed there (the next attempt follows); any other, or
    one after the last attempt, leaves the block as it was raised.
    """

    __slots__ = ("_retrying", "number")

    def __init__(self, retrying: Retrying, number: int) -> None:
        self._retrying = retrying
        #: 1 for the first try.
        self.number = number

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return self._retrying.failed(exc) if exc is not None else self._retrying.succeeded()


class Retrying:
    """The attempts of one operation under a policy (stamina's ``retry_context``).

    ::

        async for attempt in Retrying(policy, what="query of task 1"):
            with attempt:
                return await query()

    Args:
        policy: when to give up and how long to wait.
        what: the operation, for the log line of each retry.
        should_retry: narrows which errors are retried (on top of the policy's ``on``).
        on_retry: called before each retry (to count it).
        started: the :func:`time.monotonic` reading when the operation began (the policy's
            ``timeout`` counts from it); now if omitted.
    """

    __slots__ = (
        "_delay",
        "_done",
        "_failures",
        "_on_retry",
        "_policy",
        "_should_retry",
        "_started",
        "_what",
    )

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        what: str,
        should_retry: Callable[[BaseException], bool] | None = None,
        on_retry: Callable[[], object] | None = None,
        started: float | None = None,
    ) -> None:
        self._policy = policy
        self._what = what
        self._should_retry = should_retry
        self._on_retry = on_retry
        self._started = time.monotonic() if started is None else started
        self._failures = 0
        self._delay = 0.0
        self._done = False

    def __aiter__(self) -> Retrying:
        return self

    async def __anext__(self) -> Attempt:
        if self._done:
            raise StopAsyncIteration
        if self._failures:
            await self.wait()
        return Attempt(self, self._failures + 1)

    async def wait(self) -> None:
        """Wait the delay the last failure was given (none under :func:`set_testing`)."""
        if self._delay > 0 and not _Testing.enabled:
            await asyncio.sleep(self._delay)

    def succeeded(self) -> bool:
        """The current attempt worked: no more follow."""
        self._done = True
        return False

    def failed(self, error: BaseException) -> bool:
        """Whether to try again after ``error`` (then the wait is set and the retry logged).

        Code with a loop of its own (downloads) calls this after each failed try, and
        :meth:`wait` before the next one.
        """
        if not isinstance(error, Exception):  # a cancellation, KeyboardInterrupt…
            self._done = True
            return False
        self._failures += 1
        policy = self._policy
        allowed = (
            self._should_retry(error) if self._should_retry is not None else True
        ) and policy.should_retry(error)
        delay = policy.backoff(self._failures, error) if allowed else 0.0
        late = (
            policy.timeout is not None and time.monotonic() - self._started + delay > policy.timeout
        )
        if not allowed or self._failures >= policy.attempts or late:
            self._done = True
            return False
        logger.log(
            logging.WARNING if self._failures >= 2 else logging.INFO,
            "%s failed (%s); retry %d of %d in %.2fs",
            self._what,
            error,
            self._failures,
            policy.attempts - 1,
            0.0 if _Testing.enabled else delay,
        )
        if self._on_retry is not None:
            self._on_retry()
        self._delay = delay
        return True

    def spent(self) -> bool:
        """Count a failed try to be tried again at once, whatever the error: whether any is left.

        For failures the caller repairs itself (a download whose answer did not fit starts
        over): they use up the policy's attempts like the others, with no wait.
        """
        self._failures += 1
        self._delay = 0.0
        if self._failures >= self._policy.attempts:
            self._done = True
            return False
        return True

    @property
    def failures(self) -> int:
        """Tries that failed so far."""
        return self._failures


async def retry_call(
    policy: RetryPolicy,
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    should_retry: Callable[[BaseException], bool] | None = None,
    on_retry: Callable[[], object] | None = None,
) -> T:
    """Run ``call`` under ``policy``, as :class:`Retrying` decides (stamina's caller).

    ``should_retry`` narrows which errors are retried; ``on_retry`` is called before each
    retry (to count it). The last error is re-raised unwrapped. Hot callers pass a
    :func:`functools.partial`, not a lambda: a lambda's variables become cells of the
    calling frame on every call, held for as long as the call is in flight.
    """
    # Retrying's loop written out, its state made at the first failure: this wraps every
    # API call and journal write, and nearly all of them work the first time. The error is
    # only ever named inside its except block (no frame keeps it: no reference cycle).
    started = time.monotonic()
    retrying: Retrying | None = None
    while True:
        try:
            return await call()
        except Exception as error:
            if retrying is None:
                retrying = Retrying(
                    policy,
                    what=what,
                    should_retry=should_retry,
                    on_retry=on_retry,
                    started=started,
                )
            if not retrying.failed(error):
                raise
        await retrying.wait()
