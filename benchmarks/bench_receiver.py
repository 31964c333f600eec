"""Status updates per second: the receiver against a bare aiohttp handler and the docs' FastAPI.

Run: ``.venv/bin/python -m benchmarks.bench_receiver [--rounds 4] [--slices 4] [--seconds 2]``;
``--connections 8,16,32 --only bare,receiver --slices 3`` loads each server with each of
several connection counts in turn (the default is 32) and reports each; ``--think 20`` makes
each connection wait 20 ms on average between requests, for a load below saturation.
Needs ``wrk`` (Debian package ``wrk``) as the load generator, and ``redis-server`` for the
RedisStore row. Each server runs alone in its own process, loaded by wrk over loopback;
every request is a new update of one of 60,000 tasks, each at its own callback URL (the
tasks go through Preparing, Queueing and Processing; a round sends fewer than the 180,000
updates that makes), so the receiver does the full work for each and a durable store
really records each one. Meanwhile a probe POSTs one challenge every 20 ms and records its
latency.

A round starts the five servers afresh, then loads them in turn for a short slice each,
several times over, in an order reversed every other slice: the machine's speed drifts
(it is shared), and servers loaded within seconds of each other see the same machine. The
ratios are medians over the slices of the ratios within each slice. Targets: >= 0.85x the
bare aiohttp handler, >= 3x the FastAPI sample, challenge p99 < 10 ms under load; with
SQLiteStore >= 0.5x bare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp
import attrs
from aiohttp import web

from tests.processes import free_port, wait_for_port

SECRET = "benchmark-secret-0123456789abcdef"  # noqa: S105 - a benchmark's own key
TASKS = 60_000  # distinct callback URLs and tasks
# Each task is sent these in turn (all of them to the first task, then to the next…): each
# update is news to the receiver, for TASKS * 3 updates, more than a round sends.
STATUSES = ("preparing", "queueing", "processing")


def nonce(i: int) -> str:
    return f"benchnonce{i:08d}"


def task_id(i: int) -> str:
    return str(10**14 + i)


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


async def serve_receiver(port: int, store_kind: str, where: str) -> None:
    """The SDK's receiver, standalone, handing updates to a real client and its store."""
    from datetime import UTC, datetime

    from minimax_s2v import Client, RetryPolicy
    from minimax_s2v.receiver import CallbackReceiver
    from minimax_s2v.stores import (
        MemoryStore,
        SQLiteStore,
        StoredSubmission,
        SubmissionState,
        TaskStore,
    )
    from minimax_s2v.stores.redis import RedisStore

    store: TaskStore = MemoryStore(max_events=10)
    if store_kind == "sqlite":
        store = SQLiteStore(where)
    elif store_kind == "redis":
        store = RedisStore(where)
    receiver = CallbackReceiver(f"http://127.0.0.1:{port}/cb", secret=SECRET)
    # The API is out of reach (nothing listens on port 9): the tasks are followed by
    # callbacks alone, as a service's would be between its polls.
    client = Client(
        "benchmark-key",
        base_url="http://127.0.0.1:9",
        receiver=receiver,
        store=store,
        retry=RetryPolicy.never(),
    )
    async with client:
        # The tasks, submitted "earlier", come back from the journal through resume().
        await store.open()
        now = datetime.now(UTC)

        async def journal(i: int) -> None:
            submission = StoredSubmission(
                nonce(i), "benchmark", {}, None, SubmissionState.SENDING, now
            )
            await store.save_submission(submission)
            await store.mark_submitted(nonce(i), task_id(i))

        for start in range(0, TASKS, 1000):
            await asyncio.gather(*(journal(i) for i in range(start, min(TASKS, start + 1000))))
        await client.resume()  # each reconciling query is refused at once
        async with receiver.serve("127.0.0.1", port):
            await asyncio.Event().wait()


# -- the load -------------------------------------------------------------------------------


def _command(kind: str, port: int, workdir: Path, redis_url: str) -> list[str]:
    if kind == "fastapi":
        # Run as the docs run it: uvicorn's defaults.
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.docs_sample_receiver:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    where = {"sqlite": str(workdir / f"{port}.db"), "redis": redis_url}.get(kind, "")
    return [
        sys.executable,
        "-m",
        "benchmarks.bench_receiver",
        "--serve",
        kind,
        "--port",
        str(port),
        "--where",
        where,
    ]


@contextmanager
def servers(kinds: list[str], workdir: Path, redis_url: str) -> Iterator[dict[str, str]]:
    """Start one server of each kind, each in its own process; yield their base URLs."""
    with ExitStack() as stack:
        started: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
        for kind in kinds:
            port = free_port()
            process = subprocess.Popen(  # noqa: S603 - our own commands
                _command(kind, port, workdir, redis_url),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            stack.callback(_stop, process)
            started[kind] = (port, process)
        for port, process in started.values():
            wait_for_port(port, process, timeout=240)  # each resumes 60,000 tasks first
        yield {kind: f"http://127.0.0.1:{port}" for kind, (port, _) in started.items()}


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)


def callback_paths(kind: str) -> list[str]:
    """The path of each task's callback URL on ``kind``'s server."""
    if kind == "fastapi":
        return ["/get_callback"] * TASKS
    from minimax_s2v.receiver import CallbackReceiver

    receiver = CallbackReceiver("http://x/cb", secret=SECRET)
    return [receiver.callback_url(nonce(i)).path for i in range(TASKS)]


def wrk_script(paths: list[str], targets: Path, think_ms: int = 0) -> str:
    """A wrk script sending each task's updates, each to the task's own URL.

    The (path, task id) pairs are written to ``targets``, one per line, and read by the
    script (a Lua table literal this large exceeds LuaJIT's limits). Update ``k`` is status
    ``k // TASKS`` of task ``k % TASKS``. wrk is given the first ``k`` after ``--``, so that
    each slice goes on where the server's last one stopped. With ``think_ms``, each
    connection waits a random time of that mean (exponential) after an answer before
    sending again: the load is then about connections / think time, below what the server
    can take, arriving much as callbacks of many independent tasks would, instead of as
    much as it takes.
    """
    targets.write_text("".join(f"{path} {task_id(i)}\n" for i, path in enumerate(paths)))
    head = '{"task_id":"'
    middle = '","status":"'
    tail = '","file_id":"","base_resp":{"status_code":0,"status_msg":"success"}}'
    statuses = ", ".join(f'"{status}"' for status in STATUSES)
    return (
        "targets = {}\n"
        f'for line in io.lines("{targets}") do\n'
        '  local path, id = line:match("^(%S+) (%S+)$")\n'
        "  targets[#targets + 1] = {path, id}\n"
        "end\n"
        f"statuses = {{{statuses}}}\n"
        "k = 0\n"
        "init = function(args)\n"
        "  k = tonumber(args[1]) or 0\n"
        "end\n"
        'headers = {["Content-Type"] = "application/json"}\n'
        "request = function()\n"
        "  local n = k % (#targets * #statuses)\n"
        "  k = k + 1\n"
        "  local t = targets[n % #targets + 1]\n"
        "  local status = statuses[math.floor(n / #targets) + 1]\n"
        f"  local body = '{head}' .. t[2] .. '{middle}' .. status .. '{tail}'\n"
        '  return wrk.format("POST", t[1], headers, body)\n'
        "end\n"
        # Exponential think times: connections that waited alike would stay in step and
        # send in bursts; these make arrivals close to those of independent tasks.
        + (
            "delay = function()\n"
            f"  return math.floor(-{think_ms} * math.log(1 - math.random()) + 0.5)\n"
            "end\n"
            if think_ms
            else ""
        )
        + "done = function(summary, latency, requests)\n"
        '  io.write(string.format("non2xx %d\\n", summary.errors.status))\n'
        "end\n"
    )


def run_wrk(
    url: str, script: Path, seconds: int, connections: int, first: int
) -> tuple[int, float]:
    """Load ``url`` for ``seconds``, starting at task ``first``: (requests, requests/s)."""
    output = subprocess.run(  # noqa: S603 - wrk from the system
        [
            shutil.which("wrk") or "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            url,
            "--",
            str(first),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    non2xx = int(re.search(r"non2xx (\d+)", output).group(1))  # type: ignore[union-attr]
    if non2xx:
        raise RuntimeError(f"{non2xx} answers were not 2xx from {url}")
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return requests, float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]


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


def p99_ms(latencies: list[float]) -> float:
    """The 99th percentile of ``latencies`` (seconds), in milliseconds."""
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000


@attrs.define
class Slice:
    """One server's share of one slice: requests answered, per second, challenge latencies."""

    requests: int
    rate: float
    latencies: list[float]


async def load(
    url: str, probe_path: str, script: Path, *, seconds: int, connections: int, first: int
) -> Slice:
    """Load one server for one slice, probing its challenge latency meanwhile."""
    stop = asyncio.Event()
    probe = asyncio.ensure_future(probe_challenges(url + probe_path, stop))
    requests, rate = await asyncio.to_thread(run_wrk, url, script, seconds, connections, first)
    stop.set()
    return Slice(requests, rate, await probe)


KINDS = {
    "bare": "bare aiohttp handler",
    "receiver": "minimax_s2v receiver (memory)",
    "fastapi": "docs FastAPI sample (uvicorn)",
    "sqlite": "receiver + SQLiteStore",
    "redis": "receiver + RedisStore",
}


def _median_ratio(slices: dict[str, list[Slice]], kind: str, baseline: str) -> float:
    return statistics.median(
        a.rate / b.rate for a, b in zip(slices[kind], slices[baseline], strict=True)
    )


async def main(
    rounds: int,
    slices_per_round: int,
    seconds: int,
    counts: list[int],
    only: list[str],
    *,
    think_ms: int = 0,
) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    from tests.redis_server import redis_server

    kinds = [kind for kind in KINDS if kind in only]
    loads = [(kind, connections) for kind in kinds for connections in counts]
    slices: dict[tuple[str, int], list[Slice]] = {load: [] for load in loads}
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as redis_url:
        scripts = {}
        for name in ("bare", "fastapi"):
            scripts[name] = Path(tmp) / f"{name}.lua"
            targets = Path(tmp) / f"{name}.targets"
            scripts[name].write_text(wrk_script(callback_paths(name), targets, think_ms))
        probe_path = callback_paths("bare")[TASKS - 1]  # a challenge to a verified URL
        for round_number in range(rounds):
            with servers(kinds, Path(tmp), redis_url) as urls:
                sent = dict.fromkeys(kinds, 0)  # updates each server has been sent
                for slice_number in range(slices_per_round):
                    # Forward, then backward: a machine that speeds up or slows down
                    # during the run favours no server (and no connection count).
                    forward = (round_number * slices_per_round + slice_number) % 2 == 0
                    for kind, connections in loads if forward else reversed(loads):
                        done = await load(
                            urls[kind],
                            "/get_callback" if kind == "fastapi" else probe_path,
                            scripts["fastapi" if kind == "fastapi" else "bare"],
                            seconds=seconds,
                            connections=connections,
                            first=sent[kind],
                        )
                        # Skip the updates that were in flight when wrk stopped.
                        sent[kind] += done.requests + connections
                        slices[kind, connections].append(done)
                        p99 = p99_ms(done.latencies)
                        print(
                            f"round {round_number + 1} slice {slice_number + 1} {kind:>8}"
                            f"{f' c={connections}' if len(counts) > 1 else ''}: "
                            f"{done.rate:8.0f} req/s, challenge p99 {p99:6.2f} ms"
                        )
                if any(count > TASKS * len(STATUSES) for count in sent.values()):
                    print("note: a server was sent an update twice; raise TASKS")
    for connections in counts:
        if len(counts) > 1:
            print(f"-- {connections} connections")
        report({kind: slices[kind, connections] for kind in kinds}, rounds * slices_per_round)
    if len(counts) > 1:
        summary = (
            f"{connections}: "
            + ", ".join(f"{kind} {pooled_p99(slices[kind, connections]):.2f} ms" for kind in kinds)
            for connections in counts
        )
        print("challenge p99 over all probes, by connections: " + "; ".join(summary))


def pooled_p99(rows: list[Slice]) -> float:
    """The p99 of every probe of ``rows`` taken together, in milliseconds."""
    return p99_ms([latency for row in rows for latency in row.latencies])


def report(slices: dict[str, list[Slice]], count: int) -> None:
    """Print the table and, last, the ratios."""
    print(
        f"{'server':<32}{'median req/s':>13}{'p99 ms: all probes':>20}"
        f"{'median slice':>14}{'worst slice':>13}{'probes':>8}"
    )
    for kind, rows in slices.items():
        per_slice = [p99_ms(row.latencies) for row in rows]
        print(
            f"{KINDS[kind]:<32}{statistics.median(row.rate for row in rows):>13.0f}"
            f"{pooled_p99(rows):>20.2f}{statistics.median(per_slice):>14.2f}"
            f"{max(per_slice):>13.2f}{sum(len(row.latencies) for row in rows):>8}"
        )
    parts = []
    targets = {
        ("receiver", "bare"): " (target >= 0.85x)",
        ("receiver", "fastapi"): " (target >= 3x)",
        ("sqlite", "bare"): " (target >= 0.5x)",
        ("redis", "bare"): "",
    }
    for (kind, baseline), target in targets.items():
        if kind in slices and baseline in slices:
            ratio = _median_ratio(slices, kind, baseline)
            parts.append(f"{kind}/{baseline} {ratio:.2f}x{target}")
    if "receiver" in slices:
        rows = slices["receiver"]
        parts.append(
            f"receiver challenge p99 under load {pooled_p99(rows):.2f} ms over all "
            f"{sum(len(row.latencies) for row in rows)} probes (target < 10 ms)"
        )
    print(f"ratios (median of {count} slices): " + ", ".join(parts))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4, help="fresh servers each round")
    parser.add_argument("--slices", type=int, default=4, help="slices per server per round")
    parser.add_argument("--seconds", type=int, default=2, help="length of a slice")
    parser.add_argument(
        "--connections",
        default="32",
        help="wrk's connections; several (e.g. 8,16,32) load each server with each in turn",
    )
    parser.add_argument(
        "--think",
        type=int,
        default=0,
        metavar="MS",
        help="each wrk connection waits a random MS ms on average between requests "
        "(a load below saturation)",
    )
    parser.add_argument(
        "--only", default=",".join(KINDS), help="servers to run, e.g. bare,receiver"
    )
    parser.add_argument("--serve", choices=("bare", "receiver", "sqlite", "redis"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--where", default="")
    options = parser.parse_args()
    if options.serve == "bare":
        asyncio.run(serve_bare(options.port))
    elif options.serve is not None:
        asyncio.run(serve_receiver(options.port, options.serve, options.where))
    else:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        asyncio.run(
            main(
                options.rounds,
                options.slices,
                options.seconds,
                [int(count) for count in options.connections.split(",")],
                options.only.split(","),
                think_ms=options.think,
            )
        )
