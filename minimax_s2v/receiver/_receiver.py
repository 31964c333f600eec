"""The public receiver: the core, served by the aiohttp and ASGI adapters."""

from __future__ import annotations

import secrets
from contextlib import AbstractAsyncContextManager

from aiohttp import web
from yarl import URL

from ._aiohttp import make_app, serve
from ._asgi import ASGIApp, asgi_app
from ._check import self_check
from ._core import RECEIVER_KEY, SELF_CHECK_PREFIX, ReceiverCore, ReceiverTimeouts, SelfCheckResult

__all__ = ["CallbackReceiver"]


class CallbackReceiver(ReceiverCore):
    """Receives MiniMax's callbacks and hands them to the client that submitted each task.

    Serve it standalone (:meth:`serve`), inside an aiohttp app (:meth:`setup`) or inside an
    ASGI app (:meth:`asgi`). It takes the arguments of
    :class:`~minimax_s2v.receiver.ReceiverCore` (the URL, the secret, the limits).
    """

    # -- hosts (each a thin adapter) --------------------------------------------------------

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        path: str | None = None,
        timeouts: ReceiverTimeouts | None = None,
    ) -> AbstractAsyncContextManager[URL]:
        """Serve the receiver on its own aiohttp server; yields the local base URL.

        Args:
            host: the address to listen on.
            port: the port (0 picks a free one; the yielded URL says which).
            path: where to mount; by default the path of ``public_url``, so that a reverse
                proxy can forward it unchanged. Without a ``public_url``, the local URL
                becomes it.
            timeouts: header, body and keep-alive idle timeouts (:class:`ReceiverTimeouts`).
        """
        return serve(self, host, port, path=path, timeouts=timeouts or ReceiverTimeouts())

    def make_app(self, mount: str = "") -> web.Application:
        """A new aiohttp application serving the callbacks under ``mount`` (default: its root)."""
        return make_app(self, mount)

    def setup(self, app: web.Application, prefix: str = "/minimax") -> web.Application:
        """Mount the receiver into ``app`` at ``prefix``; returns ``app``.

        ``public_url`` must end with the same path. The receiver reads bodies with its own
        limit (``max_body``): a sub-app's ``client_max_size`` is not used by aiohttp.
        """
        app.add_subapp(prefix, self.make_app())
        app[RECEIVER_KEY] = self
        return app

    def asgi(self) -> ASGIApp:
        """A plain ASGI application, e.g. ``fastapi_app.mount("/minimax", receiver.asgi())``."""
        return asgi_app(self)

    async def self_check(self, timeout: float = 5.0) -> SelfCheckResult:
        """POST a challenge to ``public_url`` as MiniMax would, and report whether it came back.

        Run it where the service is deployed: it checks DNS, TLS, the proxy and the mount.
        Its URL answers challenges only: no status update is ever accepted on it.
        """
        nonce = SELF_CHECK_PREFIX + secrets.token_urlsafe(8)
        return await self_check(self.callback_url(nonce), timeout)
