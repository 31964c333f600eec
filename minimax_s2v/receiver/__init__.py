"""The callback receiver: MiniMax POSTs task updates here instead of being polled.

A sans-I/O core (:mod:`._core`: URLs, verification, the answer to each request) and one thin
adapter per host: aiohttp (:mod:`._aiohttp`: the standalone ``serve()`` and ``setup(app)``)
and ASGI (:mod:`._asgi`); :class:`CallbackReceiver` (:mod:`._receiver`) puts them together.
The trust rules it enforces are stated in :mod:`minimax_s2v._tracking`.

Run it standalone (``async with receiver.serve(host, port)``), inside an aiohttp app
(``receiver.setup(app, prefix="/minimax")``) or inside an ASGI app
(``app.mount("/minimax", receiver.asgi())``).
"""

from __future__ import annotations

from ._core import (
    RECEIVER_KEY,
    CallbackSink,
    CallbackVerdict,
    ReceiverCore,
    ReceiverTimeouts,
    SelfCheckResult,
)
from ._receiver import CallbackReceiver

__all__ = [
    "RECEIVER_KEY",
    "CallbackReceiver",
    "CallbackSink",
    "CallbackVerdict",
    "ReceiverCore",
    "ReceiverTimeouts",
    "SelfCheckResult",
]
