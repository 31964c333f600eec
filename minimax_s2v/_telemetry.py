"""Tracing hooks: what the client and the tracker call around each operation, and its no-op.

:class:`Telemetry` is the interface; :data:`NO_TELEMETRY` does nothing at almost no cost and
is what every client uses unless tracing is on (``Client(tracing=True)`` or
``MINIMAX_S2V_TRACING=1``), in which case the client loads the OpenTelemetry implementation
from :mod:`minimax_s2v._otel`. Only that module imports ``opentelemetry``, and only when
tracing is on.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._stats import HistogramRecorder
    from .receiver import CallbackSink, ReceiverCore

__all__ = [
    "CURRENT_SPAN",
    "NO_TELEMETRY",
    "TRACING_ENV",
    "SpanLike",
    "Telemetry",
    "answered",
]

#: The environment variable that turns tracing on when ``Client(tracing=...)`` is not given.
TRACING_ENV = "MINIMAX_S2V_TRACING"

AttributeValue = str | int | float | bool


class SpanLike(Protocol):
    """The span of one operation, as the SDK's code fills it in."""

    def set(self, key: str, value: AttributeValue | None) -> None:
        """Set an attribute (``None`` leaves it unset)."""
        ...

    def task(self, task_id: str, model: str | None = None) -> None:
        """Name the operation's task; later spans about it join this span's trace."""
        ...

    def response(self, trace_id: str | None, http_status: int | None) -> None:
        """Record an API answer's ``Trace-Id`` and HTTP status."""
        ...

    def outcome(self, outcome: str) -> None:
        """Record how the operation ended (``created``, ``success``, ``applied``, …)."""
        ...


class Telemetry(Protocol):
    """Spans around operations and metrics over the counters (see :mod:`minimax_s2v._otel`)."""

    enabled: bool

    def span(
        self, name: str, *, task_id: str | None = None, model: str | None = None
    ) -> AbstractContextManager[SpanLike]:
        """A span around an operation; an exception leaving it is recorded on it."""
        ...

    def traced(
        self, name: str, task_id: str, start: Callable[[], Coroutine[Any, Any, None]]
    ) -> Coroutine[Any, Any, None]:
        """The coroutine ``start()`` makes, run inside a span ``name`` about ``task_id``."""
        ...

    def sink(self, sink: CallbackSink) -> CallbackSink:
        """``sink``, with a span around each callback it takes."""
        ...

    def watch(self, stats: Callable[[], Any], time_to_result: HistogramRecorder) -> None:
        """Report a client's counters as metrics (``stats`` is its bound ``stats`` method)."""
        ...

    def watch_receiver(self, receiver: ReceiverCore) -> None:
        """Report a receiver's counters as metrics."""
        ...

    def retire(self) -> None:
        """The client closed: keep its final counts in the totals, stop reading it."""
        ...


#: The span of the innermost traced operation in this context (set only when tracing is on),
#: so that the transport can note each answer's ``Trace-Id`` on it.
CURRENT_SPAN: ContextVar[SpanLike | None] = ContextVar("minimax_s2v_span", default=None)


def answered(trace_id: str | None, http_status: int) -> None:
    """Note an API answer on the current operation's span, if one is being traced."""
    span = CURRENT_SPAN.get()
    if span is not None:
        span.response(trace_id, http_status)


class _NullSpan:
    __slots__ = ()

    def set(self, key: str, value: AttributeValue | None) -> None:
        pass

    def task(self, task_id: str, model: str | None = None) -> None:
        pass

    def response(self, trace_id: str | None, http_status: int | None) -> None:
        pass

    def outcome(self, outcome: str) -> None:
        pass


class _NullScope:
    __slots__ = ()

    def __enter__(self) -> SpanLike:
        return _NULL_SPAN

    def __exit__(self, *exc_info: object) -> None:
        return None


_NULL_SPAN = _NullSpan()
_NULL_SCOPE = _NullScope()


class _NoTelemetry:
    """Tracing off: every hook returns at once (one shared no-op span)."""

    enabled = False

    def span(
        self, name: str, *, task_id: str | None = None, model: str | None = None
    ) -> AbstractContextManager[SpanLike]:
        return _NULL_SCOPE

    def traced(
        self, name: str, task_id: str, start: Callable[[], Coroutine[Any, Any, None]]
    ) -> Coroutine[Any, Any, None]:
        return start()

    def sink(self, sink: CallbackSink) -> CallbackSink:
        return sink

    def watch(self, stats: Callable[[], Any], time_to_result: HistogramRecorder) -> None:
        pass

    def watch_receiver(self, receiver: ReceiverCore) -> None:
        pass

    def retire(self) -> None:
        pass


NO_TELEMETRY: Telemetry = _NoTelemetry()
