"""How long submitting large local faces holds the client's event loop.

Run: ``.venv/bin/python -m benchmarks.bench_loop_stall [--rounds 3] [--api v2]``.
``--api v2`` submits the same faces as MiniMax-H3 reference images (the V2 API), with the
client's V2 RPM pacing and in-flight cap turned off so that the burst is the same.

Two workloads, each a burst gathered at once: 100 submissions of a 3 MB local PNG face and
30 submissions of a 14.5 MB local PNG face (both generated here with Pillow from random
noise, so that the files really are that large). The emulator runs in its own process with
no callbacks. Meanwhile a probe on the client's event loop sleeps 5 ms in a loop and records
how much later than asked each sleep ended: that lateness is the loop's stall, the time a
callback challenge would wait before its echo. The baseline is the same probe on the same
loop while it is idle, for a second before every round of the same run (on a shared machine
it shows the noise). The last line prints the worst max stall and p99 of each workload
against the baseline's, and the median submit throughput (target: max stall <= 20 ms in
both workloads; MiniMax rejects a submission whose challenge waits past 3 s).

A full garbage collection walks every object the process holds, so its pause is the
interpreter's and grows with the whole heap, whoever allocated it: each line also gives the
longest full collection and the max stall of the sleeps no full collection overlapped (the
submissions' own work). After the rounds, three full collections are measured alone on the
idle loop (``gc.collect()``, nothing else running): the interpreter's pause for this heap,
which no client in the process can avoid when a collection lands in a burst. Each line
also gives how long the process itself held the loop at most outside full collections:
the stall less the time the loop's thread was runnable but waiting for a CPU (Linux's
``/proc/thread-self/schedstat``), which on a 2-core machine other processes take, the
emulator first. ``--gc-freeze`` calls :func:`gc.freeze` after start-up, as a
latency-sensitive service may, so that full collections skip the objects of the imports.
``--with-bare`` also runs each burst with bare aiohttp (each body built in a worker thread
and posted as one ``bytes``), for comparison.
``--emulator-nice 10`` runs the emulator at a lower CPU priority: on a 2-core machine it
otherwise takes a core from the client it stands in for a remote service of.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import attrs
from PIL import Image

from benchmarks.emulator_process import emulator_process
from minimax_s2v import AnyRequest, Client, H3Request, RateLimit, VideoRequest

KEY = "emulator-key"
PROBE_SLEEP = 0.005
TARGET = 0.020  # the longest stall allowed, in seconds
BASELINE_SECONDS = 1.0
# (name, submissions, side of a square noise PNG in px): 3 bytes per pixel, incompressible.
WORKLOADS = (("3 MB face", 100, 1000), ("14.5 MB face", 30, 2200))


@attrs.frozen
class Stalls:
    """What the probe saw: each 5 ms sleep's lateness, and the interpreter's full collections.

    ``samples`` are (start, lateness) pairs in :func:`time.perf_counter` seconds;
    ``full_collections`` the (start, end) of each full garbage collection meanwhile.
    """

    samples: tuple[tuple[float, float], ...]
    full_collections: tuple[tuple[float, float], ...] = ()
    #: For each sample, how long the loop's thread was runnable but waited for a CPU (Linux
    #: ``schedstat``; zeros elsewhere): time another thread or process had the cores.
    cpu_waits: tuple[float, ...] = ()

    @property
    def worst(self) -> float:
        """The longest stall."""
        return max((late for _, late in self.samples), default=0.0)

    def _outside_collections(self) -> Iterator[tuple[float, float]]:
        """(lateness, wait for a CPU) of each sleep that no full collection overlapped."""
        waits = self.cpu_waits or (0.0,) * len(self.samples)
        for (started, late), waited in zip(self.samples, waits, strict=True):
            if not any(
                gc_start < started + PROBE_SLEEP + late and gc_end > started
                for gc_start, gc_end in self.full_collections
            ):
                yield late, waited

    @property
    def worst_outside_collections(self) -> float:
        """The longest stall of a sleep that no full collection overlapped.

        A full collection walks every object the process holds: its pause is the
        interpreter's and scales with the whole heap, whoever allocated it.
        """
        return max((late for late, _ in self._outside_collections()), default=0.0)

    @property
    def worst_held(self) -> float:
        """The longest stall outside full collections, less the loop thread's waits for a CPU.

        What the process itself held the loop for (its code, and its threads' hold on the
        GIL): while the thread is runnable but waiting for a core, other processes have
        the machine (here the emulator, which stands in for a remote API).
        """
        return max((late - waited for late, waited in self._outside_collections()), default=0.0)

    @property
    def longest_collection(self) -> float:
        """The longest full collection."""
        return max((end - start for start, end in self.full_collections), default=0.0)

    @property
    def p99(self) -> float:
        """The 99th percentile stall."""
        ordered = sorted(late for _, late in self.samples)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


class Probe:
    """Sleeps 5 ms in a loop on the running event loop, recording how late each wake-up is."""

    def __init__(self) -> None:
        self._samples: list[tuple[float, float]] = []
        self._waits: list[float] = []  # the loop thread's waits for a CPU, one per sample
        self._stop = asyncio.Event()
        self._job: asyncio.Task[None] | None = None
        self._gc_started = 0.0
        #: When each full garbage collection ran meanwhile (an interpreter pause, reported
        #: apart from the stalls of the submissions' own work).
        self.full_collections: list[tuple[float, float]] = []

    async def __aenter__(self) -> Probe:
        gc.callbacks.append(self._on_gc)
        self._job = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._job is not None:
            await self._job
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.full_collections.append((self._gc_started, time.perf_counter()))

    async def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            waited = _cpu_wait()
            await asyncio.sleep(PROBE_SLEEP)
            self._samples.append((started, max(0.0, time.perf_counter() - started - PROBE_SLEEP)))
            self._waits.append(_cpu_wait() - waited)

    @property
    def stalls(self) -> Stalls:
        """The stalls recorded so far."""
        return Stalls(tuple(self._samples), tuple(self.full_collections), tuple(self._waits))


_SCHEDSTAT = Path("/proc/thread-self/schedstat")


def _cpu_wait() -> float:
    """Seconds the calling thread has spent runnable, waiting for a CPU (0.0 if unknown)."""
    try:
        # Linux: nanoseconds on a CPU, nanoseconds runnable and waiting for one, time slices.
        return int(_SCHEDSTAT.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def make_face(directory: Path, side: int) -> Path:
    """A ``side`` x ``side`` PNG of random noise: its size is its pixel data, ~3 bytes/px."""
    path = directory / f"noise-{side}.png"
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    image.save(path, format="PNG", compress_level=1)
    return path


async def baseline() -> Stalls:
    """The probe on an idle loop."""
    async with Probe() as probe:
        await asyncio.sleep(BASELINE_SECONDS)
    return probe.stalls


async def idle_collection() -> Stalls:
    """The probe on an idle loop across one full collection: the interpreter's own pause.

    :func:`gc.collect` does the work of an automatic full collection, on the same heap,
    with no submission running: what any client in this process stalls when one lands.
    """
    async with Probe() as probe:
        await asyncio.sleep(0.05)
        gc.collect()
        await asyncio.sleep(0.05)
    return probe.stalls


async def burst(url: str, face: Path, count: int, api: str = "v1") -> tuple[Stalls, float]:
    """Submit ``count`` requests of ``face`` at once; the probe's stalls and submits/s."""
    prompt = "A woman smiles at the camera."
    request: AnyRequest = VideoRequest(subject=str(face), prompt=prompt)
    if api == "v2":
        request = H3Request(prompt, references=[str(face)])
    limits = RateLimit(v2_submit_rpm=None, v2_max_in_flight=None)
    async with Client(KEY, base_url=url, rate_limit=limits) as client:
        async with Probe() as probe:
            started = time.perf_counter()
            tasks = await asyncio.gather(*(client.submit(request) for _ in range(count)))
            elapsed = time.perf_counter() - started
        del tasks  # only their number matters
    return probe.stalls, count / elapsed


async def bare_burst(url: str, face: Path, count: int) -> tuple[Stalls, float]:
    """The same burst with bare aiohttp: each body built in a worker thread, sent as bytes."""
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def build() -> bytes:
        image = "data:image/png;base64," + base64.b64encode(face.read_bytes()).decode()
        subject = [{"type": "character", "image": [image]}]
        body = {"model": "S2V-01", "prompt": "A woman smiles.", "subject_reference": subject}
        return json.dumps(body).encode()

    async with aiohttp.ClientSession() as session, Probe() as probe:

        async def one() -> None:
            body = await asyncio.to_thread(build)
            async with session.post(
                f"{url}/v1/video_generation", data=body, headers=headers
            ) as response:
                await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        elapsed = time.perf_counter() - started
    return probe.stalls, count / elapsed


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


async def main(
    rounds: int, nice: int, api: str = "v1", *, freeze: bool = False, with_bare: bool = False
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        faces = {
            name: make_face(Path(tmp), side) for name, _, side in WORKLOADS
        }  # made before the clock starts
        for name, path in faces.items():
            print(f"{name}: {path.stat().st_size / 1e6:.2f} MB on disk")
        with emulator_process(nice=nice) as url:
            await burst(url, faces[WORKLOADS[0][0]], 5, api)  # warm up connections and imports
            if freeze:
                # What a latency-sensitive service can do once started: the objects of its
                # imports and set-up are never walked by a full collection again.
                gc.collect()
                gc.freeze()
            idles: list[Stalls] = []
            results: dict[str, list[tuple[Stalls, float]]] = {name: [] for name, *_ in WORKLOADS}
            for round_number in range(rounds):
                # The idle baseline in every round: on a shared machine it shows the noise.
                idles.append(await baseline())
                print(
                    f"round {round_number + 1} {'idle loop':>17}: max {_ms(idles[-1].worst)}, "
                    f"p99 {_ms(idles[-1].p99)}"
                )
                for name, count, _ in WORKLOADS:
                    if with_bare:
                        bare, bare_rate = await bare_burst(url, faces[name], count)
                        print(
                            f"round {round_number + 1} {name:>13} x{count}, bare aiohttp: "
                            f"max {_ms(bare.worst)}, p99 {_ms(bare.p99)}, "
                            f"{bare_rate:6.1f} submits/s, "
                            f"{len(bare.full_collections)} full gc"
                        )
                    stalls, rate = await burst(url, faces[name], count, api)
                    results[name].append((stalls, rate))
                    collections = stalls.full_collections
                    pauses = (
                        f", {len(collections)} full gc (longest "
                        f"{stalls.longest_collection * 1000:.1f} ms; max outside them "
                        f"{stalls.worst_outside_collections * 1000:.1f} ms)"
                        if collections
                        else ""
                    )
                    print(
                        f"round {round_number + 1} {name:>13} x{count}: max {_ms(stalls.worst)}, "
                        f"p99 {_ms(stalls.p99)}, {rate:6.1f} submits/s{pauses}, held by the "
                        f"process {stalls.worst_held * 1000:.1f} ms"
                    )
            # After all the rounds, so that no collection made here changes when the automatic
            # ones fall in the bursts (each resets the count that triggers the next); a first
            # one, not measured, frees what the rounds left, so that the three walk one heap.
            gc.collect()
            heap = len(gc.get_objects())
            collections_alone = [await idle_collection() for _ in range(3)]
    idle = Stalls(tuple(sample for stalls in idles for sample in stalls.samples))
    alone = [stalls.worst for stalls in collections_alone]  # the loop's stall
    walks = [stalls.longest_collection for stalls in collections_alone]  # the collection's own
    summary = []
    own_worst = 0.0  # the submissions' own stall: outside the interpreter's full collections
    for name, count, _ in WORKLOADS:
        runs = results[name]
        worst = max(stalls.worst for stalls, _ in runs)
        outside = max(stalls.worst_outside_collections for stalls, _ in runs)
        own_worst = max(own_worst, outside)
        held = max(stalls.worst_held for stalls, _ in runs)
        gc_count = sum(len(stalls.full_collections) for stalls, _ in runs)
        longest = max(stalls.longest_collection for stalls, _ in runs)
        p99 = max(stalls.p99 for stalls, _ in runs)
        rate = statistics.median(rate for _, rate in runs)
        summary.append(
            f"{name} x{count}: max stall {worst * 1000:.1f} ms "
            f"({worst / max(idle.worst, 1e-6):.0f}x idle), {outside * 1000:.1f} ms outside "
            f"{gc_count} full gc (longest {longest * 1000:.1f} ms), of which the process "
            f"held the loop {held * 1000:.1f} ms (the rest it waited for a CPU), "
            f"p99 {p99 * 1000:.1f} ms, "
            f"{rate:.1f} submits/s"
        )
    print(
        "; ".join(summary)
        + f"; idle loop max {idle.worst * 1000:.1f} ms, p99 {idle.p99 * 1000:.1f} ms"
        + f"; one full gc alone on the idle loop: stall {min(alone) * 1000:.1f}-"
        + f"{max(alone) * 1000:.1f} ms, the collection {min(walks) * 1000:.1f}-"
        + f"{max(walks) * 1000:.1f} ms"
        + f" (target: max stall <= 20 ms in both, {rounds} rounds, {api} API"
        + (", gc.freeze() after start-up)" if freeze else ")")
    )
    verdict = "met" if own_worst <= TARGET else "NOT met"
    print(
        f"the submissions' own stall, outside full collections: {own_worst * 1000:.1f} ms "
        f"at worst, <= {TARGET * 1000:.0f} ms {verdict}; a full collection alone on the idle "
        f"loop: {max(walks) * 1000:.1f} ms at worst, walking {heap} objects"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--emulator-nice",
        type=int,
        default=0,
        help="run the emulator at this CPU niceness (on 2 cores it competes with the client)",
    )
    parser.add_argument("--api", choices=("v1", "v2"), default="v1")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() after start-up, as a latency-sensitive service may",
    )
    parser.add_argument(
        "--with-bare", action="store_true", help="also run each burst with bare aiohttp"
    )
    options = parser.parse_args()
    asyncio.run(
        main(
            options.rounds,
            options.emulator_nice,
            options.api,
            freeze=options.gc_freeze,
            with_bare=options.with_bare,
        )
    )
