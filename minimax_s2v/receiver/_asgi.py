"""The ASGI adapter, for FastAPI, Starlette and the like: ``app.mount(path, receiver.asgi())``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._core import ReceiverCore, ReceiverTimeouts

__all__ = ["ASGIApp", "asgi_app"]

ASGIScope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]


def asgi_app(receiver: ReceiverCore) -> ASGIApp:
    """A plain ASGI application serving ``receiver``."""
    body_timeout = ReceiverTimeouts().body

    async def app(scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, receiver.close)
            return
        if scope["type"] != "http":
            return
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        raw: bytes = scope.get("raw_path") or b""
        if b"%" in raw:  # a callback URL is never %-encoded: refused before decoding matters
            path = "%"

        async def read_body() -> tuple[bytes, bool]:
            for name, value in scope.get("headers", ()):
                declared = name.lower() == b"content-length" and value.isdigit()
                if declared and int(value) > receiver.max_body:
                    return b"", True
            body = bytearray()
            async with asyncio.timeout(body_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        # The sender hung up before its last piece: what came is not the
                        # body, however well it parses (the core answers a broken upload).
                        raise ConnectionResetError("the sender hung up during the body")
                    body += message.get("body", b"")
                    if len(body) > receiver.max_body:
                        return b"", True
                    if not message.get("more_body", False):
                        return bytes(body), False

        status, data = await receiver.process(scope.get("method", "GET"), path, read_body)
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


async def _lifespan(
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
