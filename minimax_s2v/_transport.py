"""One HTTP exchange with the MiniMax API: auth, URLs, timeouts, error mapping, logging."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import mmap
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import attrs
from aiohttp.abc import AbstractStreamWriter
from yarl import URL

from ._errors import (
    APIError,
    ConnectError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    error_for_http_status,
    shown_id,
)
from ._ratelimit import EndpointClass, RateLimiter
from ._redaction import STRUCTURAL, Redactor, describe
from ._telemetry import answered
from ._validators import number
from ._wire import api_error_in, is_mapping, named_task, v2_error_in

__all__ = [
    "CN_BASE_URL",
    "GLOBAL_BASE_URL",
    "ApiResponse",
    "Timeouts",
    "Transport",
]

logger = logging.getLogger("minimax_s2v")

GLOBAL_BASE_URL = URL("https://api.minimax.io")
CN_BASE_URL = URL("https://api.minimaxi.com")
_MAX_API_BODY = 4 * 1024 * 1024  # API answers are small JSON; anything larger is not ours
# A body larger than this is written a slice at a time (see _SlicedBody).
_BODY_SLICE = 256 * 1024


@attrs.frozen
class Timeouts:
    """Seconds allowed for each part of a call.

    Args:
        connect: to open a connection.
        read: between two reads of an answer (downloads too: a stalled stream fails).
        request: for a whole API call (not downloads, which may take long but never stall).
        download_min_rate: the slowest a download may run, in bytes per second, over each
            ``read`` seconds: a host that drips (a byte now and then, never silent long
            enough for ``read``) would otherwise hold a download for hours. Slower is
            handled as a broken connection: resumed where it stood, as the retry policy
            allows. ``None`` turns the check off.
    """

    connect: float = attrs.field(default=10.0, validator=number(above=0))
    read: float = attrs.field(default=30.0, validator=number(above=0))
    request: float = attrs.field(default=60.0, validator=number(above=0))
    download_min_rate: float | None = attrs.field(
        # Finite: an infinite rate would fail every download lasting ``read`` seconds.
        default=1024.0,
        validator=number(above=0, below=math.inf, optional=True),
    )


@attrs.define  # not frozen: one is made per call, and a plain __init__ is the quicker
class ApiResponse:
    """A decoded API answer with what support needs to trace it."""

    data: Mapping[str, Any] = attrs.field(repr=False)
    trace_id: str | None
    http_status: int


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year past C's long
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Transport:
    """Makes single API calls (no retries: those belong to the caller's policy)."""

    def __init__(
        self,
        api_key: str,
        base_url: URL,
        *,
        session: aiohttp.ClientSession,
        timeouts: Timeouts,
        limiter: RateLimiter,
        user_agent: str,
    ) -> None:
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": user_agent}
        #: Scrubs the key from errors; downloads use it too (a host may echo what it saw).
        self.redactor = Redactor(api_key)
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self.base_url = base_url
        self.session = session
        self.timeouts = timeouts
        self.limiter = limiter
        # API answers are small: the total covers a stalled read, one timer fewer per call.
        self._timeout = aiohttp.ClientTimeout(total=timeouts.request, sock_connect=timeouts.connect)
        self._urls: dict[str, URL] = {}

    def __repr__(self) -> str:
        return f"Transport(base_url={str(self.base_url)!r})"

    def _trace_id(self, headers: Mapping[str, str]) -> str | None:
        """An answer's ``Trace-Id`` as logs and errors keep it: scrubbed, then cut short.

        Scrubbed first: a host may echo the key, and cut in half it would not be found.
        """
        trace_id = headers.get("Trace-Id")
        return shown_id(self.redactor.text(trace_id)) if trace_id else None

    async def call(
        self,
        method: str,
        path: str,
        endpoint: EndpointClass,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | mmap.mmap | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
        item: str | None = None,
    ) -> ApiResponse:
        """Make one call; return the JSON answer or raise the typed error it amounts to.

        ``body`` is a JSON document, already encoded (the caller may need its exact bytes).
        ``before_send`` is awaited once the rate limiter lets the call go, just before the
        request is made (a submission is journaled there, when it is about to leave).
        ``item`` is a last path segment (V2's task id): appended to ``path``'s URL, so that
        the cache of URLs holds one entry per endpoint, not one per task.

        Raises:
            ConnectError: no connection could be made (the request was certainly not sent).
            RequestTimeoutError, TransportError: the exchange broke off; it may have been served.
            APIError: the answer reported an error (HTTP status or in-band ``base_resp``).
        """
        bucket = self.limiter.bucket(endpoint)
        if bucket is not None:
            await bucket.acquire()
        if before_send is not None:
            await before_send()
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self.base_url.join(URL(path))
        if item is not None:
            url = url / item
        if params:
            url = url.with_query(params)
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            async with self.session.request(
                method,
                url,
                data=body if body is None or len(body) <= _BODY_SLICE else _SlicedBody(body),
                headers=self._headers if body is None else self._json_headers,
                timeout=self._timeout,
            ) as response:
                raw = await _read_capped(response)
                status = response.status
                headers = response.headers
                reason = response.reason or "error"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            failure = exc
        if failure is not None:
            # Raised here, outside the except block, so that the foreign exception (which
            # may hold the request headers) is not kept as __context__.
            raise self.redactor.clean(_exchange_error(method, path, failure, self.redactor))
        raw = self.redactor.raw(raw)  # a server echoing the key gets it back nowhere
        trace_id = self._trace_id(headers)
        answered(trace_id, status)
        if logger.isEnabledFor(logging.DEBUG):
            elapsed = (time.perf_counter() - started) * 1000
            logger.debug(
                "%s %s -> %d in %.1f ms (trace id %s)", method, path, status, elapsed, trace_id
            )
        data = _decode(raw)
        if b"\\" in raw:  # JSON escapes could spell the key so that the bytes hid it
            data = self.redactor.json(data)
        if status >= 400:
            error = _http_error(data, status, f"{reason} from {path}", headers, trace_id)
            error.task_id = named_task(data)
            self._note(endpoint, error)
            raise self.redactor.clean(error)
        if not is_mapping(data):
            kind = headers.get("Content-Type", "").split(";")[0].strip() or "unknown content"
            # An HTML page on HTTP 200 is a gateway's error page, not MiniMax's answer.
            error_text = f"{path} answered with {kind}, not JSON (a gateway error page?)"
            raise ServerError(error_text, trace_id=trace_id, http_status=status)  # no echo
        api_error = api_error_in(
            data,
            http_status=status,
            trace_id=trace_id,
            retry_after=_retry_after(headers.get("Retry-After")),
        )
        if api_error is not None:
            api_error.task_id = named_task(data)
            self._note(endpoint, api_error)
            raise self.redactor.clean(api_error)
        if bucket is not None:
            bucket.on_success()
        return ApiResponse(data, trace_id, status)

    def _note(self, endpoint: EndpointClass, error: Exception) -> None:
        if isinstance(error, RateLimitError):
            self.limiter.on_rate_limited(endpoint)


def _exchange_error(
    method: str, path: str, exc: BaseException, redactor: Redactor
) -> TransportError:
    """The typed error for an exchange that broke off; ``exc`` is kept as its cause, cleaned."""
    error: TransportError
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = ConnectError(f"{method} {path}: could not connect in time ({exc})")
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = ConnectError(f"{method} {path}: could not connect: {exc.os_error}")
    elif isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        error = RequestTimeoutError(f"{method} {path}: no complete answer in time")
    elif isinstance(exc, aiohttp.TooManyRedirects):
        error = TransportError(f"{method} {path}: too many redirects")
    else:
        error = TransportError(f"{method} {path}: {describe(exc, redactor.text)}")
    error.__cause__ = STRUCTURAL.cause(exc)
    return error


def _http_error(
    data: object, status: int, what: str, headers: Mapping[str, str], trace_id: str | None
) -> APIError:
    """The typed error an HTTP error status amounts to (its body's ``base_resp`` or V2 envelope)."""
    retry_after = _retry_after(headers.get("Retry-After"))
    error = None
    if is_mapping(data):
        error = api_error_in(data, http_status=status, trace_id=trace_id, retry_after=retry_after)
        if error is None:
            error = v2_error_in(
                data, http_status=status, trace_id=trace_id, retry_after=retry_after
            )
    if error is None:
        error = error_for_http_status(status, what, trace_id=trace_id, retry_after=retry_after)
    return error


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    length = response.content_length
    if length is not None:
        if length > _MAX_API_BODY:
            raise aiohttp.ClientPayloadError(f"answer of {length} bytes is too large")
        # Content-Length counts the bytes on the wire: a compressed answer is read a piece
        # at a time below, as it is inflated (a few KiB of gzip can inflate to gigabytes).
        if response.headers.get("Content-Encoding", "identity").strip().lower() == "identity":
            return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > _MAX_API_BODY:
            raise aiohttp.ClientPayloadError("answer is too large")
    return bytes(body)


def _decode(raw: bytes) -> object:
    """The JSON document ``raw``, else ``None`` (not UTF-8, not JSON, or nested too deeply)."""
    try:
        return json.loads(raw.decode("utf-8"))  # a str skips json's encoding detection
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


class _SlicedBody(aiohttp.Payload):
    """A large request body (a 19 MB inline face) written a slice at a time.

    Given as plain bytes, aiohttp joins the headers and the whole body into one new buffer
    and the socket transport copies what the socket did not take at once: about 50 ms of
    the event loop per 19 MB body, several of them in one turn of the loop under a burst.
    Each slice of 256 KiB waits for the socket's room and for the next turn of the loop, so
    the loop is never held for long.
    The bytes are not copied; a retry writes them again.
    """

    _autoclose = True  # nothing to close: the bytes are in memory

    def __init__(self, value: bytes | mmap.mmap) -> None:
        super().__init__(value, content_type="application/json")
        self._value: bytes | mmap.mmap = value
        self._size = len(value)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """The body as text (aiohttp's interface; not used to send it)."""
        return bytes(self._value).decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        """The body itself (a copy when it is a memory map)."""
        return self._value if isinstance(self._value, bytes) else bytes(self._value)

    async def write(self, writer: AbstractStreamWriter) -> None:
        """Write the whole body."""
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        """Write the body (at most ``content_length`` bytes of it), a slice at a time."""
        mapped = isinstance(self._value, mmap.mmap)
        with memoryview(self._value) as whole, whole[:content_length] as view:
            for start in range(0, len(view), _BODY_SLICE):
                piece: bytes | memoryview
                if mapped:
                    # Each slice of a map is sent as a copy: no view of the map outlives this
                    # frame (in a transport's buffer, in the traceback of a broken upload
                    # that a caller keeps), so that it can always be unmapped.
                    with view[start : start + _BODY_SLICE] as part:
                        piece = part.tobytes()
                else:
                    piece = view[start : start + _BODY_SLICE]
                await writer.write(piece)  # waits for the socket's room
                # A socket that takes each slice at once (loopback, a fast network) never
                # makes write() wait: the next turn of the loop comes first.
                await asyncio.sleep(0)
