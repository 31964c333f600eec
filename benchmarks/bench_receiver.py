"""Status updates per second: the receiver against a bare aiohttp handler and the docs' FastAPI.

Run: ``.venv/bin/python -m benchmarks.bench_receiver [--seconds 10] [--connections 32]``.
Needs ``wrk`` (Debian package ``wrk``) as the load generator. Each server runs alone in its
own process, loaded by wrk over loopback with the same status-update body; meanwhile a probe
POSTs one challenge every 20 ms and records its latency. Targets: >= 0.85x the bare aiohttp
handler, >= 3x the FastAPI sample, challenge p99 < 10 ms under load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

TASK_ID = "106916112212032"
SECRET = "benchmark-secret-0123456789abcdef"  # noqa: S105 - a benchmark's own key
NONCE = "benchnonce01"
UPDATE = {
    "task_id": TASK_ID,
    "status": "processing",
    "file_id": "",
    "base_resp": {"status_code": 0, "status_msg": "success"},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the servers under test (each run with --serve in its own process) ----------------------


async def serve_bare(port: int) -> None:
    """The baseline: a bare aiohttp handler doing the same echo/ack."""

    async def handle(request: web.Request) -> web.Response:
        data = await request.json()
        challenge = data.get("challenge")
        if challenge is not None:
            return web.json_response({"challenge": challenge})
        return web.json_response({"status": "success"})

    app = web.Application()
    app.router.add_post("/cb/{nonce}/{token}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


async def serve_receiver(port: int) -> None:
    """The SDK's receiver, standalone, handing updates to a real client's registry."""
    from minimax_s2v import Client
    from minimax_s2v.receiver import CallbackReceiver

    receiver = CallbackReceiver(f"http://127.0.0.1:{port}/cb", secret=SECRET)
    async with Client("benchmark-key", base_url="http://127.0.0.1:9", receiver=receiver) as client:
        receiver.expect(NONCE, client)
        client.registry.track(TASK_ID)
        await receiver.bind(NONCE, TASK_ID)
        async with receiver.serve("127.0.0.1", port):
            await asyncio.Event().wait()


# -- the load -------------------------------------------------------------------------------


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server under test exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server under test did not start")


@contextmanager
def server(kind: str) -> Iterator[str]:
    """Start one server; yield the URL its status updates go to."""
    port = _free_port()
    if kind == "fastapi":
        # Run as the docs run it: uvicorn's defaults (its access log goes to /dev/null here).
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.docs_sample_receiver:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        path = "/get_callback"
    else:
        command = [
            sys.executable,
            "-m",
            "benchmarks.bench_receiver",
            "--serve",
            kind,
            "--port",
            str(port),
        ]
        path = f"/cb/{NONCE}/{_token()}"
    process = subprocess.Popen(  # noqa: S603 - our own commands
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for(port, process)
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _token() -> str:
    from minimax_s2v.receiver import CallbackReceiver

    return CallbackReceiver("http://x/cb", secret=SECRET).callback_url(NONCE).name


def run_wrk(url: str, seconds: int, connections: int) -> float:
    """Requests per second wrk achieved with the status-update body."""
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(UPDATE))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("non2xx %d\\n", summary.errors.status))\n'
        "end\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        output = subprocess.run(  # noqa: S603 - wrk from the system
            [
                shutil.which("wrk") or "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "-s",
                file.name,
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        Path(file.name).unlink()
    non2xx = int(re.search(r"non2xx (\d+)", output).group(1))  # type: ignore[union-attr]
    if non2xx:
        raise RuntimeError(f"{non2xx} answers were not 2xx from {url}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]


async def probe_challenges(url: str, stop: asyncio.Event) -> list[float]:
    """POST a challenge every 20 ms until ``stop``; return the latencies in seconds."""
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            started = time.perf_counter()
            async with session.post(url, json={"challenge": "probe"}) as response:
                body = await response.json()
            latencies.append(time.perf_counter() - started)
            if body != {"challenge": "probe"}:
                raise RuntimeError(f"bad echo {body}")
            await asyncio.sleep(0.02)
    return latencies


async def measure(kind: str, seconds: int, connections: int) -> tuple[float, float]:
    """(requests/s under wrk, challenge p99 in ms during the load) for one server."""
    with server(kind) as url:
        run_wrk(url, 1, connections)  # warm up
        stop = asyncio.Event()
        probe = asyncio.ensure_future(probe_challenges(url, stop))
        rate = await asyncio.to_thread(run_wrk, url, seconds, connections)
        stop.set()
        latencies = sorted(await probe)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000
    return rate, p99


async def main(seconds: int, connections: int, rounds: int) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    results: dict[str, list[tuple[float, float]]] = {"bare": [], "receiver": [], "fastapi": []}
    for round_number in range(rounds):
        for kind, rows in results.items():
            rate, p99 = await measure(kind, seconds, connections)
            rows.append((rate, p99))
            print(
                f"round {round_number + 1} {kind:>8}: {rate:8.0f} req/s, challenge p99 {p99:.2f} ms"
            )
    best = {kind: max(rate for rate, _ in rows) for kind, rows in results.items()}
    worst_p99 = {kind: max(p99 for _, p99 in rows) for kind, rows in results.items()}
    # Each round measures the three servers back to back: the ratio within a round is the
    # least disturbed by the machine's noise; the median over rounds is reported.
    to_bare = statistics.median(
        r[0] / b[0] for r, b in zip(results["receiver"], results["bare"], strict=True)
    )
    to_fastapi = statistics.median(
        r[0] / f[0] for r, f in zip(results["receiver"], results["fastapi"], strict=True)
    )
    labels = {
        "bare": "bare aiohttp handler",
        "receiver": "minimax_s2v receiver",
        "fastapi": "docs FastAPI sample (uvicorn)",
    }
    print(f"{'server':<32}{'best req/s':>12}{'challenge p99 ms':>18}")
    for kind, label in labels.items():
        print(f"{label:<32}{best[kind]:>12.0f}{worst_p99[kind]:>18.2f}")
    print(
        f"ratios (median of {rounds} rounds): receiver/bare {to_bare:.2f}x (target >= 0.85x), "
        f"receiver/fastapi {to_fastapi:.2f}x (target >= 3x); receiver challenge p99 "
        f"{worst_p99['receiver']:.2f} ms under load, worst round (target < 10 ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", choices=("bare", "receiver"))
    parser.add_argument("--port", type=int)
    options = parser.parse_args()
    if options.serve == "bare":
        asyncio.run(serve_bare(options.port))
    elif options.serve == "receiver":
        asyncio.run(serve_receiver(options.port))
    else:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        asyncio.run(main(options.seconds, options.connections, options.rounds))
