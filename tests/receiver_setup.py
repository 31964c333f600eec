"""Clients wired to callback receivers on loopback ports of their own choosing (port 0)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from minimax_s2v import Client, PollPolicy, SubmissionUncertainError
from minimax_s2v.emulator import Emulator
from minimax_s2v.receiver import CallbackReceiver
from tests.client_setup import TEST_RETRY, face_request, fast_client
from tests.waiting import wait_until

SECRET = "receiver-test-secret-0123456789"
#: The hosts a receiver can be mounted in: standalone, an aiohttp sub-app, an ASGI app.
MOUNTS = ("serve", "setup", "asgi")


def status_update(task_id: str, status: str, file_id: str = "") -> dict[str, Any]:
    """A status callback's body as MiniMax sends it."""
    return {
        "task_id": task_id,
        "status": status,
        "file_id": file_id,
        "base_resp": {"status_code": 0, "status_msg": "success"},
    }


def new_receiver(
    port: int | None = None, path: str = "/minimax", **options: Any
) -> CallbackReceiver:
    """A receiver with the tests' secret; at ``port``, or wherever it is served first."""
    options.setdefault("secret", SECRET)
    options.setdefault("fallback_after", 30.0)
    public = None if port is None else f"http://127.0.0.1:{port}{path}"
    return CallbackReceiver(public, **options)


POLLING = PollPolicy(first_interval=0.05, max_interval=0.2, max_rate=1000, max_in_flight=64)


def client_of(emu: Emulator, receiver: CallbackReceiver, **options: Any) -> Client:
    """A client of ``emu`` with ``receiver``, polling quickly and retrying without waits."""
    options.setdefault("polling", POLLING)
    options.setdefault("retry", TEST_RETRY)
    return Client(emu.api_key, base_url=emu.url, receiver=receiver, **options)


@asynccontextmanager
async def served_client(
    emu: Emulator, receiver: CallbackReceiver | None = None, **options: Any
) -> AsyncIterator[tuple[Client, CallbackReceiver]]:
    """``receiver`` (by default a new one) served standalone, and a client of ``emu`` using it.

    ``options`` go to the client (see :func:`tests.client_setup.fast_client`).
    """
    receiver = receiver or new_receiver()
    options.setdefault("polling", POLLING)
    async with receiver.serve("127.0.0.1", 0, path="/minimax"):
        async with fast_client(emu, receiver=receiver, **options) as client:
            yield client, receiver


@asynccontextmanager
async def remote_served_client(
    emulator_url: URL, **options: Any
) -> AsyncIterator[tuple[Client, CallbackReceiver]]:
    """Like served_client, for an emulator in another process at ``emulator_url``."""
    receiver = new_receiver(**options)
    async with receiver.serve("127.0.0.1", 0, path="/minimax"):
        client = Client(
            "emulator-key",
            base_url=emulator_url,
            receiver=receiver,
            polling=POLLING,
            retry=TEST_RETRY,
        )
        async with client:
            yield client, receiver


@asynccontextmanager
async def uvicorn_serving(app: Any, port: int = 0) -> AsyncIterator[int]:
    """``app`` served by a real uvicorn server on ``port`` (0: one it picks); yields the port."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.ensure_future(server.serve())
    try:
        await wait_until(lambda: server.started or serving.done(), "uvicorn's start")
        if not server.started:
            pytest.fail(f"uvicorn did not start: {serving.exception() or 'it stopped'}")
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await serving


@asynccontextmanager
async def mounted(
    kind: str,
    receiver: CallbackReceiver,
    path: str = "/minimax",
    *,
    host: web.Application | None = None,
) -> AsyncIterator[URL]:
    """``receiver`` served at ``path`` on a port of its own, in one of the :data:`MOUNTS`.

    Yields the receiver's URL: in a host app its ``public_url`` becomes where it listens;
    standalone, a receiver without one gets it. ``host`` is the aiohttp app ``setup`` mounts
    it in (a new one if omitted).
    """
    if kind == "serve":
        async with receiver.serve("127.0.0.1", 0, path=path) as local:
            yield local
        return
    if kind == "setup":
        app = receiver.setup(host if host is not None else web.Application(), path)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            receiver.public_url = URL(f"http://127.0.0.1:{port}{path}")
            yield receiver.public_url
        finally:
            await runner.cleanup()
        return
    from fastapi import FastAPI

    api = FastAPI()
    api.mount(path, receiver.asgi())
    async with uvicorn_serving(api) as port:
        receiver.public_url = URL(f"http://127.0.0.1:{port}{path}")
        yield receiver.public_url


async def uncertain_submission(
    client: Client, emu: Emulator, *, besides: str | None = None
) -> tuple[SubmissionUncertainError, str]:
    """Submit with the emulator losing the answer: the error, and the task it did create.

    ``besides`` is a task that existed before, not the submission's.
    """
    with pytest.raises(SubmissionUncertainError) as info:
        await client.submit(face_request())
    (real,) = [t["task_id"] for t in emu.state(tasks=True)["tasks"] if t["task_id"] != besides]
    return info.value, real
