"""The callback receiver: MiniMax POSTs task updates here instead of being polled.

Every submission gets its own callback URL, ``<public_url>/<nonce>/<token>``, where the token
is an HMAC of the nonce under the receiver's secret. MiniMax does not sign callbacks, so the
URL is the credential: a request whose token does not verify is answered 404 and changes
nothing. The nonce is registered before the submission is sent, so an update that arrives
before the submit answer is kept and applied once the task id is known.

The receiver answers the ``challenge`` at once, and answers status updates after handing
them to the client that submitted the task. A ``success`` resolves the task only after its
file was retrieved through the authenticated API, and a ``failed`` only after a query
confirms it, so a forged callback cannot hand a caller someone else's video.

Run it standalone (``async with receiver.serve(host, port)``), inside an aiohttp app
(``receiver.setup(app, prefix="/minimax")``) or inside an ASGI app
(``app.mount("/minimax", receiver.asgi())``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import aiohttp
import attrs
from aiohttp import web
from yarl import URL

from ._errors import ResponseValidationError
from ._models import CallbackChallenge, TaskSnapshot
from ._wire import callback_ack, parse_callback

__all__ = ["RECEIVER_KEY", "CallbackReceiver", "CallbackSink", "SelfCheckResult"]

logger = logging.getLogger("minimax_s2v")

_NONCE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_TOKEN = re.compile(r"^[0-9a-f]{32}$")

ASGIScope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]
BodyReader = Callable[[], Awaitable[tuple[bytes, bool]]]


class CallbackSink(Protocol):
    """Who receives a task's updates: the :class:`~minimax_s2v.Client` that submitted it."""

    @property
    def shares_updates(self) -> bool:
        """Whether updates for tasks other replicas follow can be handed over (shared store)."""
        ...

    def knows_task(self, task_id: str) -> bool:
        """Whether this sink follows ``task_id``."""
        ...

    async def task_id_for_nonce(self, nonce: str) -> str | None:
        """The task a nonce's submission created, as the (shared) store knows it."""
        ...

    async def deliver_callback(
        self, snapshot: TaskSnapshot, *, nonce: str | None = None, recorded: bool = False
    ) -> None:
        """Take an authenticated update; return once it is recorded (then it is acknowledged)."""
        ...

    async def record_early(self, snapshot: TaskSnapshot, nonce: str) -> None:
        """Journal an update that arrived before its submission's answer."""
        ...

    async def adopt(self, nonce: str, task_id: str) -> None:
        """A callback named the task of a submission whose answer was lost: follow it."""
        ...


@attrs.frozen
class SelfCheckResult:
    """What :meth:`CallbackReceiver.self_check` saw."""

    ok: bool
    url: str
    latency: float | None
    http_status: int | None
    error: str | None = None


class _Binding:
    """A nonce: the sink that registered it, and its task once known."""

    __slots__ = ("bound", "created", "early", "nonce", "sink", "task_id", "token", "uncertain")

    def __init__(self, nonce: str, sink: CallbackSink | None, token: str) -> None:
        self.nonce = nonce
        self.token = token  # the HMAC of the nonce, kept to verify its callbacks cheaply
        self.sink = sink
        self.task_id: str | None = None
        self.bound = False  # the submit answer confirmed task_id
        self.uncertain = False  # the submit answer was lost: the first callback names the task
        self.created = time.monotonic()
        self.early: tuple[TaskSnapshot, ...] = ()  # a tuple: most nonces never need one


_ACK = callback_ack()
_ACK_BODY = json.dumps(_ACK).encode()

RECEIVER_KEY: web.AppKey[CallbackReceiver] = web.AppKey("minimax_s2v.receiver")


class CallbackReceiver:
    """Receives MiniMax's callbacks and hands them to the client that submitted each task.

    Args:
        public_url: the URL MiniMax can reach this receiver at, as mounted (e.g.
            ``https://example.com/minimax``); each submission's URL is built under it.
        secret: key of the HMAC in callback URLs. Give the same secret to every replica and
            across restarts, or URLs issued before a restart stop verifying. Random if omitted.
        max_body: largest body accepted, in bytes (413 beyond).
        fallback_after: seconds after submission after which a task with no final callback
            is polled instead (lost callbacks delay a result, they never lose it).
        challenge_warning_after: seconds after the first submission after which, if no
            challenge has arrived, a warning says ``public_url`` is probably unreachable.
        max_bindings: nonces remembered at most (the oldest are forgotten first).
        binding_ttl: seconds a nonce is remembered.
        early_limit: updates kept per nonce before its task id is confirmed.
    """

    def __init__(
        self,
        public_url: str | URL,
        *,
        secret: str | bytes | None = None,
        max_body: int = 64 * 1024,
        fallback_after: float = 360.0,
        challenge_warning_after: float = 10.0,
        max_bindings: int = 100_000,
        binding_ttl: float = 24 * 3600.0,
        early_limit: int = 16,
    ) -> None:
        url = URL(str(public_url))
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"public_url must be an absolute http(s) URL, not {str(url)!r}")
        if url.query_string or url.fragment:
            raise ValueError("public_url must not carry a query or a fragment")
        self.public_url = url
        if secret is None:
            secret = secrets.token_bytes(32)
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(self._secret) < 16:
            raise ValueError("secret must be at least 16 bytes long")
        self.max_body = max_body
        self.fallback_after = fallback_after
        self.challenge_warning_after = challenge_warning_after
        self._max_bindings = max_bindings
        self._binding_ttl = binding_ttl
        self._early_limit = early_limit
        self._bindings: OrderedDict[str, _Binding] = OrderedDict()
        self._default_sink: CallbackSink | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._warned = False
        self._watching_challenges = False
        #: What the receiver has seen: challenges, updates, rejections by reason, …
        self.stats: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"CallbackReceiver(public_url={str(self.public_url)!r})"

    # -- URLs and nonces --------------------------------------------------------------------

    def _token(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def callback_url(self, nonce: str) -> URL:
        """The callback URL of ``nonce``."""
        if not _NONCE.match(nonce):
            raise ValueError("a nonce is 8 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")
        return self.public_url / nonce / self._token(nonce)

    def _verified_nonce(self, path: str) -> str | None:
        parts = path.strip("/").split("/")
        if len(parts) != 2:
            return None
        nonce, token = parts
        binding = self._bindings.get(nonce)
        if binding is not None:  # a nonce we hold: its token is known, no HMAC to compute
            return nonce if hmac.compare_digest(token, binding.token) else None
        if not _NONCE.match(nonce) or not _TOKEN.match(token):
            return None
        if not hmac.compare_digest(token, self._token(nonce)):
            return None
        return nonce

    def attach(self, sink: CallbackSink) -> None:
        """Hand updates for nonces this receiver does not hold to ``sink`` (a client)."""
        self._default_sink = sink

    def expect(self, nonce: str, sink: CallbackSink) -> URL:
        """Register ``nonce`` before its submission is sent; returns its callback URL."""
        url = self.callback_url(nonce)
        # Updates may have come first (e.g. after a restart, before resume()): they are kept.
        self._binding(nonce, sink, url.name)
        self._default_sink = sink
        self._watch_challenges()
        return url

    async def bind(self, nonce: str, task_id: str) -> None:
        """Tie ``nonce`` to the task its submission created, and apply what came early."""
        binding = self._bindings.get(nonce)
        if binding is None:
            return
        early, binding.early = binding.early, ()
        if binding.task_id is not None and binding.task_id != task_id:
            self.stats["conflicts"] += 1
            logger.warning(
                "callbacks for nonce %s named task %s, but the submission created task %s; "
                "they were dropped",
                nonce,
                binding.task_id,
                task_id,
            )
            early = ()
        binding.task_id = task_id
        binding.bound = True
        if binding.sink is not None:
            for snapshot in early:
                await binding.sink.deliver_callback(snapshot, nonce=nonce, recorded=True)

    def expect_uncertain(self, nonce: str, sink: CallbackSink) -> None:
        """Keep ``nonce`` of a submission whose answer was lost: its first callback binds it."""
        self._binding(nonce, sink).uncertain = True

    def discard(self, nonce: str) -> None:
        """Forget ``nonce``: its submission certainly created nothing."""
        self._bindings.pop(nonce, None)

    def task_id_for(self, nonce: str) -> str | None:
        """The task id callbacks have named for ``nonce``, if any."""
        binding = self._bindings.get(nonce)
        return binding.task_id if binding else None

    def _binding(self, nonce: str, sink: CallbackSink | None, token: str | None = None) -> _Binding:
        """The binding of ``nonce``, made if new; its callbacks go to ``sink`` from now on."""
        binding = self._bindings.get(nonce)
        if binding is None:
            self._evict()
            token = token or self._token(nonce)
            binding = self._bindings[nonce] = _Binding(nonce, sink, token)
        else:
            binding.sink = sink
        return binding

    def _evict(self) -> None:
        cutoff = time.monotonic() - self._binding_ttl
        while self._bindings:
            oldest = next(iter(self._bindings.values()))
            if len(self._bindings) < self._max_bindings and oldest.created > cutoff:
                break
            self._bindings.popitem(last=False)

    # -- the protocol, without I/O ----------------------------------------------------------

    async def process(
        self, method: str, path: str, read_body: BodyReader
    ) -> tuple[int, dict[str, Any]]:
        """Answer one request to ``path`` (relative to the mount point): (status, JSON body).

        ``read_body`` is awaited only for a verified path and returns ``(bytes, too_large)``.
        No input raises; no input makes it answer 500.
        """
        nonce, refusal = self._route(method, path)
        if refusal is not None:
            return refusal
        assert nonce is not None  # noqa: S101 - _route gives one or the other
        try:
            raw, too_large = await read_body()
        except Exception:  # noqa: BLE001 - the receiver must answer, whatever happens
            return self._failed()
        return await self._answer(nonce, raw, too_large)

    def _route(
        self, method: str, path: str
    ) -> tuple[str | None, tuple[int, dict[str, Any]] | None]:
        """The verified nonce of a request, or the answer that refuses it."""
        try:
            nonce = self._verified_nonce(path)
        except Exception:  # noqa: BLE001 - the receiver must answer, whatever happens
            return None, self._failed()
        if nonce is None:
            self.stats["rejected_path"] += 1
            return None, (404, {"error": "not found"})
        if method.upper() != "POST":
            self.stats["rejected_method"] += 1
            return None, (405, {"error": "method not allowed: callbacks are POSTed"})
        return nonce, None

    async def _answer(self, nonce: str, raw: bytes, too_large: bool) -> tuple[int, dict[str, Any]]:
        """Answer a verified callback's body: the challenge at once, an update once recorded."""
        try:
            if too_large:
                self.stats["rejected_too_large"] += 1
                return 413, {"error": f"body larger than {self.max_body} bytes"}
            try:
                data = json.loads(raw.decode("utf-8"))  # a str skips json's encoding detection
            except (ValueError, UnicodeDecodeError, RecursionError):
                self.stats["rejected_body"] += 1
                return 400, {"error": "body is not JSON"}
            try:
                message = parse_callback(data)
            except ResponseValidationError as error:
                self.stats["rejected_body"] += 1
                return 400, {"error": "; ".join(error.errors)[:300]}
            if isinstance(message, CallbackChallenge):
                self.stats["challenges"] += 1
                return 200, {"challenge": message.challenge}
            return await self._update(nonce, message)
        except Exception:  # noqa: BLE001 - the receiver must answer, whatever happens
            return self._failed()

    def _failed(self) -> tuple[int, dict[str, Any]]:
        logger.exception("callback handling failed")
        self.stats["errors"] += 1
        return 400, {"error": "the callback could not be processed"}

    def holds(self, nonce: str) -> bool:
        """Whether this receiver has a binding for ``nonce``."""
        return nonce in self._bindings

    async def accept_remote(self, nonce: str, snapshot: TaskSnapshot) -> None:
        """An update another replica received and recorded, for a nonce bound here."""
        await self._update(nonce, snapshot, recorded=True)

    async def _update(
        self, nonce: str, snapshot: TaskSnapshot, *, recorded: bool = False
    ) -> tuple[int, dict[str, Any]]:
        binding = self._bindings.get(nonce)
        if binding is None:
            # A nonce we issued (the token verified) but do not hold: from before a restart,
            # or submitted by another replica. Hand it over if our client follows the task
            # or shares a store with the replica that does; otherwise keep it here.
            sink = self._default_sink
            if sink is not None and (sink.knows_task(snapshot.task_id) or sink.shares_updates):
                known = await sink.task_id_for_nonce(nonce) if sink.shares_updates else None
                if known is not None and known != snapshot.task_id:
                    return self._conflict(nonce, snapshot, known)
                self.stats["updates"] += 1
                await sink.deliver_callback(snapshot, nonce=nonce, recorded=recorded)
                return 200, _ACK
            # Not followed (yet): kept as an early update, journaled through the sink before
            # it is acknowledged; resume() or a submit answer binds the nonce and applies it.
            binding = self._binding(nonce, sink)
        if binding.task_id is not None and binding.task_id != snapshot.task_id:
            return self._conflict(nonce, snapshot, binding.task_id)
        self.stats["updates"] += 1
        if binding.uncertain and not binding.bound and binding.sink is not None:
            self.stats["adopted"] += 1
            binding.task_id = snapshot.task_id
            binding.bound = True
            await binding.sink.adopt(nonce, snapshot.task_id)
        if binding.bound and binding.sink is not None:
            await binding.sink.deliver_callback(snapshot, nonce=nonce, recorded=recorded)
            return 200, _ACK
        binding.task_id = snapshot.task_id
        if binding.sink is not None and not recorded:
            await binding.sink.record_early(snapshot, nonce)  # on record before it is acknowledged
        if len(binding.early) < self._early_limit:
            self.stats["early"] += 1
            binding.early = (*binding.early, snapshot)
        else:
            self.stats["early_dropped"] += 1
        return 200, _ACK

    def _conflict(
        self, nonce: str, snapshot: TaskSnapshot, owner: str
    ) -> tuple[int, dict[str, Any]]:
        self.stats["conflicts"] += 1
        logger.warning(
            "callback for nonce %s names task %s, but the nonce belongs to task %s: rejected",
            nonce,
            snapshot.task_id,
            owner,
        )
        return 409, {"error": "task_id does not match this callback URL"}

    # -- a warning for the most common misconfiguration ------------------------------------

    def _watch_challenges(self) -> None:
        if self._watching_challenges or self._warned:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._watching_challenges = True
        job = loop.create_task(self._warn_if_unreachable())
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _warn_if_unreachable(self) -> None:
        await asyncio.sleep(self.challenge_warning_after)
        self._watching_challenges = False
        if self.stats["challenges"] == 0 and not self._warned:
            self._warned = True
            logger.warning(
                "no callback challenge has arrived %.0fs after submitting with callbacks: "
                "%s is probably unreachable from MiniMax (check DNS, TLS, the reverse proxy "
                "and the mount path; receiver.self_check() tests the round trip); tasks fall "
                "back to polling after %.0fs",
                self.challenge_warning_after,
                self.public_url,
                self.fallback_after,
            )

    async def close(self) -> None:
        """Cancel the receiver's background work."""
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)

    # -- aiohttp ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        return await self._respond(request, request.match_info["tail"])

    async def _respond(self, request: web.BaseRequest, path: str) -> web.Response:
        # process() in steps, without its body-reading callback: this runs for every callback.
        nonce, answer = self._route(request.method, path)
        if answer is None:
            assert nonce is not None  # noqa: S101 - _route gives one or the other
            declared = request.content_length
            if declared is not None and declared > self.max_body:
                answer = await self._answer(nonce, b"", True)
            else:
                try:
                    raw = await request.content.read(self.max_body + 1)
                except Exception:  # noqa: BLE001 - a broken upload; the receiver still answers
                    answer = self._failed()
                else:
                    answer = await self._answer(nonce, raw, len(raw) > self.max_body)
        status, payload = answer
        if payload is _ACK:
            return web.Response(body=_ACK_BODY, content_type="application/json")
        return web.json_response(payload, status=status)

    def make_app(self, mount: str = "") -> web.Application:
        """A new aiohttp application serving the callbacks under ``mount`` (default: its root)."""
        app = web.Application()
        app[RECEIVER_KEY] = self
        # One route, no sub-application: the standalone server resolves it in one step.
        app.router.add_route("*", mount + "/{tail:.*}", self._handle)

        async def cleanup(_: web.Application) -> None:
            await self.close()

        app.on_cleanup.append(cleanup)
        return app

    def setup(self, app: web.Application, prefix: str = "/minimax") -> web.Application:
        """Mount the receiver into ``app`` at ``prefix``; returns ``app``.

        ``public_url`` must end with the same path. The receiver reads bodies with its own
        limit (``max_body``): a sub-app's ``client_max_size`` is not used by aiohttp.
        """
        app.add_subapp(prefix, self.make_app())
        app[RECEIVER_KEY] = self
        return app

    @asynccontextmanager
    async def serve(
        self, host: str = "127.0.0.1", port: int = 8080, *, path: str | None = None
    ) -> AsyncIterator[URL]:
        """Serve the receiver on its own aiohttp site; yields the local base URL.

        Args:
            host: the address to listen on.
            port: the port (0 picks a free one).
            path: where to mount; by default the path of ``public_url``, so that a reverse
                proxy can forward it unchanged.
        """
        mount = (self.public_url.path if path is None else path).rstrip("/")
        prefix = mount + "/"

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            # aiohttp's low-level server: the receiver is the only thing served here, so
            # no application, router or middleware stands between a callback and its answer.
            if not request.path.startswith(prefix):
                self.stats["rejected_path"] += 1
                return web.json_response({"error": "not found"}, status=404)
            return await self._respond(request, request.path[len(prefix) :])

        runner = web.ServerRunner(web.Server(handle, access_log=None), handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
            yield URL.build(scheme="http", host=bound_host, port=bound_port, path=mount or "/")
        finally:
            await runner.cleanup()
            await self.close()

    # -- ASGI ------------------------------------------------------------------------------

    def asgi(self) -> ASGIApp:
        """A plain ASGI application, e.g. ``fastapi_app.mount("/minimax", receiver.asgi())``."""

        async def app(scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
            if scope["type"] == "lifespan":
                await _asgi_lifespan(receive, send, self.close)
                return
            if scope["type"] != "http":
                return
            path: str = scope.get("path", "")
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]

            async def read_body() -> tuple[bytes, bool]:
                for name, value in scope.get("headers", ()):
                    declared = name.lower() == b"content-length" and value.isdigit()
                    if declared and int(value) > self.max_body:
                        return b"", True
                body = bytearray()
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return bytes(body), False
                    body += message.get("body", b"")
                    if len(body) > self.max_body:
                        return b"", True
                    if not message.get("more_body", False):
                        return bytes(body), False

            status, payload = await self.process(scope.get("method", "GET"), path, read_body)
            data = json.dumps(payload).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(data)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": data})

        return app

    # -- deployment check ------------------------------------------------------------------

    async def self_check(self, timeout: float = 5.0) -> SelfCheckResult:
        """POST a challenge to ``public_url`` as MiniMax would, and report whether it came back.

        Run it where the service is deployed: it checks DNS, TLS, the proxy and the mount.
        """
        nonce = "selfcheck-" + secrets.token_urlsafe(8)
        url = self.callback_url(nonce)
        challenge = secrets.token_urlsafe(16)
        started = time.perf_counter()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    url, json={"challenge": challenge}, timeout=aiohttp.ClientTimeout(total=timeout)
                ) as response,
            ):
                status = response.status
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return SelfCheckResult(False, str(url), None, None, f"{type(exc).__name__}: {exc}")
        latency = time.perf_counter() - started
        try:
            echoed = json.loads(text).get("challenge")
        except (ValueError, AttributeError):
            echoed = None
        if status != 200 or echoed != challenge:
            error = f"HTTP {status}, the challenge was not echoed back"
            return SelfCheckResult(False, str(url), latency, status, error)
        if latency > 3.0:
            error = f"answered in {latency:.2f}s; MiniMax allows 3s"
            return SelfCheckResult(False, str(url), latency, status, error)
        return SelfCheckResult(True, str(url), latency, status)


async def _asgi_lifespan(
    receive: ASGIReceive, send: ASGISend, shutdown: Callable[[], Awaitable[None]]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
