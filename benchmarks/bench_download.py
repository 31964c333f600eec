"""Streaming a 1 GiB video: the SDK's download against a bare aiohttp read loop.

Run: ``.venv/bin/python benchmarks/bench_download.py [--size-mib 1024] [--rounds 3]``.
Each measurement runs in a fresh process so its peak RSS growth is its own. Targets: peak
RSS growth < 30 MB, throughput >= 0.9x the bare loop's. The last line prints the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
    "sdk": "minimax_s2v download (fsync, default)",
    "sdk-nofsync": "minimax_s2v download (fsync_downloads=0)",
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
            elif mode == "bare-write":
                size = 0
                with dest.open("wb") as file:  # the naive baseline: blocking writes
                    async with session.get(video.download_url) as response:
                        async for chunk in response.content.iter_chunked(256 * 1024):
                            file.write(chunk)
                            size += len(chunk)
            else:
                size = 0
                async with session.get(video.download_url) as response:
                    async for chunk in response.content.iter_chunked(256 * 1024):
                        size += len(chunk)
            elapsed = time.perf_counter() - started
            peak = _rss_kib("VmHWM")
    return {"seconds": elapsed, "bytes": size, "rss_growth_mib": (peak - baseline) / 1024}


def measure_in_child(mode: str, url: str, file_id: str, dest: Path) -> dict[str, float]:
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


def main(size_mib: int, rounds: int) -> None:
    size = size_mib * 1024 * 1024
    with emulator_process(["--file-size", str(size)]) as url, tempfile.TemporaryDirectory() as tmp:
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
                    f"round {round_number + 1} {mode:>11}: {result['seconds']:.2f}s, "
                    f"peak RSS +{result['rss_growth_mib']:.1f} MiB"
                )
    best = {mode: min(r["seconds"] for r in results) for mode, results in rows.items()}
    growth = {mode: max(r["rss_growth_mib"] for r in results) for mode, results in rows.items()}
    print(f"{'client':<40}{'best s':>8}{'MiB/s':>9}{'max RSS growth MiB':>20}")
    for mode, label in MODES.items():
        print(f"{label:<40}{best[mode]:>8.2f}{size_mib / best[mode]:>9.0f}{growth[mode]:>20.1f}")
    print(
        f"ratios of throughput, {size_mib} MiB file: "
        f"sdk/bare-read {best['bare'] / best['sdk']:.2f}x (target >= 0.9x), "
        f"sdk-nofsync/bare-read {best['bare'] / best['sdk-nofsync']:.2f}x, "
        f"sdk-nofsync/bare-write {best['bare-write'] / best['sdk-nofsync']:.2f}x; "
        f"sdk peak RSS growth {max(growth['sdk'], growth['sdk-nofsync']):.1f} MiB (target < 30 MB)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, mode, url, file_id, dest = sys.argv
        print(json.dumps(asyncio.run(_measure(mode, url, file_id, Path(dest)))))
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--size-mib", type=int, default=1024)
        parser.add_argument("--rounds", type=int, default=3)
        options = parser.parse_args()
        main(options.size_mib, options.rounds)
