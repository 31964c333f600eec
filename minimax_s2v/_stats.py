"""What the SDK counts about itself: plain counters where events happen, frozen snapshots out.

The receiver core and the client keep a few integers each (incremented where the event
happens, cheap enough for the callback hot path) and two small fixed-bucket histograms.
``receiver.stats()`` and ``client.stats()`` copy them into the frozen, documented snapshots
defined here; the optional OpenTelemetry layer (:mod:`minimax_s2v._otel`) reports the same
figures as metrics. Nothing here imports OpenTelemetry.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import attrs

__all__ = [
    "CHALLENGE_BUCKETS",
    "RESULT_BUCKETS",
    "CallCounts",
    "CallbackStats",
    "ClientStats",
    "Histogram",
    "HistogramRecorder",
    "ReceiverCounts",
    "ReceiverStats",
    "RetryStats",
    "SubmissionStats",
]

#: Upper bounds (seconds) of the challenge-latency buckets: MiniMax allows 3 s for the echo.
CHALLENGE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 3.0)
#: Upper bounds (seconds) of the time-to-result buckets: a generation takes 1 to 5 minutes.
RESULT_BUCKETS = (30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 1800.0, 3600.0)


@attrs.frozen
class Histogram:
    """A distribution of durations, in seconds, in fixed buckets.

    Attributes:
        count: how many durations were recorded.
        total: their sum.
        max: the largest (0.0 when none).
        buckets: ``(upper bound, count)`` pairs, each counting the durations above the
            previous bound and at most this one; the last bound is ``math.inf``.
    """

    count: int
    total: float
    max: float
    buckets: tuple[tuple[float, int], ...]

    @property
    def mean(self) -> float:
        """The mean duration (0.0 when none)."""
        return self.total / self.count if self.count else 0.0


class HistogramRecorder:
    """Records durations into fixed buckets; :meth:`snapshot` gives a :class:`Histogram`.

    ``observer``, when set (by the OpenTelemetry layer), is also given each duration.
    """

    __slots__ = ("_bounds", "_counts", "count", "max", "observer", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self.observer: Callable[[float], object] | None = None

    def record(self, seconds: float) -> None:
        """Record one duration."""
        self._counts[bisect.bisect_left(self._bounds, seconds)] += 1
        self.count += 1
        self.total += seconds
        if seconds > self.max:  # noqa: PLR1730 - a comparison costs less than a call to max()
            self.max = seconds
        if self.observer is not None:
            self.observer(seconds)

    def snapshot(self) -> Histogram:
        """The durations recorded so far."""
        bounds = (*self._bounds, math.inf)
        return Histogram(
            self.count, self.total, self.max, tuple(zip(bounds, self._counts, strict=True))
        )


# -- the receiver -----------------------------------------------------------------------------


class ReceiverCounts:
    """The receiver core's counters (one attribute increment per request)."""

    __slots__ = (
        "__weakref__",
        "applied",
        "challenges",
        "conflict",
        "duplicate",
        "malformed",
        "not_found",
        "too_large",
        "too_slow",
        "unavailable",
        "wrong_method",
    )

    def __init__(self) -> None:
        self.applied = 0
        self.duplicate = 0
        self.not_found = 0
        self.conflict = 0
        self.too_large = 0
        self.malformed = 0
        self.too_slow = 0
        self.wrong_method = 0
        self.unavailable = 0
        self.challenges = HistogramRecorder(CHALLENGE_BUCKETS)

    def snapshot(self) -> ReceiverStats:
        """The counters as a :class:`ReceiverStats`."""
        return ReceiverStats(
            callbacks=CallbackStats(
                applied=self.applied,
                duplicate=self.duplicate,
                not_found=self.not_found,
                conflict=self.conflict,
                too_large=self.too_large,
                malformed=self.malformed,
                too_slow=self.too_slow,
                wrong_method=self.wrong_method,
                unavailable=self.unavailable,
            ),
            challenges=self.challenges.snapshot(),
        )


@attrs.frozen
class CallbackStats:
    """Requests to the receiver other than challenges, by what it answered.

    Attributes:
        applied: status updates recorded that were news (200): applied to a followed task,
            handed to confirmation, or kept until the submission's answer names its task.
        duplicate: status updates recorded that changed nothing (200): a status already
            known or older than it, a final status already being confirmed.
        not_found: 404: a path or token that does not verify, or a nonce nobody holds.
        conflict: 409: a held nonce whose body names another task than the nonce's.
        too_large: 413: a body over ``max_body``.
        malformed: 400: a body that is not JSON, not a callback, or could not be read.
        too_slow: 408: a body that did not arrive in time.
        wrong_method: 405: not a POST.
        unavailable: 503: after the client closed, or the store could not record the update.
    """

    applied: int
    duplicate: int
    not_found: int
    conflict: int
    too_large: int
    malformed: int
    too_slow: int
    wrong_method: int
    unavailable: int

    @property
    def rejected(self) -> int:
        """Every request refused (4xx and 503)."""
        return (
            self.not_found
            + self.conflict
            + self.too_large
            + self.malformed
            + self.too_slow
            + self.wrong_method
            + self.unavailable
        )


@attrs.frozen
class ReceiverStats:
    """What a receiver has answered so far: :meth:`CallbackReceiver.stats`.

    Attributes:
        callbacks: status updates and refused requests, by outcome.
        challenges: challenges echoed, and how long each took from the start of the
            request's handling (its body read included) to the answer.
    """

    callbacks: CallbackStats
    challenges: Histogram

    def summary(self) -> str:
        """One line for a log or a terminal."""
        c = self.callbacks
        h = self.challenges
        return (
            f"callbacks: {c.applied} applied, {c.duplicate} duplicate, {c.not_found} not found, "
            f"{c.conflict} conflict, {c.too_large} too large, {c.malformed} malformed, "
            f"{c.too_slow} too slow, {c.wrong_method} wrong method, {c.unavailable} unavailable; "
            f"challenges: {h.count} (max {h.max * 1000:.1f} ms, mean {h.mean * 1000:.1f} ms)"
        )


# -- the client -------------------------------------------------------------------------------


class CallCounts:
    """The client's counters of its own calls: retries by endpoint, downloads."""

    __slots__ = (
        "download_bytes",
        "downloads",
        "retries_download",
        "retries_query",
        "retries_retrieve",
        "retries_submit",
    )

    def __init__(self) -> None:
        self.retries_submit = 0
        self.retries_query = 0
        self.retries_retrieve = 0
        self.retries_download = 0
        self.downloads = 0
        self.download_bytes = 0

    def retry_of(self, endpoint: str) -> Callable[[], None]:
        """A function counting one retry of ``endpoint`` (submit, query, retrieve, download)."""
        name = f"retries_{endpoint}"
        if name not in self.__slots__:
            raise ValueError(f"no such endpoint: {endpoint!r}")

        def count() -> None:
            setattr(self, name, getattr(self, name) + 1)

        return count

    def retries(self) -> RetryStats:
        """The retries as a :class:`RetryStats`."""
        return RetryStats(
            submit=self.retries_submit,
            query=self.retries_query,
            retrieve=self.retries_retrieve,
            download=self.retries_download,
        )


@attrs.frozen
class SubmissionStats:
    """Submissions by outcome.

    Attributes:
        created: MiniMax answered with a task id.
        rejected: certainly created nothing: refused in-band, rate limited or not
            connected after the retries allowed, or never sent (cancelled while waiting its
            turn, or the journal refused it).
        uncertain: may or may not have created a task (:class:`SubmissionUncertainError`).
    """

    created: int
    rejected: int
    uncertain: int


@attrs.frozen
class RetryStats:
    """Calls made again after a transient failure, by endpoint (the first try not counted)."""

    submit: int
    query: int
    retrieve: int
    download: int


@attrs.frozen
class ClientStats:
    """What a client has done so far: :meth:`Client.stats`.

    Attributes:
        confirmations: queries made to confirm a callback's final status (one per task
            resolved by callbacks).
        fallback_polls: queries made because no callback reported a task in time.
        reconciliations: queries made by :meth:`Client.resume` and to check that a task a
            callback named for an uncertain submission exists.
        retrievals: file retrievals made after a confirmed success.
        adopted: uncertain submissions whose task was adopted.
        conflicts: callbacks that named another task than the one bound to their URL.
        following: tasks followed now (not finished).
        succeeded: tasks that ended in ``Success``.
        failed: tasks that ended in ``Fail``, or could not be followed (expired, key refused).
        time_to_result: submission to final status, of the tasks whose submission time is
            known (seconds, fixed buckets from 30 s to 1 h).
        submissions: submissions by outcome (created, rejected, uncertain).
        retries: calls made again after a transient failure, by endpoint.
        rate_limited: rate-limit answers seen (1002, 1039, 2045, HTTP 429), retried or not.
        downloads: videos saved.
        download_bytes: their bytes.
    """

    confirmations: int
    fallback_polls: int
    reconciliations: int
    retrievals: int
    adopted: int
    conflicts: int
    following: int
    succeeded: int
    failed: int
    time_to_result: Histogram
    submissions: SubmissionStats
    retries: RetryStats
    rate_limited: int
    downloads: int
    download_bytes: int

    @property
    def finished(self) -> int:
        """Tasks that ended (succeeded or failed)."""
        return self.succeeded + self.failed
