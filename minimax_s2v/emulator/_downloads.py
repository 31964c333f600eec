"""The emulator's CDN: signed, expiring download URLs and the MP4s behind them.

A URL carries its expiry, a salt and an HMAC of both under a secret of this emulator's; a
download checks the signature, then the expiry, then serves the file with ``Range`` support,
paced like a CDN link when ``download_rate`` says so, under the download endpoint's faults.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from aiohttp import web
from yarl import URL

from .._wire import is_id
from ._config import EmulatorConfig, Endpoint
from ._engine import TaskEngine
from ._gateway import Gateway
from ._video import VideoBytes

__all__ = ["FileServer"]


class FileServer:
    """Signs download URLs and serves ``GET /_emulator/files/{file_id}/{name}``.

    Args:
        config: the settings in force.
        engine: the tasks and their files.
        gateway: draws the download endpoint's faults.
    """

    def __init__(
        self, config: Callable[[], EmulatorConfig], engine: TaskEngine, gateway: Gateway
    ) -> None:
        self._config = config
        self._engine = engine
        self._gateway = gateway
        self._secret = secrets.token_bytes(32)

    def signed_url(self, origin: URL, file_id: int, *, backup: bool = False) -> URL:
        """A URL of ``file_id``'s video under ``origin``, valid for ``download_ttl`` seconds."""
        expires = f"{time.time() + self._config().download_ttl:.3f}"
        salt = secrets.token_hex(6)
        query = {
            "expires": expires,
            "salt": salt,
            "token": self._signature(str(file_id), expires, salt),
        }
        if backup:
            query["mirror"] = "backup"
        return (origin / "_emulator" / "files" / str(file_id) / "output.mp4").with_query(query)

    def _signature(self, file_id: str, expires: str, salt: str) -> str:
        message = f"{file_id}.{expires}.{salt}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    async def download(self, request: web.Request) -> web.StreamResponse:
        """Serve a download: 403 for a bad signature or an expired URL, 404 for no file."""
        counters = self._engine.counters
        file_id = request.match_info["file_id"]
        expires = request.query.get("expires", "")
        salt = request.query.get("salt", "")
        token = request.query.get("token", "")
        expected = self._signature(file_id, expires, salt)
        if not hmac.compare_digest(token.encode(), expected.encode()):
            counters.count("download", "forbidden")
            return _access_denied("SignatureDoesNotMatch")
        try:
            expired = float(expires) < time.time()
        except ValueError:
            expired = True
        if expired:
            counters.count("download", "expired")
            return _access_denied("Request has expired")
        file = self._engine.files.get(int(file_id)) if is_id(file_id) else None
        if file is None:
            counters.count("download", "not_found")
            return web.Response(status=404, text="NoSuchKey")
        if request.query.get("mirror") == "backup":
            counters.backup_downloads += 1
        fault = self._gateway.draw_fault(Endpoint.DOWNLOAD)
        if fault in ("http_5xx", "non_json", "server_error", "rate_limit"):
            counters.count("download", "fault_http_5xx")
            return web.Response(status=503, text="upstream error 503")
        if fault == "slow":
            await asyncio.sleep(self._config().faults.for_endpoint(Endpoint.DOWNLOAD).slow_seconds)
        return await self._send(request, VideoBytes(file.size), drop=fault == "drop")

    async def _send(
        self, request: web.Request, video: VideoBytes, *, drop: bool
    ) -> web.StreamResponse:
        counters = self._engine.counters
        span = parse_range(request.headers.get("Range"), video.size)
        if span is None:
            counters.count("download", "bad_range")
            return web.Response(status=416, headers={"Content-Range": f"bytes */{video.size}"})
        start, end = span
        partial = (start, end) != (0, video.size)
        response = web.StreamResponse(status=206 if partial else 200)
        response.content_type = "video/mp4"
        response.content_length = end - start
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["ETag"] = f'"{request.match_info["file_id"]}-{video.size}"'
        if partial:
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{video.size}"
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        # A planned drop cuts the body half-way, so a client must resume with Range.
        stop = start + (end - start) // 2 if drop else end
        rate = self._config().download_rate
        began, sent = time.monotonic(), 0
        for chunk in video.chunks(start, stop):
            await response.write(chunk)
            if rate is not None:  # paced like a CDN link: never ahead of rate * elapsed
                sent += len(chunk)
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        if drop:
            counters.count("download", "fault_drop")
            if request.transport is not None:
                request.transport.close()
            return response
        counters.count("download", "partial" if partial else "ok")
        await response.write_eof()
        return response


def _access_denied(message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>AccessDenied</Code><Message>{message}</Message></Error>"
    )
    return web.Response(status=403, text=body, content_type="application/xml")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The [start, end) span of a single-range ``Range`` header; ``None`` if unsatisfiable."""
    if not header:
        return 0, size
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return 0, size  # unsupported forms get the whole file, as RFC 9110 allows
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            length = int(last)
            return (max(0, size - length), size) if length > 0 else None
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return 0, size
    if start >= size or end <= start:
        return None
    return start, min(end, size)
