"""The emulator's HTTP side: the MiniMax endpoints of both dialects and introspection.

What meets a request first (faults, the key, rate limits) is in ``_gateway``, the checks of
a create request in ``_validation``, signed downloads in ``_downloads``; this module routes
requests through them to the task engine and answers in each dialect's shape.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web
from yarl import URL

from .._models import Dialect, H3Task, TaskStatus
from .._wire import h3_cancel_payload, h3_list_payload, h3_task_payload, is_id
from ._answers import CALLBACK_CHECK_FAILED, base, drop, inband, v2_error
from ._callbacks import CallbackSender, Delivery
from ._config import EmulatorConfig, Endpoint
from ._downloads import FileServer
from ._engine import V2_STATUS_TEXT, Counters, EmulatedTask, TaskEngine
from ._gateway import Gateway
from ._state import EmulatorState
from ._validation import check_submission, check_v2_submission, parse_json
from ._video import VideoBytes

__all__ = ["Emulator"]

logger = logging.getLogger("minimax_s2v.emulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: An endpoint's handler, given the request, the key it was admitted with and the fault
#: still to play (see :class:`~minimax_s2v.emulator._gateway.Gateway`).
AdmittedHandler = Callable[[web.Request, str, "str | None"], Awaitable[web.StreamResponse]]

_MAX_BODY = 64 * 1024 * 1024
_V2_STATUS_FILTER = {text: status for status, text in V2_STATUS_TEXT.items()}


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
        self.gateway = Gateway(lambda: self._config, self.engine.counters, self._clock)
        self.files = FileServer(lambda: self._config, self.engine, self.gateway)
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
        router = app.router
        router.add_post("/v1/video_generation", self._admitted(Endpoint.SUBMIT, self._submit))
        router.add_get("/v1/query/video_generation", self._admitted(Endpoint.QUERY, self._query))
        router.add_get("/v1/files/retrieve", self._admitted(Endpoint.RETRIEVE, self._retrieve))
        router.add_post("/v2/video_generation", self._admitted(Endpoint.V2_SUBMIT, self._v2_create))
        router.add_get(
            "/v2/query/video_generation/{task_id}",
            self._admitted(Endpoint.V2_QUERY, self._v2_query),
        )
        router.add_get(
            "/v2/query/video_generation", self._admitted(Endpoint.V2_LIST, self._v2_list)
        )
        router.add_delete(
            "/v2/video_generation/{task_id}", self._admitted(Endpoint.V2_CANCEL, self._v2_cancel)
        )
        router.add_get("/_emulator/files/{file_id}/{name}", self.files.download)
        router.add_get("/_emulator/state", self._state)
        router.add_get("/_emulator/deliveries", self._deliveries)
        return app

    def _admitted(self, endpoint: Endpoint, handler: AdmittedHandler) -> Handler:
        """``handler`` behind the gateway: it runs only for requests the gateway admits."""
        v2 = endpoint.value.startswith("v2_")

        async def admit(request: web.Request) -> web.StreamResponse:
            admitted = await self.gateway.admit(request, endpoint, v2=v2)
            if isinstance(admitted, web.StreamResponse):
                return admitted
            key, fault = admitted
            return await handler(request, key, fault)

        return admit

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
                response = v2_error(500, "internal error", 1000)
            else:
                response = inband(1000, "unknown error")
        if not response.prepared:
            response.headers["Trace-Id"] = trace_id
        return response

    # -- what both dialects do alike --------------------------------------------------------

    async def _challenge_in_create(self, name: str, callback_url: str | None) -> Delivery | bool:
        """Check ``callback_url`` during the create call, when so configured.

        As the real API was seen to: the challenge is sent during the create call, which
        answers only after the echo; no echo, no task. Returns the challenge's delivery once
        echoed, ``True`` when none was due, ``False`` (counted, recorded) when it failed.
        """
        config = self._config
        if not (callback_url and config.challenge and config.challenge_timing == "in_create"):
            return True
        check = await self.callbacks.challenge(callback_url)
        if check.error is None:
            return check
        self.callbacks.record(check)
        self.counters.count(name, "callback_check_failed")
        return False

    async def _created(
        self, name: str, task: EmulatedTask, check: Delivery | bool, fault: str | None
    ) -> None:
        """Record a new task's challenge, schedule its callbacks, count it, then wait to answer."""
        challenged = isinstance(check, Delivery)
        if isinstance(check, Delivery):
            self.callbacks.record(attrs.evolve(check, task_id=task.task_id))
        if task.callback_url:
            self.callbacks.schedule(task, challenged=challenged)
        self.counters.count(name, "lost_response" if fault == "lost_response" else "ok")
        if self._config.submit_answer_delay > 0:
            await asyncio.sleep(self._config.submit_answer_delay)

    def _queried(
        self, name: str, task: EmulatedTask, counted: Callable[[TaskStatus], str]
    ) -> TaskStatus:
        """The status a query of ``task`` reports now, counted as ``counted(status)``."""
        status = task.status_at(self._clock())
        self.counters.count(name, counted(status))
        self.counters.queries_by_task[task.task_id] += 1
        return status

    # -- the V1 API (S2V-01) ----------------------------------------------------------------

    async def _submit(
        self, request: web.Request, key: str, fault: str | None
    ) -> web.StreamResponse:
        try:
            body = await _json_body(request)
        except ValueError:
            self.counters.count("submit", "invalid")
            return inband(2013, "invalid params, request body is not valid JSON", task_id="")
        code, problem = check_submission(body, self._config)
        if code:
            self.counters.count("submit", "rejected" if code == 1000 else "invalid")
            response = inband(code, problem, task_id="")
        else:
            response = await self._create(key, body, fault)
        if fault == "lost_response":
            return drop(request)
        return response

    async def _create(self, key: str, body: dict[str, Any], fault: str | None) -> web.Response:
        """Create the task of a valid submission, its callback URL checked first by default."""
        callback_url = body.get("callback_url")
        check = await self._challenge_in_create("submit", callback_url)
        if check is False:
            return inband(2013, CALLBACK_CHECK_FAILED, task_id="")
        task = self.engine.create(key, body.get("prompt") or "", callback_url)
        await self._created("submit", task, check, fault)
        return web.json_response({"task_id": task.task_id, "base_resp": base(0, "success")})

    async def _query(self, request: web.Request, key: str, _: str | None) -> web.StreamResponse:
        task_id = request.query.get("task_id", "")
        task = self.engine.find(task_id, key) if task_id else None
        if task is None:
            self.counters.count("query", "not_found")
            return inband(2013, "invalid params, task not found or expired", task_id=task_id)
        status = self._queried("query", task, lambda s: s.value.lower())
        return web.json_response(task.body(status, status.value))

    async def _retrieve(self, request: web.Request, key: str, _: str | None) -> web.StreamResponse:
        raw = request.query.get("file_id", "").strip()
        file = self.engine.file(int(raw), key) if is_id(raw) else None
        if file is None:
            self.counters.count("retrieve", "not_found")
            return inband(2013, "invalid params, file not found")
        self.counters.count("retrieve", "ok")
        origin = request.url.origin()
        info: dict[str, Any] = {
            "file_id": file.file_id,
            "bytes": VideoBytes(file.size).size if self._config.report_file_bytes else 0,
            "created_at": file.created_at,
            "filename": "output.mp4",
            "purpose": "video_generation",
            "download_url": str(self.files.signed_url(origin, file.file_id)),
        }
        if self._config.backup_download_url:
            backup = self.files.signed_url(origin, file.file_id, backup=True)
            info["backup_download_url"] = str(backup)
        return web.json_response({"file": info, "base_resp": base(0, "success")})

    async def _state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state(tasks=request.query.get("tasks") in ("1", "true")))

    async def _deliveries(self, request: web.Request) -> web.StreamResponse:
        task_id = request.query.get("task_id")
        rows = [d.as_json() for d in self.callbacks.deliveries if task_id in (None, d.task_id)]
        return web.json_response(rows)

    # -- the V2 API (MiniMax-H3) -------------------------------------------------------------

    async def _v2_create(
        self, request: web.Request, key: str, fault: str | None
    ) -> web.StreamResponse:
        name = Endpoint.V2_SUBMIT.value
        try:
            body = await _json_body(request)
        except ValueError:
            self.counters.count(name, "invalid")
            return v2_error(400, "invalid params, request body is not valid JSON", 2013)
        parsed = check_v2_submission(body, self._config)
        if isinstance(parsed, str):
            self.counters.count(name, "invalid")
            return v2_error(400, f"invalid params, {parsed}", 2013)
        refused = self._v2_over_limit(key)
        if refused is not None:
            return refused
        check = await self._challenge_in_create(name, parsed.callback_url)
        if check is False:
            return v2_error(400, CALLBACK_CHECK_FAILED, 2013)
        if check is not True:
            refused = self._v2_over_limit(key)  # again: others were created meanwhile
            if refused is not None:
                return refused
        in_flight = self.engine.in_flight(key, Dialect.V2)
        task = self.engine.create(
            key,
            parsed.prompt,
            parsed.callback_url,
            dialect=Dialect.V2,
            model=parsed.model,
            resolution=parsed.resolution,
            duration=parsed.duration,
            ratio=parsed.ratio,
        )
        counters = self.counters
        counters.v2_max_in_flight_seen = max(counters.v2_max_in_flight_seen, in_flight + 1)
        await self._created(name, task, check, fault)
        if fault == "lost_response":
            return drop(request)
        return web.json_response({"task_id": task.task_id})

    def _v2_over_limit(self, key: str) -> web.Response | None:
        """The 429 for a create past the in-flight cap, else ``None`` (nothing is created)."""
        limit = self._config.v2_max_in_flight
        if limit is None or self.engine.in_flight(key, Dialect.V2) < limit:
            return None
        self.counters.count(Endpoint.V2_SUBMIT.value, "in_flight_limited")
        return v2_error(429, f"rate limit, max inflight tasks {limit} reached", 1002)

    def _v2_task(self, task: EmulatedTask, status: TaskStatus, origin: URL) -> H3Task:
        url = None
        if status is TaskStatus.SUCCESS and task.file_id is not None:
            url = str(self.files.signed_url(origin, task.file_id))
        return task.v2_task(status, url, time.time())

    def _render_callback(self, task: EmulatedTask, status: TaskStatus, text: str) -> dict[str, Any]:
        if task.dialect is Dialect.V2 and self._url is not None:
            return h3_task_payload(self._v2_task(task, status, self._url))
        return task.body(status, text)

    def _v2_find(self, request: web.Request, key: str, name: str) -> EmulatedTask | web.Response:
        """The V2 task the path names, else the 400 (outside the 7-day window too)."""
        task_id = request.match_info["task_id"]
        task = self.engine.find(task_id, key) if is_id(task_id) else None
        if task is None or task.dialect is not Dialect.V2:
            self.counters.count(name, "not_found")
            return v2_error(400, "invalid params, invalid task_id", 2013)
        return task

    async def _v2_query(self, request: web.Request, key: str, _: str | None) -> web.StreamResponse:
        name = Endpoint.V2_QUERY.value
        task = self._v2_find(request, key, name)
        if isinstance(task, web.Response):
            return task
        status = self._queried(name, task, V2_STATUS_TEXT.__getitem__)
        return web.json_response(h3_task_payload(self._v2_task(task, status, request.url.origin())))

    async def _v2_list(self, request: web.Request, key: str, _: str | None) -> web.StreamResponse:
        name = Endpoint.V2_LIST.value
        query = request.query
        try:
            page = int(query.get("page_num", "1"))
            size = int(query.get("page_size", "20"))
        except ValueError:
            page = size = 0
        if not (page >= 1 and 1 <= size <= 100):
            self.counters.count(name, "invalid")
            return v2_error(400, "invalid params, page_num >= 1 and page_size 1-100", 2013)
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
        tasks = [self._v2_task(task, status, origin) for task, status in shown]
        self.counters.count(name, "ok")
        return web.json_response(h3_list_payload(tasks, len(found)))

    async def _v2_cancel(
        self, request: web.Request, key: str, fault: str | None
    ) -> web.StreamResponse:
        name = Endpoint.V2_CANCEL.value
        task = self._v2_find(request, key, name)
        if isinstance(task, web.Response):
            return task
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
            return v2_error(
                400, f"invalid params, a {V2_STATUS_TEXT[status]} task cannot be cancelled", 2013
            )
        self.counters.count(name, action)
        if fault == "lost_response":
            return drop(request)
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


_ENDPOINT_NAMES = {
    "/v1/video_generation": "submit",
    "/v1/query/video_generation": "query",
    "/v1/files/retrieve": "retrieve",
    "/v2/video_generation": "v2_submit",
    "/v2/query/video_generation": "v2_list",
}


async def _json_body(request: web.Request) -> Any:
    """The request's JSON body; ``ValueError`` when it is not JSON or cannot be read.

    A body that does not decode as its ``Content-Encoding`` says fails to be read at all.
    """
    try:
        raw = await request.read()
    except web.RequestPayloadError:
        raise ValueError("the body does not decode as its Content-Encoding says") from None
    return parse_json(raw)


def _endpoint_name(path: str) -> str:
    if path.startswith("/_emulator/files/"):
        return "download"
    if path.startswith("/v2/query/video_generation/"):
        return "v2_query"
    if path.startswith("/v2/video_generation/"):
        return "v2_cancel"
    return _ENDPOINT_NAMES.get(path, "other")
