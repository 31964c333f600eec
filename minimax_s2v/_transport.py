"""One HTTP exchange with the MiniMax API: auth, URLs, timeouts, error mapping, logging."""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import attrs
from yarl import URL

from ._errors import (
    APIError,
    ConnectError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    error_for_http_status,
)
from ._ratelimit import EndpointClass, RateLimiter
from ._telemetry import answered
from ._wire import api_error_in, is_mapping

__all__ = [
    "CN_BASE_URL",
    "GLOBAL_BASE_URL",
    "ApiResponse",
    "Timeouts",
    "Transport",
    "in_band_rejection",
]

logger = logging.getLogger("minimax_s2v")

GLOBAL_BASE_URL = URL("https://api.minimax.io")
CN_BASE_URL = URL("https://api.minimaxi.com")
_MAX_API_BODY = 4 * 1024 * 1024  # API answers are small JSON; anything larger is not ours


@attrs.frozen
class Timeouts:
    """Seconds allowed for each part of a call.

    Args:
        connect: to open a connection.
        read: between two reads of an answer (downloads too: a stalled stream fails).
        request: for a whole API call (not downloads, which may take long but never stall).
    """

    connect: float = 10.0
    read: float = 30.0
    request: float = 60.0


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
    except (TypeError, ValueError):
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

    async def call(
        self,
        method: str,
        path: str,
        endpoint: EndpointClass,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> ApiResponse:
        """Make one call; return the JSON answer or raise the typed error it amounts to.

        ``body`` is a JSON document, already encoded (the caller may need its exact bytes).

        Raises:
            ConnectError: no connection could be made (the request was certainly not sent).
            RequestTimeoutError, TransportError: the exchange broke off; it may have been served.
            APIError: the answer reported an error (HTTP status or in-band ``base_resp``).
        """
        bucket = self.limiter.bucket(endpoint)
        if bucket is not None:
            await bucket.acquire()
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self.base_url.join(URL(path))
        if params:
            url = url.with_query(params)
        started = time.perf_counter()
        try:
            async with self.session.request(
                method,
                url,
                data=body,
                headers=self._headers if body is None else self._json_headers,
                timeout=self._timeout,
            ) as response:
                raw = await _read_capped(response)
                status = response.status
                headers = response.headers
                reason = response.reason or "error"
        except aiohttp.ConnectionTimeoutError as exc:
            raise ConnectError(f"{method} {path}: could not connect in time ({exc})") from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectError(f"{method} {path}: could not connect: {exc.os_error}") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise RequestTimeoutError(f"{method} {path}: no complete answer in time") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        trace_id = headers.get("Trace-Id")
        answered(trace_id, status)
        if logger.isEnabledFor(logging.DEBUG):
            elapsed = (time.perf_counter() - started) * 1000
            logger.debug(
                "%s %s -> %d in %.1f ms (trace id %s)", method, path, status, elapsed, trace_id
            )
        data = _decode(raw)
        if status >= 400:
            error = _http_error(data, status, f"{reason} from {path}", headers, trace_id)
            self._note(endpoint, error)
            raise error
        if not is_mapping(data):
            kind = headers.get("Content-Type", "").split(";")[0].strip() or "unknown content"
            # An HTML page on HTTP 200 is a gateway's error page, not MiniMax's answer.
            error_text = f"{path} answered with {kind}, not JSON (a gateway error page?)"
            raise ServerError(error_text, trace_id=trace_id, http_status=status)
        api_error = api_error_in(
            data,
            http_status=status,
            trace_id=trace_id,
            retry_after=_retry_after(headers.get("Retry-After")),
        )
        if api_error is not None:
            self._note(endpoint, api_error)
            raise api_error
        if bucket is not None:
            bucket.on_success()
        return ApiResponse(data, trace_id, status)

    def _note(self, endpoint: EndpointClass, error: Exception) -> None:
        if isinstance(error, RateLimitError):
            self.limiter.on_rate_limited(endpoint)


def _http_error(
    data: object, status: int, what: str, headers: Mapping[str, str], trace_id: str | None
) -> APIError:
    """The typed error an HTTP error status amounts to (its body's ``base_resp`` first)."""
    retry_after = _retry_after(headers.get("Retry-After"))
    error = None
    if is_mapping(data):
        error = api_error_in(data, http_status=status, trace_id=trace_id, retry_after=retry_after)
    if error is None:
        error = error_for_http_status(status, what, trace_id=trace_id, retry_after=retry_after)
    return error


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    length = response.content_length
    if length is not None:
        if length > _MAX_API_BODY:
            raise aiohttp.ClientPayloadError(f"answer of {length} bytes is too large")
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > _MAX_API_BODY:
            raise aiohttp.ClientPayloadError("answer is too large")
    return bytes(body)


def _decode(raw: bytes) -> object:
    try:
        return json.loads(raw.decode("utf-8"))  # a str skips json's encoding detection
    except (ValueError, UnicodeDecodeError):
        return None


def in_band_rejection(error: BaseException) -> bool:
    """Whether ``error`` is a complete answer refusing the call (so nothing was created)."""
    return isinstance(error, APIError) and error.code is not None
