"""Downloads: atomic, resumed with Range, refreshed on 403, bounded in size, with progress."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from minimax_s2v import DownloadError, RetryPolicy, TaskStatus, VideoFile
from minimax_s2v.emulator import Emulator, Endpoint, EndpointFaults, FaultPlan
from tests.client_setup import face_request, fast_client


async def finished_file(emu: Emulator) -> tuple[VideoFile, bytes]:
    """A finished task's file, and its bytes fetched without the SDK."""
    async with fast_client(emu) as client:
        snapshot = await (await client.submit(face_request())).wait()
        assert snapshot.file_id is not None
        video = await client.get_file(snapshot.file_id)
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(video.download_url) as response:
        return video, await response.read()


async def test_download_to_directory_with_progress(tmp_path: Path) -> None:
    """A download into a directory is named after the file; progress ends at the total."""
    async with Emulator(file_size=2_000_000) as emu:
        video, expected = await finished_file(emu)
        seen: list[tuple[int, int | None]] = []
        async with fast_client(emu) as client:
            path = await client.download(
                video, tmp_path, on_progress=lambda d, t: seen.append((d, t))
            )
    assert path == tmp_path / f"{video.file_id}.mp4"
    assert path.read_bytes() == expected
    assert seen[-1] == (2_000_000, 2_000_000)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


async def test_download_by_task_and_snapshot(tmp_path: Path) -> None:
    """A finished Task or its snapshot can be downloaded; an unfinished one is refused."""
    from minimax_s2v.emulator import Durations

    async with Emulator(durations=Durations(processing=0.3)) as emu, fast_client(emu) as client:
        task = await client.submit(face_request())
        with pytest.raises(ValueError, match="has not finished"):
            await client.download(task, tmp_path / "early.mp4")
        snapshot = await task
        assert snapshot.status is TaskStatus.SUCCESS
        one = await client.download(task, tmp_path / "a.mp4")
        two = await client.download(snapshot, tmp_path / "b.mp4")
    assert one.read_bytes() == two.read_bytes()
    assert one.stat().st_size == emu.config.file_size


async def test_range_resume_after_dropped_connection(tmp_path: Path) -> None:
    """Dropped connections are resumed with Range; the file is byte-identical."""
    async with Emulator(seed=4, file_size=3_000_000) as emu:
        video, expected = await finished_file(emu)
        emu.configure(faults=FaultPlan(endpoints={Endpoint.DOWNLOAD: EndpointFaults(drop=0.5)}))
        async with fast_client(emu) as client:
            path = await client.download(video, tmp_path / "v.mp4")
    assert path.read_bytes() == expected
    downloads = emu.counters.requests["download"]
    assert downloads["fault_drop"] >= 1
    assert downloads["partial"] >= 1  # a 206 answer to a Range request finished the file


async def test_expired_url_is_refreshed(tmp_path: Path) -> None:
    """A 403 from an expired URL makes the client retrieve a fresh one and go on."""
    async with Emulator(download_ttl=0.2) as emu:
        video, expected = await finished_file(emu)
        await asyncio.sleep(0.3)
        retrieves_before = emu.counters.requests["retrieve"]["ok"]
        async with fast_client(emu) as client:
            path = await client.download(video, tmp_path / "v.mp4")
    assert path.read_bytes() == expected
    assert emu.counters.requests["download"]["expired"] == 1
    assert emu.counters.requests["retrieve"]["ok"] == retrieves_before + 1


async def test_size_limit(tmp_path: Path) -> None:
    """A video over max_bytes is refused and nothing is left on disk."""
    async with Emulator(file_size=1_000_000) as emu:
        video, _ = await finished_file(emu)
        async with fast_client(emu) as client:
            with pytest.raises(DownloadError, match="max_bytes"):
                await client.download(video, tmp_path / "v.mp4", max_bytes=500_000)
    assert list(tmp_path.iterdir()) == []


async def test_failed_download_leaves_nothing(tmp_path: Path) -> None:
    """When every attempt breaks off, the error is typed and dest is untouched."""
    from minimax_s2v import TransportError

    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"old")
    async with Emulator(file_size=1_000_000) as emu:
        video, _ = await finished_file(emu)
        emu.configure(faults=FaultPlan(endpoints={Endpoint.DOWNLOAD: EndpointFaults(http_5xx=1.0)}))
        async with fast_client(emu) as client:
            with pytest.raises(TransportError):
                await client.download(video, dest)
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


async def test_backup_url_used_when_main_fails(tmp_path: Path) -> None:
    """The backup URL is tried after the main one breaks off."""
    async with Emulator(seed=9, backup_download_url=True, file_size=500_000) as emu:
        video, expected = await finished_file(emu)
        assert video.backup_download_url is not None
        emu.configure(faults=FaultPlan(endpoints={Endpoint.DOWNLOAD: EndpointFaults(http_5xx=0.5)}))
        retry = RetryPolicy(attempts=12)
        async with fast_client(emu, retry=retry) as client:
            path = await client.download(video, tmp_path / "v.mp4")
    assert path.read_bytes() == expected
    assert emu.counters.backup_downloads >= 1
