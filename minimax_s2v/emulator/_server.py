"""The emulator's HTTP side: the MiniMax endpoints, downloads, faults and introspection."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from aiohttp import web
from yarl import URL

from .._errors import ResponseValidationError
from .._images import read_image_info
from .._models import H3_MODELS, MODEL_H3_MAX, Dialect, H3Request, TaskStatus
from .._wire import (
    h3_cancel_payload,
    h3_list_payload,
    h3_task_payload,
    is_http_url,
    is_id,
    parse_h3_request,
    source_kind,
    v2_error_payload,
)
from ._callbacks import CallbackSender, Delivery
from ._config import EmulatorConfig, Endpoint, EndpointFaults
from ._engine import V2_STATUS_TEXT, Counters, EmulatedTask, TaskEngine
from ._state import EmulatorState
from ._video import VideoBytes

__all__ = ["Emulator"]

logger = logging.getLogger("minimax_s2v.emulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_MAX_BODY = 64 * 1024 * 1024
_MAX_PROMPT = 2000
_MAX_IMAGE = 20_000_000
_CALLBACK_CHECK_FAILED = "invalid params, fail to check callback url"
_MISSING_KEY = (
    "login fail: Please carry the API secret key in the 'Authorization' field of the request header"
)


_V2_RESOLUTIONS = {"MiniMax-H3": ("768P", "2K"), "MiniMax-H3-Max": ("480P", "768P")}
_V2_DURATIONS = {"MiniMax-H3": (4, 15), "MiniMax-H3-Max": (5, 15)}
_V2_RATIOS = frozenset({"adaptive", "21:9", "16:9", "4:3", "1:1", "3:4", "9:16"})
_V2_MAX_PROMPT = 7000
_V2_MAX_IMAGE = 30_000_000
_V2_STATUS_FILTER = {text: status for status, text in V2_STATUS_TEXT.items()}


def _v2_error(status: int, message: str, code: int | None = None) -> web.Response:
    """A V2 error: the real HTTP status, the envelope, the code inside the message."""
    return web.json_response(
        v2_error_payload(status, message, code, uuid.uuid4().hex), status=status
    )


def _base(code: int, message: str) -> dict[str, Any]:
    return {"status_code": code, "status_msg": message}


def _inband(code: int, message: str, **fields: Any) -> web.Response:
    return web.json_response({**fields, "base_resp": _base(code, message)})


class Emulator:
    """A local MiniMax S2V-01 service on a loopback port.

    Use it as an async context manager; ``url`` is the base URL to hand to a client and
    ``api_key`` a key it accepts::

        async with Emulator(durations=Durations.instant()) as emu:
            client = Client(emu.api_key, base_url=emu.url)

    Args:
        config: the settings; keyword arguments override single fields of it.
        host, port: where to listen (port 0 picks a free one).
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **changes: Any,
    ) -> None:
        base = config or EmulatorConfig()
        self._config = attrs.evolve(base, **changes) if changes else base
        self._host = host
        self._port = port
        self._clock = time.monotonic
        self.engine = TaskEngine(lambda: self._config, self._clock)
        self.callbacks = CallbackSender(lambda: self._config, self.engine.counters, self._clock)
        self.callbacks.render = self._render_callback
        self._fault_rngs = self._new_fault_rngs()
        self._detail_rng = random.Random(self._config.seed)  # noqa: S311 - simulation
        self._windows: dict[tuple[str, Endpoint], deque[float]] = {}
        self._secret = secrets.token_bytes(32)
        self._runner: web.AppRunner | None = None
        self._url: URL | None = None
        self.app = self._build_app()

    # -- life cycle -------------------------------------------------------------------------

    @property
    def config(self) -> EmulatorConfig:
        """The settings in force."""
        return self._config

    def configure(self, **changes: Any) -> None:
        """Change settings while running (e.g. turn a fault plan on); the seed stays."""
        self._config = attrs.evolve(self._config, **changes)

    @property
    def url(self) -> URL:
        """The base URL, e.g. ``http://127.0.0.1:8090``."""
        if self._url is None:
            raise RuntimeError("the emulator is not running: use 'async with Emulator() as emu'")
        return self._url

    @property
    def api_key(self) -> str:
        """A key the emulator accepts."""
        return self._config.api_keys[0]

    @property
    def counters(self) -> Counters:
        """What the emulator has seen and done."""
        return self.engine.counters

    @property
    def deliveries(self) -> list[Delivery]:
        """Every callback POST made so far, in order."""
        return list(self.callbacks.deliveries)

    def state(self, *, tasks: bool = False) -> EmulatorState:
        """The counters (and optionally every task) as JSON, as ``GET /_emulator/state``."""
        counters = self.counters.as_json()
        state: EmulatorState = {
            "tasks_created": counters["tasks_created"],
            "backup_downloads": counters["backup_downloads"],
            "requests": counters["requests"],
            "faults": counters["faults"],
            "callbacks": counters["callbacks"],
            "challenge_latency_ms": counters["challenge_latency_ms"],
            "v2_max_in_flight_seen": counters["v2_max_in_flight_seen"],
            "v2_charged": len(self.charged()),
            "pending_callback_tasks": self.callbacks.pending,
        }
        if tasks:
            now = self._clock()
            state["tasks"] = [
                {
                    "task_id": task.task_id,
                    "status": task.status_at(now).value,
                    "prompt": task.prompt,
                    "callback_url": task.callback_url,
                    "created_at": task.created_wall,
                }
                for task in self.engine.tasks.values()
            ]
        return state

    async def start(self) -> URL:
        """Start listening; returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        await self.callbacks.start()
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        try:
            await runner.setup()
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            # e.g. the port is in use: leave no callback session or runner behind.
            await runner.cleanup()
            await self.callbacks.close()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = URL.build(scheme="http", host=host, port=port)
        return self._url

    async def close(self) -> None:
        """Stop sending callbacks and stop listening."""
        await self.callbacks.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._url = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the application --------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_BODY, middlewares=[self._trace_middleware])
        app.router.add_post("/v1/video_generation", self._submit)
        app.router.add_get("/v1/query/video_generation", self._query)
        app.router.add_get("/v1/files/retrieve", self._retrieve)
        app.router.add_post("/v2/video_generation", self._v2_create)
        app.router.add_get("/v2/query/video_generation/{task_id}", self._v2_query)
        app.router.add_get("/v2/query/video_generation", self._v2_list)
        app.router.add_delete("/v2/video_generation/{task_id}", self._v2_cancel)
        app.router.add_get("/_emulator/files/{file_id}/{name}", self._download)
        app.router.add_get("/_emulator/state", self._state)
        app.router.add_get("/_emulator/deliveries", self._deliveries)
        return app

    @web.middleware
    async def _trace_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        trace_id = uuid.uuid4().hex
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers["Trace-Id"] = trace_id
            raise
        except ConnectionError:
            raise  # the client went away mid-answer: nothing to answer
        except Exception:
            # MiniMax answers what it cannot handle in band, never with a traceback; the
            # counter lets the emulator's own tests see that it happened.
            logger.exception("emulator: %s %s failed", request.method, request.path)
            self.counters.count(_endpoint_name(request.path), "internal_error")
            if request.path.startswith("/v2/"):
                response = _v2_error(500, "internal error", 1000)
            else:
                response = _inband(1000, "unknown error")
        if not response.prepared:
            response.headers["Trace-Id"] = trace_id
        return response

    def _new_fault_rngs(self) -> dict[Endpoint, random.Random]:
        seed = self._config.seed
        return {
            endpoint: random.Random(None if seed is None else f"{seed}:{endpoint.value}")  # noqa: S311
            for endpoint in Endpoint
        }

    def _draw_fault(self, endpoint: Endpoint) -> str | None:
        """One draw per request, so a seed fixes the sequence of faults per endpoint."""
        faults = self._config.faults.for_endpoint(endpoint)
        point = self._fault_rngs[endpoint].random()
        for kind in EndpointFaults.KINDS:
            point -= getattr(faults, kind)
            if point < 0:
                self.counters.faults.setdefault(endpoint.value, Counter())[kind] += 1
                return kind
        return None

    def _fault_response(self, request: web.Request, kind: str) -> web.StreamResponse:
        rng = self._detail_rng
        if kind == "http_5xx":
            status = rng.choice((500, 502, 503))
            return web.Response(status=status, text=f"upstream error {status}")
        if kind == "server_error":
            code, message = rng.choice(
                (
                    (1000, "unknown error"),
                    (1001, "request timeout"),
                    (1013, "internal service error"),
                )
            )
            return _inband(code, message)
        if kind == "rate_limit":
            return self._rate_limited()
        if kind == "non_json":
            return web.Response(
                text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
            )
        # drop: close the connection without an answer
        return self._drop(request)

    def _v2_fault_response(self, request: web.Request, kind: str) -> web.StreamResponse:
        rng = self._detail_rng
        if kind == "http_5xx":  # a gateway in front: not MiniMax's envelope
            status = rng.choice((502, 503))
            return web.Response(status=status, text=f"upstream error {status}")
        if kind == "server_error":
            if rng.random() < 0.5:
                return _v2_error(500, "internal error", 1000)
            return _v2_error(529, "overloaded, please retry later")
        if kind == "rate_limit":
            return _v2_error(429, "rate limit, please retry later", 1002)
        if kind == "non_json":
            return web.Response(
                text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
            )
        return self._drop(request)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)  # never reaches the client

    def _rate_limited(self) -> web.Response:
        if self._config.rate_limit_mode == "http":
            return web.json_response(
                {"base_resp": _base(1002, "rate limit exceeded(RPM)")},
                status=429,
                headers={"Retry-After": "1"},
            )
        return _inband(1002, "rate limit exceeded(RPM)")

    def _within_rate(self, api_key: str, endpoint: Endpoint) -> bool:
        limit = self._config.rate_limits.get(endpoint)
        if limit is None:
            return True
        now = self._clock()
        window = self._windows.setdefault((api_key, endpoint), deque())
        while window and now - window[0] >= 60.0:
            window.popleft()
        if len(window) >= limit:
            return False
        window.append(now)
        return True

    def _authenticate(self, request: web.Request) -> str | web.Response:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return _inband(1004, _MISSING_KEY)
        if key in self._config.api_keys:
            return key
        return _inband(2049, "invalid api key")

    async def _guard(
        self, request: web.Request, endpoint: Endpoint, *, v2: bool = False
    ) -> tuple[str, str | None] | web.StreamResponse:
        """Faults, auth and rate limit, in the order a gateway meets them (V2: its envelope)."""
        name = endpoint.value
        fault = self._draw_fault(endpoint)
        if fault == "slow":
            await asyncio.sleep(self._config.faults.for_endpoint(endpoint).slow_seconds)
        elif fault not in (None, "lost_response"):  # a lost response is played after the work
            self.counters.count(name, f"fault_{fault}")
            if v2:
                return self._v2_fault_response(request, fault)
            return self._fault_response(request, fault)
        key = self._authenticate(request)
        if isinstance(key, web.Response):
            self.counters.count(name, "auth_error")
            if v2:
                missing = "Bearer" not in request.headers.get("Authorization", "")
                return _v2_error(
                    401, _MISSING_KEY if missing else "invalid api key", 1004 if missing else 2049
                )
            return key
        if not self._within_rate(key, endpoint):
            self.counters.count(name, "rate_limited")
            if v2:
                return _v2_error(429, "rate limit, please retry later", 1002)
            return self._rate_limited()
        return key, fault

    # -- endpoints --------------------------------------------------------------------------

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        guarded = await self._guard(request, Endpoint.SUBMIT)
        if isinstance(guarded, web.StreamResponse):
            return guarded
        key, fault = guarded
        try:
            body = _parse_json(await request.read())
        except ValueError:
            self.counters.count("submit", "invalid")
            return _inband(2013, "invalid params, request body is not valid JSON", task_id="")
        code, problem = self._check_submission(body)
        if code:
            self.counters.count("submit", "rejected" if code == 1000 else "invalid")
            response = _inband(code, problem, task_id="")
        else:
            response = await self._create(key, body, fault)
        if fault == "lost_response":
            return self._drop(request)
        return response

    async def _create(self, key: str, body: Mapping[str, Any], fault: str | None) -> web.Response:
        """Create the task of a valid submission, its callback URL checked first by default."""
        callback_url = body.get("callback_url")
        check: Delivery | None = None
        if callback_url and self._config.challenge and self._config.challenge_timing == "in_create":
            # As the real API was seen to: the challenge during the create call, which
            # answers only after the echo; no echo, no task.
            check = await self.callbacks.challenge(callback_url)
            if check.error is not None:
                self.callbacks.record(check)
                self.counters.count("submit", "callback_check_failed")
                return _inband(2013, _CALLBACK_CHECK_FAILED, task_id="")
        task = self.engine.create(key, body.get("prompt") or "", callback_url)
        if check is not None:
            self.callbacks.record(attrs.evolve(check, task_id=task.task_id))
        if task.callback_url:
            self.callbacks.schedule(task, challenged=check is not None)
        self.counters.count("submit", "lost_response" if fault == "lost_response" else "ok")
        response = web.json_response({"task_id": task.task_id, "base_resp": _base(0, "success")})
        if self._config.submit_answer_delay > 0:
            await asyncio.sleep(self._config.submit_answer_delay)
        return response

    def _check_submission(self, body: object) -> tuple[int, str]:
        """Return (0, "") for a valid S2V-01 request, else the code and message."""
        if not isinstance(body, Mapping):
            return 2013, "invalid params, body must be a JSON object"
        model = body.get("model")
        if model is None:
            return 2013, "invalid params, model is required"
        if model != "S2V-01":
            return 2013, f"invalid params, model {str(model)[:40]!r} is not supported here"
        prompt = body.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            return 2013, "invalid params, prompt must be a string"
        if isinstance(prompt, str) and len(prompt) > _MAX_PROMPT:
            return 2013, f"invalid params, prompt exceeds {_MAX_PROMPT} characters"
        for flag in ("prompt_optimizer", "aigc_watermark"):
            if flag in body and not isinstance(body[flag], bool):
                return 2013, f"invalid params, {flag} must be a boolean"
        callback = body.get("callback_url")
        if callback is not None and not is_http_url(callback):
            return 2013, "invalid params, callback_url must be an http(s) URL"
        subjects = body.get("subject_reference")
        if not isinstance(subjects, list) or len(subjects) != 1:
            return 2013, "invalid params, subject_reference must be a list of exactly one subject"
        subject = subjects[0]
        if not isinstance(subject, Mapping) or subject.get("type") != "character":
            return 2013, "invalid params, subject_reference[0].type must be 'character'"
        images = subject.get("image")
        if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str):
            return 2013, "invalid params, subject_reference[0].image must be a list of one URL"
        return self._check_image(images[0])

    def _check_image(self, image: str) -> tuple[int, str]:
        if source_kind(image) == "data":
            if self._config.data_urls == "reject":
                return 1000, "disallowed image url"
            return _check_data_url(image)
        if not is_http_url(image):
            return 2013, "invalid params, image must be a public http(s) URL"
        return 0, ""

    async def _query(self, request: web.Request) -> web.StreamResponse:
        guarded = await self._guard(request, Endpoint.QUERY)
        if isinstance(guarded, web.StreamResponse):
            return guarded
        key, _ = guarded
        task_id = request.query.get("task_id", "")
        task = self.engine.find(task_id, key) if task_id else None
        if task is None:
            self.counters.count("query", "not_found")
            return _inband(2013, "invalid params, task not found or expired", task_id=task_id)
        status = task.status_at(self._clock())
        self.counters.count("query", status.value.lower())
        self.counters.queries_by_task[task.task_id] += 1
        return web.json_response(task.body(status, status.value))

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        guarded = await self._guard(request, Endpoint.RETRIEVE)
        if isinstance(guarded, web.StreamResponse):
            return guarded
        key, _ = guarded
        raw = request.query.get("file_id", "").strip()
        file = self.engine.file(int(raw), key) if is_id(raw) else None
        if file is None:
            self.counters.count("retrieve", "not_found")
            return _inband(2013, "invalid params, file not found")
        self.counters.count("retrieve", "ok")
        origin = request.url.origin()
        info: dict[str, Any] = {
            "file_id": file.file_id,
            "bytes": VideoBytes(file.size).size if self._config.report_file_bytes else 0,
            "created_at": file.created_at,
            "filename": "output.mp4",
            "purpose": "video_generation",
            "download_url": str(self._signed_url(origin, file.file_id)),
        }
        if self._config.backup_download_url:
            info["backup_download_url"] = str(self._signed_url(origin, file.file_id, backup=True))
        return web.json_response({"file": info, "base_resp": _base(0, "success")})

    def _signature(self, file_id: str, expires: str, salt: str) -> str:
        message = f"{file_id}.{expires}.{salt}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def _signed_url(self, origin: URL, file_id: int, *, backup: bool = False) -> URL:
        expires = f"{time.time() + self._config.download_ttl:.3f}"
        salt = secrets.token_hex(6)
        query = {
            "expires": expires,
            "salt": salt,
            "token": self._signature(str(file_id), expires, salt),
        }
        if backup:
            query["mirror"] = "backup"
        return (origin / "_emulator" / "files" / str(file_id) / "output.mp4").with_query(query)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        expires = request.query.get("expires", "")
        salt = request.query.get("salt", "")
        token = request.query.get("token", "")
        expected = self._signature(file_id, expires, salt)
        if not hmac.compare_digest(token.encode(), expected.encode()):
            self.counters.count("download", "forbidden")
            return _access_denied("SignatureDoesNotMatch")
        try:
            expired = float(expires) < time.time()
        except ValueError:
            expired = True
        if expired:
            self.counters.count("download", "expired")
            return _access_denied("Request has expired")
        file = self.engine.files.get(int(file_id)) if is_id(file_id) else None
        if file is None:
            self.counters.count("download", "not_found")
            return web.Response(status=404, text="NoSuchKey")
        if request.query.get("mirror") == "backup":
            self.counters.backup_downloads += 1
        fault = self._draw_fault(Endpoint.DOWNLOAD)
        if fault in ("http_5xx", "non_json", "server_error", "rate_limit"):
            self.counters.count("download", "fault_http_5xx")
            return web.Response(status=503, text="upstream error 503")
        if fault == "slow":
            await asyncio.sleep(self._config.faults.for_endpoint(Endpoint.DOWNLOAD).slow_seconds)
        video = VideoBytes(file.size)
        return await self._send_video(request, video, drop=fault == "drop")

    async def _send_video(
        self, request: web.Request, video: VideoBytes, *, drop: bool
    ) -> web.StreamResponse:
        span = _parse_range(request.headers.get("Range"), video.size)
        if span is None:
            self.counters.count("download", "bad_range")
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
        rate = self._config.download_rate
        began, sent = time.monotonic(), 0
        for chunk in video.chunks(start, stop):
            await response.write(chunk)
            if rate is not None:  # paced like a CDN link: never ahead of rate * elapsed
                sent += len(chunk)
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        if drop:
            self.counters.count("download", "fault_drop")
            if request.transport is not None:
                request.transport.close()
            return response
        self.counters.count("download", "partial" if partial else "ok")
        await response.write_eof()
        return response

    async def _state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state(tasks=request.query.get("tasks") in ("1", "true")))

    async def _deliveries(self, request: web.Request) -> web.StreamResponse:
        task_id = request.query.get("task_id")
        rows = [d.as_json() for d in self.callbacks.deliveries if task_id in (None, d.task_id)]
        return web.json_response(rows)

    # -- the V2 API (MiniMax-H3) -------------------------------------------------------------

    async def _v2_create(self, request: web.Request) -> web.StreamResponse:
        guarded = await self._guard(request, Endpoint.V2_SUBMIT, v2=True)
        if isinstance(guarded, web.StreamResponse):
            return guarded
        key, fault = guarded
        name = Endpoint.V2_SUBMIT.value
        try:
            body = _parse_json(await request.read())
        except ValueError:
            self.counters.count(name, "invalid")
            return _v2_error(400, "invalid params, request body is not valid JSON", 2013)
        parsed = self._check_v2_submission(body)
        if isinstance(parsed, str):
            self.counters.count(name, "invalid")
            return _v2_error(400, f"invalid params, {parsed}", 2013)
        refused = self._v2_over_limit(key)
        if refused is not None:
            return refused
        callback_url = parsed.callback_url
        check: Delivery | None = None
        if callback_url and self._config.challenge and self._config.challenge_timing == "in_create":
            check = await self.callbacks.challenge(callback_url)
            if check.error is not None:
                self.callbacks.record(check)
                self.counters.count(name, "callback_check_failed")
                return _v2_error(400, _CALLBACK_CHECK_FAILED, 2013)
            refused = self._v2_over_limit(key)  # again: others were created meanwhile
            if refused is not None:
                return refused
        in_flight = self.engine.in_flight(key, Dialect.V2)
        task = self.engine.create(
            key,
            parsed.prompt,
            callback_url,
            dialect=Dialect.V2,
            model=parsed.model,
            resolution=parsed.resolution,
            duration=parsed.duration,
            ratio=parsed.ratio,
        )
        counters = self.counters
        counters.v2_max_in_flight_seen = max(counters.v2_max_in_flight_seen, in_flight + 1)
        if check is not None:
            self.callbacks.record(attrs.evolve(check, task_id=task.task_id))
        if task.callback_url:
            self.callbacks.schedule(task, challenged=check is not None)
        counters.count(name, "lost_response" if fault == "lost_response" else "ok")
        if self._config.submit_answer_delay > 0:
            await asyncio.sleep(self._config.submit_answer_delay)
        if fault == "lost_response":
            return self._drop(request)
        return web.json_response({"task_id": task.task_id})

    def _v2_over_limit(self, key: str) -> web.Response | None:
        """The 429 for a create past the in-flight cap, else ``None`` (nothing is created)."""
        limit = self._config.v2_max_in_flight
        if limit is None or self.engine.in_flight(key, Dialect.V2) < limit:
            return None
        self.counters.count(Endpoint.V2_SUBMIT.value, "in_flight_limited")
        return _v2_error(429, f"rate limit, max inflight tasks {limit} reached", 1002)

    def _check_v2_submission(self, body: object) -> H3Request | str:
        """The request of a valid V2 create, else what is wrong with it."""
        try:
            parsed = parse_h3_request(body)
        except ResponseValidationError as error:
            return "; ".join(error.errors)[:200] or "content is malformed"
        required = ("model", "content", "resolution", "duration")
        missing = [f for f in required if not isinstance(body, Mapping) or f not in body]
        if missing:
            return f"{', '.join(missing)} required"
        problem = self._v2_settings_problem(parsed, body)
        if problem:
            return problem
        for image in (parsed.first_frame, parsed.last_frame, *parsed.references):
            if image is None or source_kind(image) == "upload":
                continue
            if source_kind(image) == "data":
                problem = _check_v2_data_image(image)
            elif not is_http_url(image):
                problem = "image url must be a public URL, a data URI or mm_file://"
            if problem:
                return problem
        return parsed

    def _v2_settings_problem(self, parsed: H3Request, body: object) -> str:
        if parsed.model not in H3_MODELS:
            return f"model {parsed.model[:40]!r} is not supported"
        if not parsed.prompt.strip():
            return "content must include a non-empty text item (prompt is required)"
        if len(parsed.prompt) > _V2_MAX_PROMPT:
            return f"text exceeds {_V2_MAX_PROMPT} characters"
        if parsed.resolution not in _V2_RESOLUTIONS[parsed.model]:
            return f"resolution {parsed.resolution[:10]!r} is not supported by {parsed.model}"
        low, high = _V2_DURATIONS[parsed.model]
        if not low <= parsed.duration <= high:
            return f"duration must be {low}-{high} for {parsed.model}"
        frames = [f for f in (parsed.first_frame, parsed.last_frame) if f is not None]
        references = [*parsed.references, *parsed.reference_videos, *parsed.reference_audios]
        if parsed.ratio is not None and parsed.ratio not in _V2_RATIOS:
            return "ratio is not supported"
        if not frames and not references and parsed.ratio in (None, "adaptive"):
            return "ratio is required for text-to-video and cannot be adaptive"
        if frames and references:
            return "first_frame/last_frame cannot be mixed with reference roles"
        if (
            len(parsed.references) > 9
            or len(parsed.reference_videos) > 3
            or len(parsed.reference_audios) > 3
            or len(frames) + len(references) > 12
        ):
            return "too many media inputs"
        if (
            references
            and parsed.model == MODEL_H3_MAX
            and self._config.h3_max_references == "reject"
        ):
            return f"reference-to-video is not supported by {MODEL_H3_MAX}"
        if (
            isinstance(body, Mapping)
            and "aigc_watermark" in body
            and self._config.v2_aigc_watermark == "reject"
        ):
            return "aigc_watermark is not a supported field"
        if parsed.callback_url is not None and not is_http_url(parsed.callback_url):
            return "callback_url must be an http(s) URL"
        return ""

    def _v2_task_body(self, task: EmulatedTask, status: TaskStatus, origin: URL) -> dict[str, Any]:
        url = None
        if status is TaskStatus.SUCCESS and task.file_id is not None:
            url = str(self._signed_url(origin, task.file_id))
        return h3_task_payload(task.v2_task(status, url, time.time()))

    def _render_callback(self, task: EmulatedTask, status: TaskStatus, text: str) -> dict[str, Any]:
        if task.dialect is Dialect.V2 and self._url is not None:
            return self._v2_task_body(task, status, self._url)
        return task.body(status, text)

    def _v2_find(self, task_id: str, key: str) -> EmulatedTask | None:
        task = self.engine.find(task_id, key) if is_id(task_id) else None
        return task if task is not None and task.dialect is Dialect.V2 else None

    async def _v2_query(self, request: web.Request) -> web.StreamResponse:
        guarded = await self._guard(request, Endpoint.V2_QUERY, v2=True)
        if isinstance(guarded, web.StreamResponse):
            return guarded
        key, _ = guarded
        name = Endpoint.V2_QUERY.value
        task = self._v2_find(request.match_info["task_id"], key)
        if task is None:
            # Outside the 7-day window too: "invalid task_id".
            self.counters.count(name, "not_found")
            return _v2_error(400, "invalid params, invalid task_id", 2013)
        status = task.status_at(self._clock())
        self.counters.count(name, V2_STATUS_TEXT[status])
        self.counters.queries_by_task[task.task_id] += 1
        return web.json_response(self._v2_task_body(task, status, request.url.origin()))

    async def _v2_list(self, request: web.Request) -> web.StreamResponse:
        guarded = await self._guard(request, Endpoint.V2_LIST, v2=True)
        if isinstance(guarded, web.StreamResponse):
            return guarded
        key, _ = guarded
        name = Endpoint.V2_LIST.value
        query = request.query
        try:
            page = int(query.get("page_num", "1"))
            size = int(query.get("page_size", "20"))
        except ValueError:
            page = size = 0
        if not (page >= 1 and 1 <= size <= 100):
            self.counters.count(name, "invalid")
            return _v2_error(400, "invalid params, page_num >= 1 and page_size 1-100", 2013)
        # Both spellings seen: repeated parameters, or one comma-joined value.
        wanted = {t for v in query.getall("filter.task_ids", []) for t in v.split(",") if t}
        status_filter = query.get("filter.status")
        model_filter = query.get("filter.model")
        now = self._clock()
        found = []
        for task in self.engine.tasks.values():
            if task.dialect is not Dialect.V2 or self.engine.find(task.task_id, key) is None:
                continue
            if wanted and task.task_id not in wanted:
                continue
            status = task.status_at(now)
            if status_filter and _V2_STATUS_FILTER.get(status_filter) is not status:
                continue
            if model_filter and task.model != model_filter:
                continue
            found.append((task, status))
        found.sort(key=lambda pair: pair[0].created_mono, reverse=True)
        shown = found[(page - 1) * size : page * size]
        origin = request.url.origin()
        tasks = [
            task.v2_task(
                status,
                str(self._signed_url(origin, task.file_id))
                if status is TaskStatus.SUCCESS and task.file_id is not None
                else None,
                time.time(),
            )
            for task, status in shown
        ]
        self.counters.count(name, "ok")
        return web.json_response(h3_list_payload(tasks, len(found)))

    async def _v2_cancel(self, request: web.Request) -> web.StreamResponse:
        guarded = await self._guard(request, Endpoint.V2_CANCEL, v2=True)
        if isinstance(guarded, web.StreamResponse):
            return guarded
        key, fault = guarded
        name = Endpoint.V2_CANCEL.value
        task = self._v2_find(request.match_info["task_id"], key)
        if task is None:
            self.counters.count(name, "not_found")
            return _v2_error(400, "invalid params, invalid task_id", 2013)
        now = self._clock()
        status = task.status_at(now)
        if status in (TaskStatus.PREPARING, TaskStatus.QUEUEING):
            task.cancelled_at = now
            self.callbacks.cancelled(task)
            action, shown = "cancelled", "cancelled"
        elif status in (TaskStatus.SUCCESS, TaskStatus.FAIL):
            del self.engine.tasks[task.task_id]
            action, shown = "deleted", V2_STATUS_TEXT[status]
        else:
            self.counters.count(name, f"refused_{V2_STATUS_TEXT[status]}")
            return _v2_error(
                400, f"invalid params, a {V2_STATUS_TEXT[status]} task cannot be cancelled", 2013
            )
        self.counters.count(name, action)
        if fault == "lost_response":
            return self._drop(request)
        return web.json_response(h3_cancel_payload(task.task_id, action, shown))

    def charged(self) -> list[str]:
        """The V2 tasks charged so far: those that started running (a queued cancel is free)."""
        now = self._clock()
        return [
            task.task_id
            for task in self.engine.tasks.values()
            if task.dialect is Dialect.V2 and task.charged(now)
        ]

    # Task timelines for tests that look inside.
    def task(self, task_id: str) -> EmulatedTask:
        """The emulated task ``task_id`` (``KeyError`` when unknown)."""
        return self.engine.tasks[task_id]


def _parse_json(raw: bytes) -> Any:
    """The JSON document ``raw``; ``ValueError`` for anything else (too deep included)."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


_ENDPOINT_NAMES = {
    "/v1/video_generation": "submit",
    "/v1/query/video_generation": "query",
    "/v1/files/retrieve": "retrieve",
    "/v2/video_generation": "v2_submit",
    "/v2/query/video_generation": "v2_list",
}


def _endpoint_name(path: str) -> str:
    if path.startswith("/_emulator/files/"):
        return "download"
    if path.startswith("/v2/query/video_generation/"):
        return "v2_query"
    if path.startswith("/v2/video_generation/"):
        return "v2_cancel"
    return _ENDPOINT_NAMES.get(path, "other")


def _access_denied(message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>AccessDenied</Code><Message>{message}</Message></Error>"
    )
    return web.Response(status=403, text=body, content_type="application/xml")


def _check_v2_data_image(image: str) -> str:
    """What is wrong with a V2 data-URL image (``""`` when nothing is)."""
    header, _, encoded = image.partition(",")
    if ";base64" not in header.lower():
        return "data URI must be base64"
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return "data URI is not valid base64"
    if len(data) > _V2_MAX_IMAGE:
        return "image exceeds 30MB"
    try:
        info = read_image_info(data, heif=True)
    except ValueError:
        return "image format must be JPG, JPEG, PNG, WEBP, HEIC or HEIF"
    if not (256 <= info.width <= 5760 and 256 <= info.height <= 5760):
        return "image sides must be 256-5760px"
    if not 0.4 <= info.width / info.height <= 2.5:
        return "image aspect ratio must be between 0.4 and 2.5"
    return ""


def _check_data_url(image: str) -> tuple[int, str]:
    header, _, encoded = image.partition(",")
    if ";base64" not in header.lower():
        return 2013, "invalid params, data URL must be base64"
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return 2013, "invalid params, data URL is not valid base64"
    if len(data) >= _MAX_IMAGE:
        return 2013, "invalid params, image exceeds 20MB"
    try:
        info = read_image_info(data)
    except ValueError:
        return 2013, "invalid params, image format must be JPG, JPEG, PNG or WebP"
    if min(info.width, info.height) <= 300:
        return 2013, "invalid params, image short side must exceed 300px"
    if not 0.4 <= info.width / info.height <= 2.5:
        return 2013, "invalid params, image aspect ratio must be between 2:5 and 5:2"
    return 0, ""


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
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
