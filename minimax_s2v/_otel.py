"""OpenTelemetry spans and metrics (the ``[otel]`` extra; imported only when tracing is on).

Spans: ``minimax.submit``, ``minimax.query``, ``minimax.retrieve``, ``minimax.download``,
``minimax.callback`` (each status callback the receiver hands to the client),
``minimax.confirm`` (the query and retrieve that confirm a callback's final status) and
``minimax.generate`` (around a whole :meth:`Client.generate`). Each carries
``gen_ai.provider.name = "minimax"``, ``gen_ai.request.model`` when known, ``minimax.task_id``,
``minimax.trace_id`` (the answer's ``Trace-Id`` header), ``http.response.status_code`` and
``minimax.outcome``; an error is recorded on the span with its type and a message whose URLs
lost their query strings (download URLs are signed). No span carries the API key, the callback
secret, a callback URL or a query string.

Spans about one task join one trace: the submission's span is remembered by task id (a bounded
number of them), and a later span about that task with no traced operation around it (a
callback, a fallback poll) becomes its child.

Metrics: the counters of ``client.stats()`` and ``receiver.stats()`` as observable counters
(read when the exporter collects them, so counting costs nothing more), tasks followed now as
an up-down counter, and two histograms recorded as events happen: ``minimax.challenge.duration``
and ``minimax.task.duration`` (submission to final status). The instruments are created once
per process on the global meter provider; the figures of every traced client and receiver are
added up, a closed client's kept in the totals.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode

from ._errors import APIError
from ._stats import (
    CHALLENGE_BUCKETS,
    RESULT_BUCKETS,
    ClientStats,
    HistogramRecorder,
    ReceiverCounts,
)
from ._telemetry import CURRENT_SPAN, AttributeValue, SpanLike

if TYPE_CHECKING:
    from ._models import TaskSnapshot
    from .receiver import CallbackSink, CallbackVerdict, ReceiverCore

__all__ = ["OpenTelemetry", "client_values", "receiver_values", "scrub"]

SCOPE = "minimax_s2v"
PROVIDER = "minimax"
_REMEMBERED_TASKS = 50_000  # task id -> its trace, for spans about it later (oldest dropped)
_URL_TAIL = re.compile(r"(\w+://[^\s?#'\"]*)[?#][^\s'\"]*")

_KINDS = {
    "minimax.submit": SpanKind.CLIENT,
    "minimax.query": SpanKind.CLIENT,
    "minimax.retrieve": SpanKind.CLIENT,
    "minimax.download": SpanKind.CLIENT,
    "minimax.callback": SpanKind.SERVER,
}


def scrub(text: str) -> str:
    """``text`` with every URL's query string and fragment removed."""
    return _URL_TAIL.sub(r"\1", text)


class _Span:
    """A recording span, as :class:`~minimax_s2v._telemetry.SpanLike`."""

    __slots__ = ("_owner", "_span", "outcome_set")

    def __init__(self, owner: OpenTelemetry, span: trace.Span) -> None:
        self._owner = owner
        self._span = span
        self.outcome_set = False

    def set(self, key: str, value: AttributeValue | None) -> None:
        if value is not None:
            self._span.set_attribute(key, value)

    def task(self, task_id: str, model: str | None = None) -> None:
        self._span.set_attribute("minimax.task_id", task_id)
        self._owner.remember(task_id, self._span.get_span_context(), model)

    def response(self, trace_id: str | None, http_status: int | None) -> None:
        if trace_id:
            self._span.set_attribute("minimax.trace_id", trace_id)
        if http_status is not None:
            self._span.set_attribute("http.response.status_code", http_status)

    def outcome(self, outcome: str) -> None:
        self.outcome_set = True
        self._span.set_attribute("minimax.outcome", outcome)

    def error(self, error: BaseException) -> None:
        name = type(error).__name__
        span = self._span
        span.set_attribute("error.type", name)
        if not self.outcome_set:
            self.outcome("error")
        if isinstance(error, APIError):
            self.response(error.trace_id, error.http_status)
            if error.code is not None:
                span.set_attribute("minimax.error_code", error.code)
        message = scrub(str(error))[:500]
        span.add_event("exception", {"exception.type": name, "exception.message": message})
        span.set_status(Status(StatusCode.ERROR, name))


class _Scope:
    """The context manager of one span: current while open, errors recorded on exit."""

    __slots__ = ("_cm", "_model", "_name", "_owner", "_span", "_task_id", "_token")

    def __init__(
        self, owner: OpenTelemetry, name: str, task_id: str | None, model: str | None
    ) -> None:
        self._owner = owner
        self._name = name
        self._task_id = task_id
        self._model = model

    def __enter__(self) -> SpanLike:
        owner = self._owner
        attributes: dict[str, AttributeValue] = {"gen_ai.provider.name": PROVIDER}
        context = None
        links: list[Link] = []
        model = self._model
        if self._task_id is not None:
            attributes["minimax.task_id"] = self._task_id
            remembered = owner.recall(self._task_id)
            if remembered is not None:
                span_context, known_model = remembered
                model = model or known_model
                current = trace.get_current_span()
                if not current.is_recording():
                    # Nothing traced around it (a callback, a poll): join the task's trace.
                    context = trace.set_span_in_context(NonRecordingSpan(span_context))
                elif current.get_span_context().trace_id != span_context.trace_id:
                    links.append(Link(span_context))  # e.g. inside the web server's own span
        if model is not None:
            attributes["gen_ai.request.model"] = model
        self._cm = owner.tracer.start_as_current_span(
            self._name,
            context=context,
            kind=_KINDS.get(self._name, SpanKind.INTERNAL),
            attributes=attributes,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        )
        span = _Span(owner, self._cm.__enter__())
        self._span = span
        self._token = CURRENT_SPAN.set(span)
        return span

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        CURRENT_SPAN.reset(self._token)
        if error is not None:
            self._span.error(error)
        self._cm.__exit__(kind, error, traceback)


# A verdict in the words of receiver.stats() (and of the minimax.callbacks metric).
_CALLBACK_OUTCOMES = {"recorded": "applied", "unknown": "not_found"}


class _TracedSink:
    """A callback sink with a ``minimax.callback`` span around each delivery."""

    def __init__(self, owner: OpenTelemetry, sink: CallbackSink) -> None:
        self._owner = owner
        self._sink = sink

    async def deliver(self, nonce: str, snapshot: TaskSnapshot) -> CallbackVerdict:
        with self._owner.span("minimax.callback", task_id=snapshot.task_id) as span:
            span.set("minimax.task.status", snapshot.status.value.lower())
            verdict = await self._sink.deliver(nonce, snapshot)
            span.set("http.response.status_code", verdict.http_status)
            span.outcome(_CALLBACK_OUTCOMES.get(verdict.value, verdict.value))
            return verdict


class OpenTelemetry:
    """Tracing and metrics through OpenTelemetry's API (one per client)."""

    enabled = True

    def __init__(self) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            own = version("minimax-s2v")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            own = "unknown"
        self.tracer = trace.get_tracer(SCOPE, own)
        self._tasks: OrderedDict[str, tuple[SpanContext, str | None]] = OrderedDict()
        self._metrics = _instruments()
        self._source: int | None = None

    def remember(self, task_id: str, context: SpanContext, model: str | None) -> None:
        """Spans about ``task_id`` from now on join the trace of ``context``."""
        tasks = self._tasks
        tasks[task_id] = (context, model)
        tasks.move_to_end(task_id)
        while len(tasks) > _REMEMBERED_TASKS:
            tasks.popitem(last=False)

    def recall(self, task_id: str) -> tuple[SpanContext, str | None] | None:
        """The trace (and model) remembered for ``task_id``."""
        return self._tasks.get(task_id)

    def span(
        self, name: str, *, task_id: str | None = None, model: str | None = None
    ) -> AbstractContextManager[SpanLike]:
        return _Scope(self, name, task_id, model)

    async def _traced(
        self, name: str, task_id: str, start: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        with self.span(name, task_id=task_id):
            await start()

    def traced(
        self, name: str, task_id: str, start: Callable[[], Coroutine[Any, Any, None]]
    ) -> Coroutine[Any, Any, None]:
        return self._traced(name, task_id, start)

    def sink(self, sink: CallbackSink) -> CallbackSink:
        return _TracedSink(self, sink)

    def watch(self, stats: Callable[[], ClientStats], time_to_result: HistogramRecorder) -> None:
        if self._source is None:
            self._source = self._metrics.add_client(stats)
            time_to_result.observer = self._metrics.task_duration.record

    def watch_receiver(self, receiver: ReceiverCore) -> None:
        self._metrics.add_receiver(receiver)

    def retire(self) -> None:
        if self._source is not None:
            self._metrics.retire(self._source)
            self._source = None


# -- metrics ----------------------------------------------------------------------------------

Values = Iterable[tuple[str, dict[str, str], int]]


def client_values(stats: ClientStats) -> Values:
    """The cumulative figures of ``stats`` as (metric name, attributes, value)."""
    submissions = stats.submissions
    retries = stats.retries
    yield "minimax.submissions", {"outcome": "created"}, submissions.created
    yield "minimax.submissions", {"outcome": "rejected"}, submissions.rejected
    yield "minimax.submissions", {"outcome": "uncertain"}, submissions.uncertain
    yield "minimax.queries", {"purpose": "confirmation"}, stats.confirmations
    yield "minimax.queries", {"purpose": "fallback_poll"}, stats.fallback_polls
    yield "minimax.queries", {"purpose": "reconciliation"}, stats.reconciliations
    yield "minimax.retrievals", {}, stats.retrievals
    for endpoint in ("submit", "query", "retrieve", "download"):
        yield "minimax.retries", {"endpoint": endpoint}, getattr(retries, endpoint)
    yield "minimax.rate_limited", {}, stats.rate_limited
    yield "minimax.downloads", {}, stats.downloads
    yield "minimax.download.size", {}, stats.download_bytes
    yield "minimax.tasks.finished", {"outcome": "succeeded"}, stats.succeeded
    yield "minimax.tasks.finished", {"outcome": "failed"}, stats.failed
    yield "minimax.adoptions", {}, stats.adopted
    yield "minimax.conflicts", {}, stats.conflicts


def receiver_values(counts: ReceiverCounts) -> Values:
    """The cumulative figures of a receiver as (metric name, attributes, value)."""
    stats = counts.snapshot()
    callbacks = stats.callbacks
    for outcome in (
        "applied",
        "duplicate",
        "not_found",
        "conflict",
        "too_large",
        "malformed",
        "too_slow",
        "wrong_method",
        "unavailable",
    ):
        yield "minimax.callbacks", {"outcome": outcome}, getattr(callbacks, outcome)
    yield "minimax.challenges", {}, stats.challenges.count


_COUNTERS = {
    "minimax.submissions": ("{submission}", "Submissions, by outcome"),
    "minimax.queries": ("{query}", "Task queries, by purpose"),
    "minimax.retrievals": ("{retrieval}", "File retrievals after a confirmed success"),
    "minimax.retries": ("{retry}", "Calls made again after a transient failure, by endpoint"),
    "minimax.rate_limited": ("{answer}", "Rate-limit answers seen (1002, 1039, 2045, 429)"),
    "minimax.downloads": ("{download}", "Videos saved"),
    "minimax.download.size": ("By", "Bytes of the videos saved"),
    "minimax.tasks.finished": ("{task}", "Tasks ended, by outcome"),
    "minimax.adoptions": ("{task}", "Uncertain submissions whose task was adopted"),
    "minimax.conflicts": ("{callback}", "Callbacks naming another task than their URL's"),
    "minimax.callbacks": ("{callback}", "Callback requests to the receiver, by outcome"),
    "minimax.challenges": ("{challenge}", "Callback challenges echoed"),
}

_Key = tuple[str, tuple[tuple[str, str], ...]]


class _Metrics:
    """The process's instruments, and the clients and receivers they report."""

    def __init__(self) -> None:
        meter = metrics.get_meter(SCOPE)
        self._lock = threading.Lock()  # exporters collect from their own thread
        self._clients: dict[int, Callable[[], ClientStats | None]] = {}
        self._receivers: dict[int, ReceiverCounts] = {}
        self._retired: Counter[_Key] = Counter()
        self._ids = iter(range(1, 2**62))
        for name, (unit, description) in _COUNTERS.items():
            meter.create_observable_counter(
                name, callbacks=[self._observer(name)], unit=unit, description=description
            )
        meter.create_observable_up_down_counter(
            "minimax.tasks.following",
            callbacks=[self._following],
            unit="{task}",
            description="Tasks followed now (not finished)",
        )
        self.challenge_duration = meter.create_histogram(
            "minimax.challenge.duration",
            unit="s",
            description="Time to answer a callback challenge",
            explicit_bucket_boundaries_advisory=CHALLENGE_BUCKETS,
        )
        self.task_duration = meter.create_histogram(
            "minimax.task.duration",
            unit="s",
            description="Time from submission to a task's final status",
            explicit_bucket_boundaries_advisory=RESULT_BUCKETS,
        )

    def add_client(self, stats: Callable[[], ClientStats]) -> int:
        method = weakref.WeakMethod(stats)

        def read() -> ClientStats | None:
            bound = method()
            return bound() if bound is not None else None

        with self._lock:
            source = next(self._ids)
            self._clients[source] = read
        return source

    def retire(self, source: int) -> None:
        with self._lock:
            read = self._clients.pop(source, None)
            stats = read() if read is not None else None
            if stats is not None:
                for name, attributes, value in client_values(stats):
                    self._retired[name, tuple(sorted(attributes.items()))] += value

    def add_receiver(self, receiver: ReceiverCore) -> None:
        counts = receiver.counts
        with self._lock:
            if id(counts) in self._receivers:
                return
            self._receivers[id(counts)] = counts
        counts.challenges.observer = self.challenge_duration.record
        weakref.finalize(receiver, self._retire_receiver, counts)

    def _retire_receiver(self, counts: ReceiverCounts) -> None:
        with self._lock:
            if self._receivers.pop(id(counts), None) is not None:
                for name, attributes, value in receiver_values(counts):
                    self._retired[name, tuple(sorted(attributes.items()))] += value

    def _totals(self) -> Counter[_Key]:
        with self._lock:
            clients = list(self._clients.values())
            receivers = list(self._receivers.values())
            totals = Counter(self._retired)
        for read in clients:
            stats = read()
            if stats is not None:
                for name, attributes, value in client_values(stats):
                    totals[name, tuple(sorted(attributes.items()))] += value
        for counts in receivers:
            for name, attributes, value in receiver_values(counts):
                totals[name, tuple(sorted(attributes.items()))] += value
        return totals

    def _observer(
        self, metric: str
    ) -> Callable[[metrics.CallbackOptions], list[metrics.Observation]]:
        def observe(_: metrics.CallbackOptions) -> list[metrics.Observation]:
            return [
                metrics.Observation(value, dict(attributes))
                for (name, attributes), value in self._totals().items()
                if name == metric
            ]

        return observe

    def _following(self, _: metrics.CallbackOptions) -> list[metrics.Observation]:
        with self._lock:
            clients = list(self._clients.values())
        following = 0
        for read in clients:
            stats = read()
            if stats is not None:
                following += stats.following
        return [metrics.Observation(following)]


_METRICS: _Metrics | None = None
_METRICS_LOCK = threading.Lock()


def _instruments() -> _Metrics:
    global _METRICS  # noqa: PLW0603 - one set of instruments per process, made on first use
    with _METRICS_LOCK:
        if _METRICS is None:
            _METRICS = _Metrics()
        return _METRICS
