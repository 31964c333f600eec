"""The aiohttp adapter: the standalone server (``serve()``) and the sub-application.

It reads a request's whole body however it is segmented (TCP writes, chunks), with the size
cap enforced while streaming, and hands it to the core. The standalone server also bounds how
long a client may hold a connection (:class:`ReceiverTimeouts`): a connection that sends
nothing, or its headers too slowly, is closed; a body that does not arrive in time gets 408.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from aiohttp import HttpVersion11, StreamReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from yarl import URL

from ._core import RECEIVER_KEY, BodyReader, ReceiverCore, ReceiverTimeouts

__all__ = ["handler", "make_app", "read_body", "serve"]

logger = logging.getLogger("minimax_s2v")


async def read_body(
    request: web.BaseRequest, max_body: int, timeout: float, *, send_continue: bool = False
) -> tuple[bytes, bool]:
    """The whole body of ``request`` and whether it was over ``max_body`` (then dropped).

    With ``send_continue`` (the low-level server, which has no expect handler), a client
    that asked with ``Expect: 100-continue`` is told to send the body: it may wait for that.

    Raises:
        TimeoutError: the body did not arrive within ``timeout`` seconds.
    """
    declared = request.content_length
    if declared is not None and declared > max_body:
        return b"", True
    if (
        send_continue
        and request.version == HttpVersion11
        and request.headers.get(hdrs.EXPECT, "").lower() == "100-continue"
    ):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer's own size is counted from here
    async with asyncio.timeout(timeout):
        return await _read_all(request.content, max_body)


async def _read_all(content: StreamReader, max_body: int) -> tuple[bytes, bool]:
    body = bytearray()
    while chunk := await content.readany():
        body += chunk
        if len(body) > max_body:
            return b"", True
    return bytes(body), False


def handler(
    receiver: ReceiverCore,
    body_timeout: float,
    *,
    prefix: str | None = None,
    started: set[RequestHandler] | None = None,
) -> Callable[[web.BaseRequest], Awaitable[web.Response]]:
    """The aiohttp handler answering requests for ``receiver``.

    ``prefix``: the low-level server's mount point with its trailing slash; a path outside
    it is not found, and ``Expect: 100-continue`` is answered before the body is read (see
    :func:`read_body`). Without it, the path is the route's ``tail`` (a sub-application).
    ``started`` collects the connections that delivered a request (see :class:`_GuardedServer`).
    One coroutine per request, the whole answer written out in it: this runs for every
    callback.
    """
    send_continue = prefix is not None

    async def handle(request: web.BaseRequest) -> web.Response:
        if started is not None:
            started.add(request.protocol)
        if prefix is None:
            path = request.match_info["tail"]  # type: ignore[attr-defined]
        elif request.path.startswith(prefix):
            path = request.path[len(prefix) :]
        else:
            status, answer = receiver.not_found()
            return web.Response(body=answer, status=status, content_type="application/json")
        raw_path = request.raw_path
        if "%" in raw_path and "%" in raw_path.partition("?")[0]:
            # aiohttp decodes the path: a callback URL is never %-encoded (rule 1), so a
            # request that spells one that way is refused before decoding can matter.
            path = "%"
        content = request.content
        body: bytes | BodyReader
        if content.is_eof() and content.exception() is None:
            # The usual callback: all of it came with the headers, already in memory. (A
            # body whose sender hung up meanwhile holds an error: the reader reports it, 400.)
            body = content.read_nowait()
        else:
            body = partial(
                read_body, request, receiver.max_body, body_timeout, send_continue=send_continue
            )
        status, answer = await receiver.process(request.method, path, body)
        response = web.Response(body=answer, status=status, content_type="application/json")
        if content.exception() is not None:
            # A body that could not be read (an encoding that does not decode, a sender that
            # hung up): the connection ends with the answer, and the rest of the body is
            # given up. Drained afterwards, as aiohttp drains what a handler left unread, it
            # would log the body's error as a traceback each time: a sender could fill the log.
            response.force_close()
            content.feed_eof()
        return response

    return handle


def make_app(receiver: ReceiverCore, mount: str = "") -> web.Application:
    """A new aiohttp application serving ``receiver`` under ``mount``."""
    app = web.Application()
    app[RECEIVER_KEY] = receiver
    # One route, no nested router: a callback is resolved in one step.
    app.router.add_route("*", mount + "/{tail:.*}", handler(receiver, ReceiverTimeouts().body))

    async def cleanup(_: web.Application) -> None:
        await receiver.close()

    app.on_cleanup.append(cleanup)
    return app


class _Connection(RequestHandler):
    """A connection of the standalone server: a request that is not HTTP costs a debug line.

    aiohttp answers such a request 400 itself and logs it at ERROR with its traceback; no
    callback URL is needed to send one, so anyone reaching the port could fill the log.
    """

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """Log aiohttp's own errors as it does, the parser's refusals of a request at debug."""
        error = kw.get("exc_info")
        if isinstance(error, HttpProcessingError):
            # Its kind only: the parser's error quotes the request, a callback token with it.
            logger.debug("refused a request that is not valid HTTP (%s)", type(error).__name__)
            return
        super().log_exception(*args, **kw)


class _GuardedServer(web.Server):
    """aiohttp's low-level server, closing connections whose first request is late."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        started: set[RequestHandler],
        *,
        header_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self._header_timeout = header_timeout
        self.started = started  # connections that delivered a request

    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)

        def late() -> None:
            if handler not in self.started and not transport.is_closing():
                logger.debug("closing a connection whose request headers did not arrive")
                transport.close()

        asyncio.get_running_loop().call_later(self._header_timeout, late)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self.started.discard(handler)
        super().connection_lost(handler, exc)


@asynccontextmanager
async def serve(
    receiver: ReceiverCore,
    host: str,
    port: int,
    *,
    path: str | None,
    timeouts: ReceiverTimeouts,
) -> AsyncIterator[URL]:
    """Serve ``receiver`` standalone; yields the local base URL (see ``receiver.serve``)."""
    if path is None:
        path = receiver.public_url.path if receiver.public_url is not None else "/"
    mount = path.rstrip("/")
    started: set[RequestHandler] = set()
    # The low-level server: the receiver is the only thing served here, so no application,
    # router or middleware stands between a callback and its answer.
    server = _GuardedServer(
        handler(receiver, timeouts.body, prefix=mount + "/", started=started),
        started,
        access_log=None,
        keepalive_timeout=timeouts.idle,
        header_timeout=timeouts.header,
    )
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        local = URL.build(scheme="http", host=bound_host, port=bound_port, path=mount or "/")
        if receiver.public_url is None:
            receiver.public_url = local
        async with receiver.serving():
            yield local
    finally:
        await runner.cleanup()
        await receiver.close()
