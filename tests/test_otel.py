"""OpenTelemetry spans and metrics (the [otel] extra), read with the SDK's in-memory exporters."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from minimax_s2v import APIError
from minimax_s2v.emulator import Durations, Emulator, Endpoint, EndpointFaults, FaultPlan
from tests.client_setup import face_request, fast_client
from tests.processes import ROOT, free_port
from tests.receiver_setup import SECRET, served_client

sdk = pytest.importorskip("opentelemetry.sdk")

from opentelemetry import metrics, trace  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode  # noqa: E402

from minimax_s2v._otel import scrub  # noqa: E402

_EXPORTER = InMemorySpanExporter()
_READER = InMemoryMetricReader()


@pytest.fixture(autouse=True)
def providers() -> Iterator[InMemorySpanExporter]:
    """The process's providers (set once: OpenTelemetry allows no second global provider)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def _everything(span: ReadableSpan) -> list[str]:
    """Every string a span carries: its name, attributes, events and their attributes."""
    texts = [span.name, *(f"{k}={v!s}" for k, v in (span.attributes or {}).items())]
    for event in span.events:
        texts.append(event.name)
        texts.extend(f"{k}={v!s}" for k, v in (event.attributes or {}).items())
    if span.status.description:
        texts.append(span.status.description)
    return texts


def _metric_points() -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
    """The metrics collected now: (name, attributes) -> value (a sum, or a histogram's count)."""
    points: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
    data = _READER.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            if scope.scope.name != "minimax_s2v":
                continue
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, tuple(sorted((point.attributes or {}).items())))
                    points[key] = getattr(point, "value", None)
                    if points[key] is None:
                        points[key] = point.count  # type: ignore[union-attr]
    return points


async def test_one_generation_traced_in_one_trace(tmp_path: Path) -> None:
    """generate() with callbacks: submit, callbacks, confirmation, retrieve, download, one trace."""
    durations = Durations(preparing=0.2, processing=0.2)
    async with Emulator(durations=durations) as emu:
        async with served_client(emu, tracing=True) as (client, _):
            generation = await client.generate(face_request(), tmp_path / "out.mp4")
            await emu.callbacks.drain(5)
            callback_url = URL(emu.task(generation.task_id).callback_url or "")
    spans = _EXPORTER.get_finished_spans()
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    for name in (
        "minimax.generate",
        "minimax.submit",
        "minimax.callback",
        "minimax.confirm",
        "minimax.query",
        "minimax.retrieve",
        "minimax.download",
    ):
        assert name in by_name, (name, sorted(by_name))
    # One trace for the task: everything hangs under generate().
    assert len({span.context.trace_id for span in spans}) == 1
    root = by_name["minimax.generate"][0]
    assert root.parent is None
    callbacks = [s.attributes or {} for s in by_name["minimax.callback"]]
    assert {a["minimax.outcome"] for a in callbacks} == {"applied"}
    statuses = {a["minimax.task.status"] for a in callbacks}
    assert statuses == {"processing", "success"}
    confirm = by_name["minimax.confirm"][0]
    query = by_name["minimax.query"][0]
    assert query.parent is not None
    assert query.parent.span_id == confirm.context.span_id
    for span in spans:
        attributes = span.attributes or {}
        assert attributes["gen_ai.provider.name"] == "minimax"
        if span.name not in {"minimax.retrieve", "minimax.download"}:
            assert attributes["minimax.task_id"] == generation.task_id, span.name
            assert attributes["gen_ai.request.model"] == "S2V-01", span.name
    for name in ("minimax.submit", "minimax.query", "minimax.retrieve"):
        attributes = by_name[name][0].attributes or {}
        assert attributes["http.response.status_code"] == 200
        assert len(str(attributes["minimax.trace_id"])) >= 16
    assert by_name["minimax.submit"][0].attributes["minimax.outcome"] == "created"  # type: ignore[index]
    download = by_name["minimax.download"][0].attributes or {}
    assert download["minimax.download.bytes"] == emu.config.file_size
    assert download["url.full"] == str(generation.file.download_url.with_query(None))
    # Nothing carries the key, the callback secret, the callback URL's token or a query.
    token = callback_url.name
    for span in spans:
        for text in _everything(span):
            for secret in (emu.api_key, SECRET, token, "token=", "?"):
                assert secret not in text, (span.name, text)


async def test_a_failed_call_carries_its_trace_id() -> None:
    """A refused query: the span is an error, with the answer's Trace-Id and code."""
    async with Emulator() as emu:
        async with fast_client(emu, tracing=True) as client:
            with pytest.raises(APIError) as info:
                await client.get_task("123456789")
    (span,) = [s for s in _EXPORTER.get_finished_spans() if s.name == "minimax.query"]
    attributes = span.attributes or {}
    assert span.status.status_code is StatusCode.ERROR
    assert info.value.trace_id
    assert attributes["minimax.trace_id"] == info.value.trace_id
    assert attributes["error.type"] == type(info.value).__name__
    assert attributes["minimax.error_code"] == info.value.code
    assert attributes["minimax.outcome"] == "error"
    assert span.events[0].name == "exception"


async def test_a_broken_download_records_no_signed_url(tmp_path: Path) -> None:
    """Downloads that keep breaking: the error on the span names no query string."""
    faults = FaultPlan(endpoints={Endpoint.DOWNLOAD: EndpointFaults(http_5xx=1.0)})
    async with Emulator(faults=faults) as emu:
        async with fast_client(emu, tracing=True) as client:
            task = await client.submit(face_request())
            await task.wait(timeout=10)
            with pytest.raises(Exception):  # noqa: B017, PT011 - whichever the SDK raises
                await client.download(task, tmp_path / "x.mp4")
    (span,) = [s for s in _EXPORTER.get_finished_spans() if s.name == "minimax.download"]
    assert span.status.status_code is StatusCode.ERROR
    for text in _everything(span):
        assert "token=" not in text, text
        assert "?" not in text, text


def test_scrub_removes_queries_and_fragments() -> None:
    """An error message's URLs keep their host and path only."""
    text = "GET https://cdn.example/v.mp4?Expires=1&Signature=abc failed; see http://h/p#frag"
    assert scrub(text) == "GET https://cdn.example/v.mp4 failed; see http://h/p"


async def test_metrics_equal_stats() -> None:
    """The metrics move by exactly what stats() says this client and receiver did."""
    before = _metric_points()
    async with Emulator(durations=Durations(preparing=0.1)) as emu:
        async with served_client(emu, tracing=True) as (c, receiver):
            tasks = await asyncio.gather(*(c.submit(face_request()) for _ in range(5)))
            await asyncio.gather(*(t.wait(timeout=10) for t in tasks))
            await emu.callbacks.drain(5)
            following = _metric_points()[("minimax.tasks.following", ())]
        stats = c.stats()
        received = receiver.stats()
        after = _metric_points()

    def delta(name: str, **attributes: str) -> Any:
        key = (name, tuple(sorted(attributes.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert following == 0
    assert delta("minimax.submissions", outcome="created") == stats.submissions.created == 5
    assert delta("minimax.queries", purpose="confirmation") == stats.confirmations
    assert delta("minimax.queries", purpose="fallback_poll") == stats.fallback_polls
    assert delta("minimax.retrievals") == stats.retrievals
    assert delta("minimax.tasks.finished", outcome="succeeded") == stats.succeeded == 5
    assert delta("minimax.callbacks", outcome="applied") == received.callbacks.applied
    assert delta("minimax.challenges") == received.challenges.count == 5
    assert delta("minimax.challenge.duration") == 5
    assert delta("minimax.task.duration") == 5


def test_prometheus_example() -> None:
    """examples/prometheus_metrics.py serves the standard exporter's page with our metrics."""
    pytest.importorskip("opentelemetry.exporter.prometheus")
    port = free_port()
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "prometheus_metrics.py"),
            "--port",
            str(port),
            "--count",
            "3",
            "--scrape",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    page = json.loads(done.stdout.strip().splitlines()[-1])
    assert page['minimax_submissions_total{outcome="created"}'] == 3.0
    assert page['minimax_callbacks_total{outcome="applied"}'] == 6.0  # processing, success
    assert page["minimax_challenges_total"] == 3.0
    assert page["minimax_challenge_duration_seconds_count"] == 3.0
    assert page['minimax_tasks_finished_total{outcome="succeeded"}'] == 3.0
