"""The receiver inside someone else's app: an aiohttp sub-app, a FastAPI mount under uvicorn."""

from __future__ import annotations

import asyncio

import aiohttp
import uvicorn
from aiohttp import web
from fastapi import FastAPI

from minimax_s2v import Client, TaskStatus
from minimax_s2v.emulator import Durations, Emulator
from minimax_s2v.receiver import RECEIVER_KEY, CallbackReceiver
from tests.client_setup import NO_WAIT, face_request
from tests.processes import free_port
from tests.receiver_setup import POLLING, SECRET


async def run_tasks(emu: Emulator, receiver: CallbackReceiver, count: int = 5) -> list[TaskStatus]:
    async with Client(
        emu.api_key, base_url=emu.url, receiver=receiver, polling=POLLING, retry=NO_WAIT
    ) as client:
        tasks = [await client.submit(face_request()) for _ in range(count)]
        return [(await t.wait(timeout=15)).status for t in tasks]


async def test_aiohttp_sub_app() -> None:
    """Mounted with setup(app, prefix) next to the app's own routes: callbacks resolve tasks."""
    port = free_port()
    receiver = CallbackReceiver(f"http://127.0.0.1:{port}/hooks/minimax", secret=SECRET)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/health", health)
    assert receiver.setup(app, prefix="/hooks/minimax") is app
    assert app[RECEIVER_KEY] is receiver
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with Emulator(durations=Durations(processing=0.2)) as emu:
            statuses = await run_tasks(emu, receiver)
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/health") as r,
            ):
                assert await r.text() == "ok"
    finally:
        await runner.cleanup()
    assert statuses == [TaskStatus.SUCCESS] * 5
    # By callbacks alone: one confirming query per task, no poll.
    assert emu.state()["requests"]["query"] == {"success": 5}
    assert receiver.stats().challenges.count == 5


async def test_fastapi_mount_under_uvicorn() -> None:
    """app.mount("/minimax", receiver.asgi()) in FastAPI, served by a real uvicorn server."""
    port = free_port()
    receiver = CallbackReceiver(f"http://127.0.0.1:{port}/minimax", secret=SECRET)
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.mount("/minimax", receiver.asgi())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        async with Emulator(durations=Durations(processing=0.2)) as emu:
            statuses = await run_tasks(emu, receiver)
            check = await receiver.self_check()
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/health") as r:
                    assert await r.json() == {"status": "ok"}
                async with http.get(receiver.callback_url("abcdefghij")) as r:
                    assert r.status == 405
                async with http.post(f"http://127.0.0.1:{port}/minimax/x/y", json={}) as r:
                    assert r.status == 404
    finally:
        server.should_exit = True
        await serving
    assert statuses == [TaskStatus.SUCCESS] * 5
    assert emu.state()["requests"]["query"] == {"success": 5}  # one confirmation each
    assert check.ok, check


async def test_self_check_reports_both_ways() -> None:
    """self_check() passes when public_url reaches the receiver, and says why when not."""
    port = free_port()
    receiver = CallbackReceiver(f"http://127.0.0.1:{port}/cb", secret=SECRET)
    async with receiver.serve("127.0.0.1", port):
        good = await receiver.self_check()
    assert good.ok
    assert good.http_status == 200
    assert good.latency is not None
    bad = await CallbackReceiver(f"http://127.0.0.1:{free_port()}/cb").self_check(timeout=2)
    assert not bad.ok
    assert bad.error
    wrong_mount = CallbackReceiver(f"http://127.0.0.1:{port}/elsewhere", secret=SECRET)
    async with receiver.serve("127.0.0.1", port):
        misrouted = await wrong_mount.self_check()
    assert not misrouted.ok
    assert misrouted.http_status == 404
