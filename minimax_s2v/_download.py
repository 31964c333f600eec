"""Streaming a video to disk: temp file then atomic rename, Range resume, fresh URL on 403."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import stat
import struct
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import attrs
from yarl import URL

from ._errors import DownloadError, MiniMaxError, TransportError, error_for_http_status
from ._models import VideoFile
from ._redaction import STRUCTURAL, Redactor, describe
from ._retry import Retrying, RetryPolicy
from ._transport import Timeouts
from ._wire import checked_id

__all__ = ["ProgressCallback", "download_video", "looks_like_mp4", "target_path"]

logger = logging.getLogger("minimax_s2v")

#: ``on_progress(bytes_done, bytes_total_or_None)``, called as data arrives.
ProgressCallback = Callable[[int, int | None], object]

_WRITE_SIZE = 4 * 1024 * 1024  # buffer this much before each write, done off the event loop
_IOV_MAX = 1024
_MAX_REFRESHES = 3
_MAX_REDIRECTS = 5
_HEAD = 128  # the first bytes are kept to recognise an MP4 (and to describe what is not one)
# ISO BMFF boxes that may come before ``ftyp`` without making the file something else.
_PADDING_BOXES = frozenset({b"free", b"skip", b"wide"})
_ADVISE = getattr(os, "posix_fadvise", None) if hasattr(os, "POSIX_FADV_DONTNEED") else None


class _Restart(Exception):  # noqa: N818 - internal control flow, never escapes
    """An answer that cannot continue the file (a wrong 206): start over from byte 0."""


class _Expired(Exception):  # noqa: N818 - internal control flow, never escapes
    """The URL was refused (403): fetch a fresh one."""


def target_path(dest: str | os.PathLike[str], name: str) -> Path:
    """``dest`` itself, or ``dest/<name>.mp4`` when it is a directory.

    ``dest`` is a directory when it exists as one or ends in a path separator (``out/``).
    A name is used only when it is an id (digits), so the file stays inside ``dest``.

    Raises:
        ValueError: ``dest`` is a directory and ``name`` is not an id.
    """
    path = Path(dest)
    if path.is_dir() or os.fspath(dest).endswith(("/", os.sep)):
        return path / f"{checked_id(name)}.mp4"
    return path


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
    redactor: Redactor = STRUCTURAL,
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

    Trust rules (a download host may be hostile or broken): a 206 is taken only as the answer
    to our own Range request with the expected start, total and validator; a resume names the
    first answer's ETag (or Last-Modified) in ``If-Range``; any other 206 starts the file over,
    and counts against the policy's attempts. The file must open with an ISO BMFF ``ftyp``
    box, and must have exactly the size the retrieve reported when it reported one. Whatever
    fails leaves neither ``dest`` changed nor a part file. Errors pass ``redactor``.

    Raises:
        DownloadError: larger than ``max_bytes``; not an MP4 or not the reported size;
            answers that kept not fitting; refused even with a fresh URL.
        TransportError: the connection kept failing after the policy's attempts.
    """
    temp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    loop = asyncio.get_running_loop()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        _check_destination(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = await loop.run_in_executor(None, os.open, temp, flags, 0o644)
    except OSError as error:
        failure: OSError | None = error
    else:
        failure = None
    if failure is not None:  # e.g. a parent that is a file, a read-only file system
        raise _unwritable(dest, failure)
    state = _Progress(fd, on_progress, early_writeback=fsync)
    closed = False

    def finish() -> None:
        nonlocal closed
        if fsync:
            os.fsync(fd)  # the bytes reach the disk before the name does
        closed = True  # closed once, whatever close() says
        os.close(fd)
        temp.replace(dest)

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
        await loop.run_in_executor(None, finish)
    except BaseException as error:
        await state.flush_quietly()
        if not closed:
            os.close(fd)
        temp.unlink(missing_ok=True)
        if isinstance(error, MiniMaxError):
            redactor.clean(error)
        if not isinstance(error, OSError):
            raise
        failure = error
    else:
        logger.debug("downloaded file %s to %s (%d bytes)", video.file_id, dest, state.done)
        return dest
    # Writing the file failed here (a full disk, a file size limit): a typed error.
    raise _unwritable(dest, failure)


def _check_destination(dest: Path) -> None:
    """Refuse a ``dest`` that exists as something else than a file (a FIFO, a device).

    The finished video is renamed over ``dest``: it would replace the FIFO or the device
    (``/dev/null``, for root) with a regular file.
    """
    try:
        mode = dest.lstat().st_mode
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise DownloadError(f"{dest} exists and is not a regular file: give a file or a directory")


def _unwritable(dest: Path, failure: OSError) -> DownloadError:
    """The typed error for a video that could not be written to ``dest``."""
    reason = failure.strerror or type(failure).__name__
    return DownloadError(f"could not write the video to {dest}: {reason}")


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
        self.head = b""  # the file's first bytes, to recognise an MP4
        self.checked = False  # whether ``head`` was found to open an MP4
        self.validator: str | None = None  # the first answer's ETag or Last-Modified
        self.expired = False  # the last answer was a 403: the URL needs refreshing
        self._batch: list[bytes] = []
        self._batch_size = 0
        self._writing: asyncio.Future[None] | None = None
        # With fsync at the end, each written batch is sent on to the disk at once, so that
        # the final fsync has only the last one left to wait for (and a large video does
        # not crowd the page cache).
        self._early_writeback = early_writeback and _ADVISE is not None
        self._offset = 0  # where the next batch goes in the file

    async def add(self, chunk: bytes) -> None:
        if len(self.head) < _HEAD:
            self.head += chunk[: _HEAD - len(self.head)]
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
        """Drop everything: the file is fetched again from byte 0."""
        await self.flush()
        self.done = 0
        self._offset = 0
        self.total = None
        self.head = b""
        self.checked = False
        self.validator = None
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
    """Fetch until the file is complete; every answer that does not fit counts as a failure."""
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
    )
    refreshes = 0
    # Broken exchanges are retried as the policy says (its ``on``, attempts, timeout and
    # waits), by the mechanism every call uses; an answer that does not fit starts over at
    # once. Both use up the policy's attempts; a refreshed URL does not.
    retrying = Retrying(retry, what=f"download of file {video.file_id}", on_retry=on_retry)
    if video.expires_at <= datetime.now(UTC):
        video = await refresh(video.file_id)
        refreshes += 1
    urls = _urls(video)
    which = 0
    while True:
        _check_reported_size(video, max_bytes)
        gave_up: str | None = None
        try:
            limits = _Limits(
                video.bytes or None, max_bytes, timeouts.download_min_rate, timeouts.read
            )
            await _fetch_once(session, urls[which], state, timeout, limits)
        except _Restart as restart:
            await state.restart()
            if not retrying.spent():
                gave_up = f"{restart}; gave up after {retrying.failures} failed tries"
            else:
                logger.info("download of file %s starts over: %s", video.file_id, restart)
        except _Expired:
            refreshes += 1
            if refreshes > _MAX_REFRESHES:
                gave_up = f"the download URL was refused even after {_MAX_REFRESHES} fresh ones"
            else:
                logger.info("download of file %s refused; retrieving a fresh one", video.file_id)
        except TransportError as error:
            if not retrying.failed(error):
                raise
            which = (which + 1) % len(urls)
            logger.info(
                "download of file %s broke off after %d bytes; resuming from there",
                video.file_id,
                state.done,
            )
            await state.flush()
            await retrying.wait()
            continue
        else:
            await state.flush()
            return
        # Raised and refreshed here, outside the except blocks: no internal signal is kept
        # as the __context__ of what the caller sees.
        if gave_up is not None:
            raise DownloadError(f"file {video.file_id}: {gave_up}")
        if refreshes and state.expired:
            state.expired = False
            video = await refresh(video.file_id)
            urls = _urls(video)
            which = 0


def _check_reported_size(video: VideoFile, max_bytes: int | None) -> None:
    if video.bytes and max_bytes is not None and video.bytes > max_bytes:
        raise DownloadError(
            f"file {video.file_id}: the video is {video.bytes} bytes, "
            f"more than max_bytes={max_bytes}"
        )


@attrs.frozen
class _Limits:
    """What a download may be: the size the retrieve reported (if any), the cap, the pace.

    ``min_rate`` is the slowest it may run, in bytes per second over each ``window``
    seconds (``None``: any).
    """

    expected: int | None
    max_bytes: int | None
    min_rate: float | None = None
    window: float = 30.0


def _urls(video: VideoFile) -> list[URL]:
    backup = [video.backup_download_url] if video.backup_download_url else []
    return [video.download_url, *backup]


async def _fetch_once(
    session: aiohttp.ClientSession,
    url: URL,
    state: _Progress,
    timeout: aiohttp.ClientTimeout,
    limits: _Limits,
) -> None:
    """One request: from byte 0, or resumed with Range and If-Range where the last one ended."""
    resuming = state.done > 0
    # Identity: a compressed body would make every length check meaningless.
    headers = {"Accept-Encoding": "identity"}
    if resuming:
        headers["Range"] = f"bytes={state.done}-"
        if state.validator is not None:
            headers["If-Range"] = state.validator
    failure: BaseException | None = None
    try:
        async with session.get(
            url, headers=headers, timeout=timeout, max_redirects=_MAX_REDIRECTS
        ) as response:
            await _receive(response, state, resuming, limits)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        failure = exc
    if failure is None:
        return
    error: MiniMaxError
    if isinstance(failure, aiohttp.TooManyRedirects):
        error = DownloadError(
            f"the download URL redirected {_MAX_REDIRECTS} times without reaching the video"
        )
    elif isinstance(failure, aiohttp.RedirectClientError):
        # The host answered (file:, ftp:, data: or no URL at all): asking again gets the same.
        error = DownloadError("the download URL redirected to no HTTP(S) URL")
    else:
        error = TransportError(f"download interrupted: {describe(failure)}")
    # aiohttp's response errors keep the request headers: only a scrubbed stand-in is kept.
    error.__cause__ = STRUCTURAL.cause(failure)
    raise STRUCTURAL.clean(error)


async def _receive(
    response: aiohttp.ClientResponse,
    state: _Progress,
    resuming: bool,
    limits: _Limits,
) -> None:
    """Check one answer and stream its body into ``state``."""
    expected, max_bytes = limits.expected, limits.max_bytes
    status = response.status
    if status == 403:
        state.expired = True
        raise _Expired
    if status == 416 and state.total is not None and state.done >= state.total:
        return
    if status >= 400:
        error = error_for_http_status(status, f"HTTP {status} on download")
        if error.retryable:
            raise TransportError(str(error))
        raise DownloadError(f"download refused: {error}")
    if status == 206:
        total = _check_partial(response, state, resuming)
    elif 200 <= status < 300:
        if resuming:
            # The whole file came back: If-Range saw a change, or the Range was ignored.
            await state.restart()
        total = _declared_length(response)
    else:
        raise DownloadError(f"the download answered HTTP {status}, not the video")
    if state.done == 0:
        state.validator = _validator(response)
    state.total = total
    if max_bytes is not None and total is not None and total > max_bytes:
        raise DownloadError(f"the video is {total} bytes, more than max_bytes={max_bytes}")
    content_type = response.headers.get("Content-Type", "")
    if state.checked:
        _check_size(total, expected)
    min_rate = limits.min_rate
    window_started, window_start = time.monotonic(), state.done
    async for chunk in response.content.iter_any():
        await state.add(chunk)
        if min_rate is not None and (now := time.monotonic()) - window_started >= limits.window:
            # A drip is never silent for a read timeout: the rate over each window catches it.
            if state.done - window_start < min_rate * (now - window_started):
                raise TransportError(
                    f"the download ran slower than {min_rate:g} bytes/s for "
                    f"{now - window_started:.0f} s"
                )
            window_started, window_start = now, state.done
        if not state.checked and len(state.head) >= _HEAD:
            _check_start(state, content_type, total, expected)
        if max_bytes is not None and state.done > max_bytes:
            raise DownloadError(f"the video exceeds max_bytes={max_bytes}")
        if expected is not None and state.done > expected:
            raise DownloadError(
                f"the server sent more than the {expected} bytes the retrieve reported"
            )
        # A resumed 206's body is bounded by nothing but the total it declares (chunked,
        # or a Content-Length past it): bytes beyond it would be spliced onto the video.
        if total is not None and state.done > total:
            raise DownloadError(f"the server sent more than the {total} bytes it declared")
    if not state.checked:
        _check_start(state, content_type, total, expected)
    if total is not None and state.done < total:
        raise TransportError(f"stream ended at {state.done} of {total} bytes")
    if expected is not None and state.done != expected:
        raise DownloadError(
            f"the server sent {state.done} bytes where the retrieve reported {expected}"
        )


def _check_partial(
    response: aiohttp.ClientResponse, state: _Progress, resuming: bool
) -> int | None:
    """The total of a 206 that answers our own Range request; else ``_Restart``."""
    if not resuming:
        raise _Restart("a partial answer (HTTP 206) to a request for the whole file")
    start, total = _content_range(response.headers.get("Content-Range", ""))
    if start != state.done:
        raise _Restart(
            f"a partial answer (HTTP 206) starting at byte {start} where {state.done} was asked"
        )
    validator = _validator(response)
    changed_validator = None not in (validator, state.validator) and validator != state.validator
    if changed_validator or (None not in (total, state.total) and total != state.total):
        raise _Restart("a partial answer (HTTP 206) from a file that changed since the first")
    return total if total is not None else state.total


def _content_range(header: str) -> tuple[int | None, int | None]:
    """``(start, total)`` of ``bytes START-END/TOTAL``; ``None`` for what is not a number."""
    unit, _, spec = header.strip().partition(" ")
    span, _, total = spec.partition("/")
    start = span.partition("-")[0].strip()
    if unit.lower() != "bytes" or not start.isdigit() or not start.isascii():
        return None, None
    total = total.strip()
    return int(start), int(total) if total.isdigit() and total.isascii() else None


def _declared_length(response: aiohttp.ClientResponse) -> int | None:
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return None  # the length is that of the encoded body, not of the file
    return response.content_length


def _validator(response: aiohttp.ClientResponse) -> str | None:
    """What If-Range can name: a strong ETag, else Last-Modified (RFC 9110 section 13.1.5).

    Only printable ASCII can be sent back: a value with a control character is no header
    aiohttp will send, so the answer counts as having no validator.
    """
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/") and _sendable(etag):
        return etag
    modified = response.headers.get("Last-Modified")
    return modified if modified and _sendable(modified) else None


def _sendable(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _check_start(
    state: _Progress, content_type: str, total: int | None, expected: int | None
) -> None:
    """The first bytes must open an MP4; then the declared size must be the reported one."""
    state.checked = True
    if not looks_like_mp4(state.head):
        size = total if total is not None else state.done
        raise DownloadError(
            f"the server sent {content_type or 'no content type'} ({size} bytes) instead of "
            f"an MP4 video: {_sample(state.head)}"
        )
    _check_size(total, expected)


def _check_size(total: int | None, expected: int | None) -> None:
    if None not in (total, expected) and total != expected:
        raise DownloadError(
            f"the server offers {total} bytes where the retrieve reported {expected}"
        )


def looks_like_mp4(head: bytes) -> bool:
    """Whether ``head`` opens an ISO BMFF file: an ``ftyp`` box, perhaps after padding boxes."""
    position = 0
    while position + 8 <= len(head):
        size, kind = struct.unpack_from(">I4s", head, position)
        if kind == b"ftyp":
            return True
        if kind not in _PADDING_BOXES or size < 8:
            return False
        position += size
    return False


def _sample(head: bytes) -> str:
    """The first bytes as text when printable, else in hex."""
    text = head.decode("utf-8", "replace")
    flat = " ".join(text.split())
    if flat and flat.isprintable() and "\ufffd" not in flat:
        return repr(flat[:100])
    return "bytes " + (head[:16].hex(" ") or "(none)")
