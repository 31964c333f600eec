"""Streaming a 1 GiB video: the SDK's download against bare aiohttp read loops.

Run: ``.venv/bin/python -m benchmarks.bench_download [--size-mib 1024] [--rounds 3]
[--link-mib-s 200]``. Two scenarios: the emulator on loopback serving as fast as it can, and
the emulator pacing each download to a link's rate, as a CDN does.
Each measurement runs in a fresh process so its peak RSS growth is its own, after an
``os.sync()`` so that no earlier run's writeback competes with it. Targets: peak RSS growth
< 30 MB, throughput >= 0.9x the bare loop's. Three bare loops read the same URL: one throws
the bytes away, one writes them to a file, one also fsyncs the file, as the SDK does by
default. The last line prints the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.emulator_process import emulator_process
from minimax_s2v import Client, PollPolicy, VideoRequest

KEY = "emulator-key"
MODES = {
    "bare": "bare aiohttp read loop (discards)",
    "bare-write": "bare read loop + blocking file writes",
    "bare-fsync": "bare read loop + writes + fsync",
    "sdk": "minimax_s2v download (fsync, default)",
    "sdk-nofsync": "minimax_s2v download (no fsync)",
}


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    # Writing 5 to clear_refs resets VmHWM, the peak RSS, on Linux.
    Path("/proc/self/clear_refs").write_text("5")


async def _measure(mode: str, url: str, file_id: str, dest: Path) -> dict[str, float]:
    fsync = mode != "sdk-nofsync"
    async with Client(KEY, base_url=url, polling=PollPolicy(), fsync_downloads=fsync) as client:
        video = await client.get_file(file_id)  # also warms the connection pool
        async with aiohttp.ClientSession() as session:
            _reset_peak()
            baseline = _rss_kib("VmRSS")
            started = time.perf_counter()
            if mode.startswith("sdk"):
                await client.download(video, dest)
                size = (await asyncio.to_thread(dest.stat)).st_size
            elif mode in ("bare-write", "bare-fsync"):
                size = 0
                with dest.open("wb") as file:  # the naive baseline: blocking writes
                    async with session.get(video.download_url) as response:
                        async for chunk in response.content.iter_chunked(256 * 1024):
                            file.write(chunk)
                            size += len(chunk)
                    if mode == "bare-fsync":
                        file.flush()
                        os.fsync(file.fileno())
            else:
                size = 0
                async with session.get(video.download_url) as response:
                    async for chunk in response.content.iter_chunked(256 * 1024):
                        size += len(chunk)
            elapsed = time.perf_counter() - started
            peak = _rss_kib("VmHWM")
    return {"seconds": elapsed, "bytes": size, "rss_growth_mib": (peak - baseline) / 1024}


def measure_in_child(mode: str, url: str, file_id: str, dest: Path) -> dict[str, float]:
    os.sync()  # earlier runs' dirty pages are on disk before this one starts
    output = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "benchmarks.bench_download",
            "--child",
            mode,
            url,
            file_id,
            str(dest),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    dest.unlink(missing_ok=True)
    return result


async def finished_file(url: str) -> str:
    async with Client(KEY, base_url=url) as client:
        task = await client.submit(VideoRequest(subject="https://example.com/f.jpg"))
        snapshot = await client.get_task(task.task_id)
        if snapshot.file_id is None:
            raise RuntimeError(f"task {task.task_id} has no file")
        return snapshot.file_id


def run_scenario(
    size_mib: int, rounds: int, link_mib_s: float | None
) -> tuple[dict[str, float], dict[str, float]]:
    """Best seconds and worst peak RSS growth of each mode, against one emulator."""
    size = size_mib * 1024 * 1024
    options = ["--file-size", str(size)]
    if link_mib_s is not None:
        options += ["--download-rate", str(link_mib_s * 1024 * 1024)]
    where = "loopback" if link_mib_s is None else f"{link_mib_s:g} MiB/s link"
    with emulator_process(options) as url, tempfile.TemporaryDirectory() as tmp:
        file_id = asyncio.run(finished_file(url))
        dest = Path(tmp) / "video.mp4"
        rows: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for round_number in range(rounds):
            for mode in MODES:
                result = measure_in_child(mode, url, file_id, dest)
                if result["bytes"] != size:
                    raise RuntimeError(f"{mode} got {result['bytes']} bytes, not {size}")
                rows[mode].append(result)
                print(
                    f"{where}, round {round_number + 1} {mode:>11}: {result['seconds']:.2f}s, "
                    f"peak RSS +{result['rss_growth_mib']:.1f} MiB"
                )
    best = {mode: min(r["seconds"] for r in results) for mode, results in rows.items()}
    growth = {mode: max(r["rss_growth_mib"] for r in results) for mode, results in rows.items()}
    print(f"{where:<40}{'best s':>8}{'MiB/s':>9}{'max RSS growth MiB':>20}")
    for mode, label in MODES.items():
        print(f"  {label:<38}{best[mode]:>8.2f}{size_mib / best[mode]:>9.0f}{growth[mode]:>20.1f}")
    return best, growth


def main(size_mib: int, rounds: int, link_mib_s: float) -> None:
    # Unpaced loopback: the disk is the bottleneck of anything that writes the file, so the
    # SDK is compared with bare loops doing the same writing (and fsync) as well.
    best, growth = run_scenario(size_mib, rounds, None)
    # A paced link, as from a CDN: the network is the bottleneck, as in production.
    linked, linked_growth = run_scenario(size_mib, rounds, link_mib_s)
    peak = max(growth["sdk"], growth["sdk-nofsync"], linked_growth["sdk"])
    print(
        f"ratios of throughput, {size_mib} MiB file (target >= 0.9x): "
        f"loopback sdk/bare-fsync {best['bare-fsync'] / best['sdk']:.2f}x, "
        f"sdk-nofsync/bare-write {best['bare-write'] / best['sdk-nofsync']:.2f}x, "
        f"sdk/bare-read {best['bare'] / best['sdk']:.2f}x, "
        f"sdk-nofsync/bare-read {best['bare'] / best['sdk-nofsync']:.2f}x; "
        f"{link_mib_s:g} MiB/s link sdk/bare-read {linked['bare'] / linked['sdk']:.2f}x, "
        f"sdk-nofsync/bare-read {linked['bare'] / linked['sdk-nofsync']:.2f}x; "
        f"sdk peak RSS growth {peak:.1f} MiB (target < 30 MB)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, mode, url, file_id, dest = sys.argv
        print(json.dumps(asyncio.run(_measure(mode, url, file_id, Path(dest)))))
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--size-mib", type=int, default=1024)
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument(
            "--link-mib-s", type=float, default=200.0, help="rate of the paced-link scenario"
        )
        options = parser.parse_args()
        main(options.size_mib, options.rounds, options.link_mib_s)
