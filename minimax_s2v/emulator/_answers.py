"""The answers the emulator gives outside a task's own body: V1's in-band codes, V2's envelope."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from .._wire import v2_error_payload

__all__ = ["CALLBACK_CHECK_FAILED", "base", "drop", "inband", "v2_error"]

#: What a create call answers when the callback URL does not echo its challenge (2013).
CALLBACK_CHECK_FAILED = "invalid params, fail to check callback url"


def base(code: int, message: str) -> dict[str, Any]:
    """A ``base_resp`` object."""
    return {"status_code": code, "status_msg": message}


def inband(code: int, message: str, **fields: Any) -> web.Response:
    """A V1 answer: HTTP 200 with ``fields`` and the code in ``base_resp``."""
    return web.json_response({**fields, "base_resp": base(code, message)})


def v2_error(status: int, message: str, code: int | None = None) -> web.Response:
    """A V2 error: the real HTTP status, the envelope, the code inside the message."""
    return web.json_response(
        v2_error_payload(status, message, code, uuid.uuid4().hex), status=status
    )


def drop(request: web.Request) -> web.Response:
    """Close the connection without an answer (what is returned never reaches the client)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)
