"""Streaming a video to disk: temp file then atomic rename, Range resume, fresh URL on 403."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from yarl import URL

from ._errors import DownloadError, TransportError, error_for_http_status
from ._models import VideoFile
from ._retry import RetryPolicy
from ._transport import Timeouts

__all__ = ["ProgressCallback", "download_video"]

logger = logging.getLogger("minimax_s2v")

#: ``on_progress(bytes_done, bytes_total_or_None)``, called as data arrives.
ProgressCallback = Callable[[int, int | None], object]

_WRITE_SIZE = 4 * 1024 * 1024  # buffer this much before each write, done off the event loop
_IOV_MAX = 1024
_MAX_REFRESHES = 3
_ADVISE = getattr(os, "posix_fadvise", None) if hasattr(os, "POSIX_FADV_DONTNEED") else None


class _Restart(Exception):  # noqa: N818 - internal control flow, never escapes
    """The server ignored our Range: start over from byte 0."""


class _Expired(Exception):  # noqa: N818 - internal control flow, never escapes
    """The URL was refused (403): fetch a fresh one."""


async def download_video(
    session: aiohttp.ClientSession,
    video: VideoFile,
    dest: Path,
    *,
    refresh: Callable[[int], Awaitable[VideoFile]],
    timeouts: Timeouts,
    retry: RetryPolicy,
    max_bytes: int | None,
    on_progress: ProgressCallback | None = None,
    fsync: bool = True,
    on_retry: Callable[[], object] | None = None,
) -> Path:
    """Stream ``video`` into ``dest`` atomically; return ``dest``.

    The bytes go to a hidden temporary file beside ``dest`` that is renamed over it only when
    complete, so ``dest`` never holds half a video. A dropped connection resumes with an HTTP
    Range request; an expired URL (HTTP 403, or past ``expires_at``) is replaced by calling
    ``refresh`` (``/v1/files/retrieve``); the backup URL is tried when the main one fails.
    With ``fsync`` the data is flushed to disk before the rename, so a crash never leaves
    ``dest`` naming a truncated file. ``on_retry`` is called before each resumption after
    a broken connection (to count it).

    Raises:
        DownloadError: larger than ``max_bytes``, or refused even with a fresh URL.
        TransportError: the connection kept failing after the policy's attempts.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    loop = asyncio.get_running_loop()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = await loop.run_in_executor(None, os.open, temp, flags, 0o644)
    state = _Progress(fd, on_progress, early_writeback=fsync)
    try:
        await _fetch_all(
            session,
            video,
            state,
            refresh=refresh,
            timeouts=timeouts,
            retry=retry,
            max_bytes=max_bytes,
            on_retry=on_retry,
        )
        await loop.run_in_executor(None, _finish, fd, temp, dest, fsync)
    except BaseException:
        await state.flush_quietly()
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    logger.debug("downloaded file %s to %s (%d bytes)", video.file_id, dest, state.done)
    return dest


def _finish(fd: int, temp: Path, dest: Path, fsync: bool) -> None:
    try:
        if fsync:
            os.fsync(fd)  # the bytes reach the disk before the name does
    finally:
        os.close(fd)
    temp.replace(dest)


class _Progress:
    """Received bytes and their writing: one batch is written in a thread while more arrive.

    At most two batches of about ``_WRITE_SIZE`` bytes are held at once (the one being
    written and the one filling), so memory stays flat whatever the file size.
    """

    def __init__(
        self, fd: int, on_progress: ProgressCallback | None, *, early_writeback: bool = False
    ) -> None:
        self.fd = fd
        self.on_progress = on_progress
        self.done = 0  # bytes received and kept
        self.total: int | None = None
        self._batch: list[bytes] = []
        self._batch_size = 0
        self._writing: asyncio.Future[None] | None = None
        # With fsync at the end, each written batch is sent on to the disk at once, so that
        # the final fsync has only the last one left to wait for (and a large video does
        # not crowd the page cache).
        self._early_writeback = early_writeback and _ADVISE is not None
        self._offset = 0  # where the next batch goes in the file

    async def add(self, chunk: bytes) -> None:
        self._batch.append(chunk)
        self._batch_size += len(chunk)
        self.done += len(chunk)
        if self._batch_size >= _WRITE_SIZE:
            await self._start_write()
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)

    async def _start_write(self) -> None:
        if self._writing is not None:
            await self._writing
        batch, start, size = self._batch, self._offset, self._batch_size
        self._batch, self._batch_size = [], 0
        self._offset += size
        self._writing = asyncio.get_running_loop().run_in_executor(
            None, _write_all, self.fd, batch, (start, size) if self._early_writeback else None
        )

    async def flush_quietly(self) -> None:
        """Wait for a write in flight, ignoring its error (the download is failing anyway)."""
        if self._writing is not None:
            with contextlib.suppress(OSError):
                await self._writing
            self._writing = None

    async def flush(self) -> None:
        """Write everything received so far."""
        if self._batch:
            await self._start_write()
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def restart(self) -> None:
        """Drop everything: the server sent the whole file again."""
        await self.flush()
        self.done = 0
        self._offset = 0
        await asyncio.get_running_loop().run_in_executor(None, os.ftruncate, self.fd, 0)
        await asyncio.get_running_loop().run_in_executor(None, os.lseek, self.fd, 0, os.SEEK_SET)


def _write_all(fd: int, batch: list[bytes], writeback: tuple[int, int] | None = None) -> None:
    """Write ``batch`` at the file's position; then start writing back ``(offset, length)``."""
    view = batch
    while view:
        written = os.writev(fd, view[:_IOV_MAX])
        # Drop what was written; keep the rest of a partly written buffer.
        while view and written >= len(view[0]):
            written -= len(view[0])
            view = view[1:]
        if written:
            view = [view[0][written:], *view[1:]]
    if writeback is not None and _ADVISE is not None:
        # On Linux, DONTNEED starts the writeback of dirty pages without waiting for it.
        with contextlib.suppress(OSError):
            _ADVISE(fd, writeback[0], writeback[1], os.POSIX_FADV_DONTNEED)


async def _fetch_all(
    session: aiohttp.ClientSession,
    video: VideoFile,
    state: _Progress,
    *,
    refresh: Callable[[int], Awaitable[VideoFile]],
    timeouts: Timeouts,
    retry: RetryPolicy,
    max_bytes: int | None,
    on_retry: Callable[[], object] | None = None,
) -> None:
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
    )
    refreshes = 0
    failures = 0
    if video.expires_at <= datetime.now(UTC):
        video = await refresh(video.file_id)
        refreshes += 1
    urls = _urls(video)
    which = 0
    while True:
        try:
            await _fetch_once(session, urls[which], state, timeout, max_bytes)
        except _Restart:
            await state.restart()
        except _Expired:
            refreshes += 1
            if refreshes > _MAX_REFRESHES:
                raise DownloadError(
                    f"file {video.file_id}: the download URL was refused even after "
                    f"{_MAX_REFRESHES} fresh ones"
                ) from None
            logger.info("download URL of file %s refused; retrieving a fresh one", video.file_id)
            video = await refresh(video.file_id)
            urls = _urls(video)
            which = 0
        except TransportError as error:
            failures += 1
            if failures >= retry.attempts:
                raise
            which = (which + 1) % len(urls)
            delay = retry.backoff(failures, error)
            logger.info(
                "download of file %s broke off after %d bytes (%s); resuming in %.2fs",
                video.file_id,
                state.done,
                error,
                delay,
            )
            await state.flush()
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(delay)
        else:
            await state.flush()
            return


def _urls(video: VideoFile) -> list[URL]:
    backup = [video.backup_download_url] if video.backup_download_url else []
    return [video.download_url, *backup]


async def _fetch_once(
    session: aiohttp.ClientSession,
    url: URL,
    state: _Progress,
    timeout: aiohttp.ClientTimeout,
    max_bytes: int | None,
) -> None:
    headers = {"Range": f"bytes={state.done}-"} if state.done else {}
    try:
        async with session.get(url, headers=headers, timeout=timeout) as response:
            if response.status == 403:
                raise _Expired
            if response.status == 416 and state.total is not None and state.done >= state.total:
                return
            if response.status >= 400:
                error = error_for_http_status(
                    response.status, f"HTTP {response.status} on download"
                )
                if error.retryable:
                    raise TransportError(str(error))
                raise DownloadError(f"download refused: {error}")
            if state.done and response.status != 206:
                raise _Restart
            state.total = _total_size(response, state.done)
            if max_bytes is not None and state.total is not None and state.total > max_bytes:
                raise DownloadError(
                    f"the video is {state.total} bytes, more than max_bytes={max_bytes}"
                )
            async for chunk in response.content.iter_any():
                await state.add(chunk)
                if max_bytes is not None and state.done > max_bytes:
                    raise DownloadError(f"the video exceeds max_bytes={max_bytes}")
            if state.total is not None and state.done < state.total:
                raise TransportError(f"stream ended at {state.done} of {state.total} bytes")
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise TransportError(f"download interrupted: {type(exc).__name__}: {exc}") from exc


def _total_size(response: aiohttp.ClientResponse, offset: int) -> int | None:
    content_range = response.headers.get("Content-Range", "")
    if response.status == 206 and "/" in content_range:
        span, _, total = content_range.partition("/")
        start = span.split()[-1].split("-")[0]
        if not start.isdigit() or int(start) != offset:
            raise _Restart
        return int(total) if total.isdigit() else None
    if response.content_length is not None:
        return offset + response.content_length
    return None
