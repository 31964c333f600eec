"""The receiver inside someone else's app: an aiohttp sub-app, a FastAPI mount under uvicorn."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from fastapi import FastAPI
from yarl import URL

from minimax_s2v import TaskStatus
from minimax_s2v.emulator import Durations, Emulator
from minimax_s2v.receiver import RECEIVER_KEY, CallbackReceiver
from tests.client_setup import face_request
from tests.processes import free_port
from tests.receiver_setup import SECRET, client_of, new_receiver, uvicorn_serving


async def run_tasks(emu: Emulator, receiver: CallbackReceiver, count: int = 5) -> list[TaskStatus]:
    async with client_of(emu, receiver) as client:
        tasks = [await client.submit(face_request()) for _ in range(count)]
        return [(await t.wait(timeout=15)).status for t in tasks]


async def test_aiohttp_sub_app() -> None:
    """Mounted with setup(app, prefix) next to the app's own routes: callbacks resolve tasks."""
    receiver = new_receiver()

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/health", health)
    assert receiver.setup(app, prefix="/hooks/minimax") is app
    assert app[RECEIVER_KEY] is receiver
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        receiver.public_url = URL(f"http://127.0.0.1:{port}/hooks/minimax")
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
    receiver = new_receiver()
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.mount("/minimax", receiver.asgi())
    async with uvicorn_serving(app) as port:
        receiver.public_url = URL(f"http://127.0.0.1:{port}/minimax")
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
    assert statuses == [TaskStatus.SUCCESS] * 5
    assert emu.state()["requests"]["query"] == {"success": 5}  # one confirmation each
    assert check.ok, check


async def test_self_check_reports_both_ways() -> None:
    """self_check() passes when public_url reaches the receiver, and says why when not."""
    receiver = CallbackReceiver(secret=SECRET)
    async with receiver.serve("127.0.0.1", 0, path="/cb") as local:
        good = await receiver.self_check()
        wrong_mount = CallbackReceiver(local.with_path("/elsewhere"), secret=SECRET)
        misrouted = await wrong_mount.self_check()
    assert good.ok
    assert good.http_status == 200
    assert good.latency is not None
    # Nothing listens on a port that was free a moment ago.
    bad = await CallbackReceiver(f"http://127.0.0.1:{free_port()}/cb").self_check(timeout=2)
    assert not bad.ok
    assert bad.error
    assert not misrouted.ok
    assert misrouted.http_status == 404
