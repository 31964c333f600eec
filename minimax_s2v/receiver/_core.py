"""The receiver's core: callback URLs, their verification, and the answer to each request.

No I/O happens here but the sink's: an adapter (aiohttp, ASGI) reads the request, the core
decides the answer. Every submission gets its own callback URL, ``<public_url>/<nonce>/<token>``,
where the token is an HMAC of the nonce under the receiver's secret. MiniMax does not sign
callbacks, so the URL is the credential. What the core enforces (the full trust rules are in
:mod:`minimax_s2v._tracking`):

- a path that is not ``<nonce>/<token>`` with a token that verifies gets 404, whatever it
  holds (non-hex, non-ASCII, %-encoded, too long), and changes nothing;
- a ``challenge`` on a verified URL is echoed at once: it changes nothing, and a replica that
  did not issue the URL must still pass MiniMax's check during the create call;
- a status update on a verified URL is handed to the sink that holds its nonce, and answered
  with what the sink says: 200 once journaled, 404 for a nonce nobody holds (the
  ``self_check()`` nonces included), 409 for a task other than the nonce's, 503 when the sink
  is closed or its store failed. No input makes the core answer 500.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import attrs
from aiohttp import web
from yarl import URL

from .._bounded import BoundedMap, PacedWarning
from .._errors import ConfigurationError, ResponseValidationError
from .._models import CallbackChallenge, TaskSnapshot
from .._redaction import shown_url
from .._stats import ReceiverCounts, ReceiverStats
from .._validators import check_argument, number
from .._wire import callback_ack, is_http_url, parse_callback

__all__ = [
    "RECEIVER_KEY",
    "SELF_CHECK_PREFIX",
    "CallbackSink",
    "CallbackVerdict",
    "ReceiverCore",
    "ReceiverTimeouts",
    "SelfCheckResult",
]

logger = logging.getLogger("minimax_s2v")

_NONCE = re.compile(r"[A-Za-z0-9_-]{8,64}", re.ASCII)
# A callback path relative to the mount point: "<nonce>/<token>", slashes around allowed.
_PATH = re.compile(r"/*([A-Za-z0-9_-]{8,64})/([0-9a-f]{32})/*", re.ASCII)
SELF_CHECK_PREFIX = "selfcheck-"  # nonces minted by self_check(): challenges only

BodyReader = Callable[[], Awaitable[tuple[bytes, bool]]]
Answer = tuple[int, bytes]  # the HTTP status and the JSON body, encoded


class CallbackVerdict(enum.Enum):
    """What became of a verified status callback; the receiver answers :attr:`http_status`."""

    RECORDED = "recorded"  # journaled, and news (applied, or kept until its task is known)
    DUPLICATE = "duplicate"  # journaled, and changed nothing (known, stale, being confirmed)
    UNKNOWN = "unknown"  # the nonce is not held and the journal does not know it
    CONFLICT = "conflict"  # the nonce is bound to another task
    UNAVAILABLE = "unavailable"  # closed, or the store could not record it: nothing changed

    @property
    def http_status(self) -> int:
        """The HTTP status the receiver answers with."""
        return _VERDICT_STATUS[self]


_VERDICT_STATUS = {
    CallbackVerdict.RECORDED: 200,
    CallbackVerdict.DUPLICATE: 200,
    CallbackVerdict.UNKNOWN: 404,
    CallbackVerdict.CONFLICT: 409,
    CallbackVerdict.UNAVAILABLE: 503,
}


class CallbackSink(Protocol):
    """Who takes verified status updates: the tracker of the client that submitted the task."""

    async def deliver(self, nonce: str, snapshot: TaskSnapshot) -> CallbackVerdict:
        """Take an update; return once it is journaled (an exception means: not recorded)."""
        ...


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ConfigurationError(f"ReceiverTimeouts.{attribute.name} must be > 0, not {value!r}")


@attrs.frozen
class ReceiverTimeouts:
    """How long the standalone server waits for a client (seconds).

    Attributes:
        header: from a connection's opening until its first request's headers are in.
        body: for a request's whole body, once its headers are in (408 past it).
        idle: a kept-alive connection with no request in progress (then closed); this also
            bounds the headers of its later requests.
    """

    header: float = attrs.field(default=10.0, validator=_positive)
    body: float = attrs.field(default=10.0, validator=_positive)
    idle: float = attrs.field(default=75.0, validator=_positive)


@attrs.frozen
class SelfCheckResult:
    """What :meth:`CallbackReceiver.self_check` saw."""

    ok: bool
    url: str
    latency: float | None
    http_status: int | None
    error: str | None = None


class _Route:
    """Where a nonce's updates go, and its token (to verify its callbacks without an HMAC)."""

    __slots__ = ("sink", "token")

    def __init__(self, token: str, sink: CallbackSink) -> None:
        self.token = token
        self.sink = sink


_ACK = (200, json.dumps(callback_ack()).encode())  # the usual answer, encoded once


def _answer(status: int, payload: dict[str, Any]) -> Answer:
    return status, json.dumps(payload).encode()


_NOT_FOUND = _answer(404, {"error": "not found"})


RECEIVER_KEY: web.AppKey[ReceiverCore] = web.AppKey("minimax_s2v.receiver")


class ReceiverCore:
    """The receiver without a host: URLs, routing, and the answer to each request.

    :class:`~minimax_s2v.receiver.CallbackReceiver` adds the hosts (aiohttp, ASGI) and the
    deployment check.

    Args:
        public_url: the URL MiniMax can reach this receiver at, as mounted (e.g.
            ``https://example.com/minimax``); each submission's URL is built under it. When
            omitted, :meth:`serve` fills it in with the address it listens on (for local
            use: tests, the emulator, the demo).
        secret: key of the HMAC in callback URLs. Give the same secret to every replica and
            across restarts, or URLs issued before a restart stop verifying. Random if omitted.
        max_body: largest body accepted, in bytes (413 beyond).
        fallback_after: seconds after submission after which a task with no final callback
            is polled instead (lost callbacks delay a result, they never lose it).
        challenge_warning_after: seconds after the first submission after which, if no
            challenge has arrived, a warning says ``public_url`` is probably unreachable.
        max_bindings: nonces remembered in memory at most (the oldest are forgotten first;
            a durable store still knows them).
        binding_ttl: seconds a nonce is remembered in memory.
        early_limit: updates kept per nonce before its task id is known.

    Raises:
        ConfigurationError: a setting is invalid (named in the message).
    """

    def __init__(
        self,
        public_url: str | URL | None = None,
        *,
        secret: str | bytes | None = None,
        max_body: int = 64 * 1024,
        fallback_after: float = 360.0,
        challenge_warning_after: float = 10.0,
        max_bindings: int = 100_000,
        binding_ttl: float = 24 * 3600.0,
        early_limit: int = 16,
    ) -> None:
        self.public_url: URL | None = None
        if public_url is not None:
            self.public_url = _public_url(public_url)
        if secret is None:
            secret = secrets.token_bytes(32)
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(self._secret) < 16:
            raise ConfigurationError("secret must be at least 16 bytes long")
        count, duration = number(at_least=1, integer=True), number(above=0)
        check_argument(self, "max_body", max_body, count)
        check_argument(self, "max_bindings", max_bindings, count)
        check_argument(self, "early_limit", early_limit, number(at_least=0, integer=True))
        check_argument(self, "fallback_after", fallback_after, duration)
        check_argument(self, "binding_ttl", binding_ttl, duration)
        check_argument(self, "challenge_warning_after", challenge_warning_after, duration)
        self.max_body = max_body
        self.fallback_after = fallback_after
        self.challenge_warning_after = challenge_warning_after
        self.max_bindings = max_bindings
        self.binding_ttl = binding_ttl
        self.early_limit = early_limit
        self._routes: BoundedMap[str, _Route] = BoundedMap(max_bindings, binding_ttl)
        self._default_sink: CallbackSink | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._warned = False
        self._watching_challenges = False
        self._served = 0  # standalone servers running now
        self._stopped = False  # a standalone server ran and has stopped
        # What the receiver has answered; stats() copies it (plain attributes: the hot path).
        self.counts = ReceiverCounts()
        # A URL's holder can repeat an update at will while the store fails: not a line each.
        self._unrecorded_warning = PacedWarning()

    def __repr__(self) -> str:
        url = shown_url(self.public_url) if self.public_url is not None else None
        return f"{type(self).__name__}(public_url={url!r})"

    def stats(self) -> ReceiverStats:
        """What the receiver has answered so far: callbacks by outcome, challenges and latency."""
        return self.counts.snapshot()

    # -- URLs and nonces --------------------------------------------------------------------

    def _token(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def callback_url(self, nonce: str) -> URL:
        """The callback URL of ``nonce``.

        Raises:
            ConfigurationError: no ``public_url`` (give one, or :meth:`serve` first), or the
                nonce is not 8 to 64 characters of A-Z, a-z, 0-9, '_' and '-'.
        """
        if not _NONCE.fullmatch(nonce):
            raise ConfigurationError("a nonce is 8 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")
        if self.public_url is None:
            raise ConfigurationError(
                "the receiver has no public_url: give CallbackReceiver(public_url=...) the URL "
                "MiniMax reaches it at, or serve() it first"
            )
        return self.public_url / nonce / self._token(nonce)

    def check_ready(self) -> None:
        """Refuse to mint callback URLs that nobody will answer.

        Raises:
            ConfigurationError: the receiver was served standalone and its server has
                stopped, or it has no ``public_url``.
        """
        if self._stopped and self._served == 0:
            raise ConfigurationError(
                "the callback receiver is not being served any more (its serve() block has "
                "ended): MiniMax's check of the callback URL would fail; submit inside "
                "`async with receiver.serve(...)`"
            )
        if self.public_url is None:
            raise ConfigurationError(
                "the receiver has no public_url: give CallbackReceiver(public_url=...) the URL "
                "MiniMax reaches it at, or submit inside `async with receiver.serve(...)`"
            )

    def _verify(self, path: str) -> tuple[str, _Route | None] | None:
        """The nonce of a path whose token verifies and its route here (if any), else ``None``."""
        match = _PATH.fullmatch(path)
        if match is None:
            return None
        nonce, token = match.groups()
        route = self._routes.get(nonce)
        expected = route.token if route is not None else self._token(nonce)
        return (nonce, route) if hmac.compare_digest(token, expected) else None

    def attach(self, sink: CallbackSink) -> None:
        """Hand updates for nonces this receiver does not route to ``sink`` (a client's)."""
        self._default_sink = sink

    def expect(self, nonce: str, sink: CallbackSink) -> URL:
        """Route ``nonce``'s updates to ``sink`` (before its submission is sent); its URL."""
        self.check_ready()
        url = self.callback_url(nonce)
        self._routes.put(nonce, _Route(url.name, sink))
        self._watch_challenges()
        return url

    def discard(self, nonce: str) -> None:
        """Stop routing ``nonce``: its submission certainly created nothing."""
        self._routes.pop(nonce)

    # -- the protocol, without I/O ----------------------------------------------------------

    async def process(self, method: str, path: str, body: bytes | BodyReader) -> Answer:
        """Answer one request to ``path`` (relative to the mount point): (status, JSON body).

        ``body`` is the request's whole body when the adapter already holds it (it came with
        the headers), else a reader awaited only for a verified path, which returns
        ``(bytes, too_large)`` and may raise :class:`TimeoutError` (408). No input raises;
        none makes it answer 500.
        """
        started = time.perf_counter()
        verified = self._verify(path)
        if verified is None:
            return self.not_found()
        if method != "POST":  # methods are case-sensitive: "post" is no POST
            self.counts.wrong_method += 1
            return _answer(405, {"error": "method not allowed: callbacks are POSTed"})
        nonce, route = verified
        if isinstance(body, bytes):
            raw, too_large = body, len(body) > self.max_body
        else:
            try:
                raw, too_large = await body()
            except TimeoutError:
                self.counts.too_slow += 1
                return _answer(408, {"error": "the body did not arrive in time"})
            except Exception as error:  # noqa: BLE001 - a broken upload; the receiver still answers
                self.counts.malformed += 1
                logger.debug("a callback body could not be read: %r", error)
                return _answer(400, {"error": "the body could not be read"})
            route = self._routes.get(nonce)  # again: it may have changed while the body came
        # The rest in this one coroutine, not a second one: it runs for every callback.
        if too_large:
            self.counts.too_large += 1
            return _answer(413, {"error": f"body larger than {self.max_body} bytes"})
        try:
            data = json.loads(raw.decode("utf-8"))  # a str skips json's encoding detection
            message = parse_callback(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            self.counts.malformed += 1
            return _answer(400, {"error": "body is not JSON"})
        except ResponseValidationError as error:
            self.counts.malformed += 1
            return _answer(400, {"error": "; ".join(error.errors)[:300]})
        if isinstance(message, CallbackChallenge):
            # Answered at once; its latency counts from when the request's handling began.
            self.counts.challenges.record(time.perf_counter() - started)
            return _answer(200, {"challenge": message.challenge})
        # A status update: answered once recorded.
        snapshot = message
        sink = route.sink if route is not None else self._default_sink
        if sink is None or nonce.startswith(SELF_CHECK_PREFIX):
            return self.not_found()
        try:
            verdict = await sink.deliver(nonce, snapshot)
        except Exception as error:  # noqa: BLE001 - not recorded: the sender may try again
            logger.log(
                self._unrecorded_warning.level(),
                "a callback for task %s was not recorded: %r (%d so far; receiver.stats())",
                snapshot.task_id,
                error,
                self.counts.unavailable + 1,
            )
            verdict = CallbackVerdict.UNAVAILABLE
        if verdict is CallbackVerdict.RECORDED:
            self.counts.applied += 1
            return _ACK
        if verdict is CallbackVerdict.DUPLICATE:
            self.counts.duplicate += 1
            return _ACK
        if verdict is CallbackVerdict.UNKNOWN:
            return self.not_found()
        if verdict is CallbackVerdict.CONFLICT:
            self.counts.conflict += 1
            return _answer(409, {"error": "task_id does not match this callback URL"})
        self.counts.unavailable += 1
        return _answer(503, {"error": "the update could not be recorded now; send it again later"})

    def not_found(self) -> Answer:
        """The answer to a path that is not a callback URL (counted)."""
        self.counts.not_found += 1
        return _NOT_FOUND

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Mark the receiver as served standalone for the duration (``serve()`` uses it)."""
        self._served += 1
        try:
            yield
        finally:
            self._served -= 1
            self._stopped = True

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
        if self.counts.challenges.count == 0 and not self._warned:
            self._warned = True
            logger.warning(
                "no callback challenge has arrived %.0fs after submitting with callbacks: "
                "%s is probably unreachable from MiniMax (check DNS, TLS, the reverse proxy "
                "and the mount path; receiver.self_check() tests the round trip); tasks fall "
                "back to polling after %.0fs",
                self.challenge_warning_after,
                shown_url(self.public_url or ""),
                self.fallback_after,
            )

    async def close(self) -> None:
        """Cancel the receiver's background work."""
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)


def _public_url(value: str | URL) -> URL:
    url = URL(str(value))
    if not is_http_url(str(url)):
        raise ConfigurationError(f"public_url must be an absolute http(s) URL, not {str(url)!r}")
    if url.query_string or url.fragment:
        raise ConfigurationError("public_url must not carry a query or a fragment")
    return url
