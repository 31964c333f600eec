"""A hostile MiniMax API, file server, emulator client and batch file, from outside the SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from minimax_s2v import Client, MiniMaxError, SubmissionUncertainError, Timeouts
from tests.client_setup import TEST_RETRY, face_request

KEY = "sk-attack6-secret-key-0123456789"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def api(handler: Handler) -> AsyncIterator[str]:
    """A stand-in for the API on a free loopback port: every path and method goes to ``handler``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def client_of(url: str) -> Client:
    """A client of the stand-in, with short timeouts."""
    return Client(
        KEY, base_url=url, retry=TEST_RETRY, timeouts=Timeouts(connect=2, read=3, request=5)
    )


def assert_clean(error: BaseException) -> None:
    """``error`` and its whole chain never show the key."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        assert KEY not in repr(current)
        assert KEY not in str(current)
        assert KEY not in repr(vars(current))
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


DEEP = b"[" * 200_000 + b"]" * 200_000


@pytest.mark.parametrize("status", [200, 500])
async def test_a_deeply_nested_answer_is_a_typed_error(status: int) -> None:
    """An answer nested deeper than Python's stack is a MiniMaxError, not a RecursionError."""

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=DEEP, status=status, content_type="application/json")

    async with api(handle) as url, client_of(url) as client:
        with pytest.raises(MiniMaxError) as caught:
            await client.get_task("1234")
    assert_clean(caught.value)


async def test_a_deeply_nested_create_answer_is_uncertain_and_sent_once() -> None:
    """A create answered with JSON too deep to read may have created a task: sent once."""
    posts: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        posts.append(request.path)
        return web.Response(body=DEEP, content_type="application/json")

    async with api(handle) as url, client_of(url) as client:
        with pytest.raises(SubmissionUncertainError) as caught:
            await client.submit(face_request())
    assert posts == ["/v1/video_generation"]
    assert_clean(caught.value)
