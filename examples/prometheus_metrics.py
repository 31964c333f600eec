"""The SDK's metrics on a Prometheus page, through OpenTelemetry's standard exporter.

Runs a few generations against the bundled emulator with a callback receiver, with
``Client(tracing=True)``, while ``prometheus_client`` serves ``/metrics``::

    pip install 'minimax-s2v[otel]' opentelemetry-sdk opentelemetry-exporter-prometheus
    python examples/prometheus_metrics.py --port 9464     # then open http://127.0.0.1:9464/metrics

With ``--scrape`` it reads its own page once the generations are done, prints the main
figures as one JSON line and exits (the test does that).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile

import aiohttp
from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families

from minimax_s2v import Client, VideoRequest
from minimax_s2v.emulator import Emulator
from minimax_s2v.receiver import CallbackReceiver


def setup_prometheus(port: int) -> None:
    """The standard wiring: a Prometheus reader on the global meter provider, and its page."""
    start_http_server(port, addr="127.0.0.1")
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))


async def generate(count: int) -> None:
    async with Emulator() as emu:
        receiver = CallbackReceiver()
        async with (
            receiver.serve("127.0.0.1", 0),
            Client(emu.api_key, base_url=emu.url, receiver=receiver, tracing=True) as client,
        ):
            request = VideoRequest(subject="https://example.com/face.jpg", prompt="A wink.")
            with tempfile.TemporaryDirectory() as out:
                await asyncio.gather(
                    *(client.generate(request, dest=f"{out}/") for _ in range(count))
                )
            print(receiver.stats().summary())


async def scrape(port: int) -> dict[str, float]:
    """The main figures of the page, by sample name (and outcome, where there is one)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        page = await response.text()
    figures: dict[str, float] = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if not sample.name.startswith("minimax_"):
                continue
            outcome = sample.labels.get("outcome")
            name = f'{sample.name}{{outcome="{outcome}"}}' if outcome else sample.name
            figures[name] = figures.get(name, 0.0) + sample.value
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9464, help="where /metrics is served")
    parser.add_argument("--count", type=int, default=5, help="generations to run")
    parser.add_argument("--scrape", action="store_true", help="print the page's figures, exit")
    args = parser.parse_args()
    setup_prometheus(args.port)
    await generate(args.count)
    if args.scrape:
        print(json.dumps(await scrape(args.port), sort_keys=True))
        return
    print(f"metrics at http://127.0.0.1:{args.port}/metrics; Ctrl-C to stop")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
