"""Callbacks: the challenge (during the create call by default), then one POST per status change."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from minimax_s2v.emulator import CallbackFaults, Durations, Emulator, EmulatorConfig, FaultPlan
from tests.conftest import PlainReceiver
from tests.processes import free_port
from tests.raw_api import DOC_REQUEST, submit


def with_callback(receiver: PlainReceiver, prompt: str | None = None) -> dict[str, object]:
    body = {**DOC_REQUEST, "callback_url": str(receiver.url)}
    if prompt is not None:
        body["prompt"] = prompt
    return body


async def test_challenge_then_processing_then_success(
    http: aiohttp.ClientSession, plain_receiver: PlainReceiver
) -> None:
    """A receiver that echoes the challenge gets processing, then success (lowercase)."""
    async with Emulator(durations=Durations(processing=0.1)) as emu:
        task_id = (await submit(http, emu, with_callback(plain_receiver)))["task_id"]
        await emu.callbacks.drain(5)
        deliveries = emu.deliveries
    bodies = plain_receiver.bodies
    assert list(bodies[0]) == ["challenge"]
    assert [b["status"] for b in bodies[1:]] == ["processing", "success"]
    assert all(b["task_id"] == task_id for b in bodies[1:])
    assert bodies[1]["file_id"] == ""
    assert bodies[2]["file_id"].isdigit()
    assert bodies[2]["base_resp"] == {"status_code": 0, "status_msg": "success"}
    assert [(d.kind, d.status, d.http_status) for d in deliveries] == [
        ("challenge", None, 200),
        ("status", "processing", 200),
        ("status", "success", 200),
    ]
    assert all(d.latency is not None and d.error is None for d in deliveries)
    assert deliveries[1].response_body == '{"status": "success"}'
    assert emu.counters.callbacks["challenges_passed"] == 1
    assert len(emu.counters.challenge_latencies) == 1


async def test_failed_casing_and_query_casing(
    http: aiohttp.ClientSession, plain_receiver: PlainReceiver
) -> None:
    """Fail is sent as `failed` by default, as `Fail` in the query casing."""
    async with Emulator(late_fail_ratio=1.0) as emu:
        await submit(http, emu, with_callback(plain_receiver))
        await emu.callbacks.drain(5)
    async with Emulator(late_fail_ratio=1.0, callback_casing="query") as emu:
        await submit(http, emu, with_callback(plain_receiver))
        await emu.callbacks.drain(5)
    statuses = [b["status"] for b in plain_receiver.bodies if "status" in b]
    assert statuses == ["processing", "failed", "Processing", "Fail"]
    assert plain_receiver.bodies[2]["base_resp"]["status_code"] == 1027


async def test_early_failure_sends_only_the_final_callback(
    http: aiohttp.ClientSession, plain_receiver: PlainReceiver
) -> None:
    """A 1026 failure never reaches Processing, so only `failed` is sent."""
    async with Emulator() as emu:
        await submit(http, emu, with_callback(plain_receiver, "x [sensitive]"))
        await emu.callbacks.drain(5)
    assert [b.get("status") for b in plain_receiver.bodies[1:]] == ["failed"]
    assert plain_receiver.bodies[1]["base_resp"]["status_code"] == 1026


CHECK_FAILED = {"status_code": 2013, "status_msg": "invalid params, fail to check callback url"}
AFTER_CREATE = "after_create"


async def test_challenge_is_answered_before_the_create_call(
    http: aiohttp.ClientSession, plain_receiver: PlainReceiver
) -> None:
    """By default the echo has come back before the submission is answered."""
    answered: list[bool] = []
    pending: list[asyncio.Task[dict[str, object]]] = []

    async def watch(token: str) -> str:
        answered.append(pending[0].done())  # the create call is still waiting for this echo
        return token

    plain_receiver.echo = watch
    async with Emulator() as emu:
        pending.append(asyncio.ensure_future(submit(http, emu, with_callback(plain_receiver))))
        task_id = (await pending[0])["task_id"]
        await emu.callbacks.drain(5)
        deliveries = emu.deliveries
    assert answered == [False]
    assert deliveries[0].kind == "challenge"
    assert {d.task_id for d in deliveries} == {task_id}
    assert [b.get("status") for b in plain_receiver.bodies[1:]] == ["processing", "success"]
    assert emu.counters.callbacks["challenges_sent"] == 1  # no second challenge


async def test_wrong_echo_creates_nothing(
    http: aiohttp.ClientSession, plain_receiver: PlainReceiver
) -> None:
    """A challenge echoed wrongly fails the submission with 2013; no task exists."""

    async def wrong(_: str) -> str:
        return "something else"

    plain_receiver.echo = wrong
    async with Emulator() as emu:
        answer = await submit(http, emu, with_callback(plain_receiver))
        await emu.callbacks.drain(5)
        assert answer == {"task_id": "", "base_resp": CHECK_FAILED}
        assert emu.counters.tasks_created == 0
        assert emu.engine.tasks == {}
        assert emu.counters.callbacks["challenges_failed"] == 1
        assert emu.deliveries[0].error == "challenge not echoed"
        assert emu.deliveries[0].task_id == ""
    assert len(plain_receiver.bodies) == 1


async def test_non_2xx_echo_creates_nothing(http: aiohttp.ClientSession) -> None:
    """A receiver answering 500 with the right echo still fails the check."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(await request.json(), status=500)

    app = web.Application()
    app.router.add_post("/cb", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        async with Emulator() as emu:
            body = {**DOC_REQUEST, "callback_url": f"http://{host}:{port}/cb"}
            answer = await submit(http, emu, body)
            assert answer["base_resp"] == CHECK_FAILED
            assert emu.counters.tasks_created == 0
            assert emu.deliveries[0].error == "challenge answered with HTTP 500"
    finally:
        await runner.cleanup()


async def test_wrong_echo_after_create_stops_callbacks(
    http: aiohttp.ClientSession, plain_receiver: PlainReceiver
) -> None:
    """In the older reading, a wrong echo means no status callbacks; the task exists."""

    async def wrong(_: str) -> str:
        return "something else"

    plain_receiver.echo = wrong
    async with Emulator(challenge_timing=AFTER_CREATE) as emu:
        answer = await submit(http, emu, with_callback(plain_receiver))
        await emu.callbacks.drain(5)
        assert answer["base_resp"]["status_code"] == 0
        assert emu.counters.tasks_created == 1
        assert emu.counters.callbacks["challenges_failed"] == 1
        assert emu.deliveries[0].error == "challenge not echoed"
    assert len(plain_receiver.bodies) == 1


async def test_slow_echo_fails_the_submission(
    http: aiohttp.ClientSession, plain_receiver: PlainReceiver
) -> None:
    """An echo later than challenge_timeout fails the create call, whatever else is set."""

    async def slow(token: str) -> str:
        await asyncio.sleep(0.4)
        return token

    plain_receiver.echo = slow
    async with Emulator(challenge_timeout=0.2, stop_after_failed_challenge=False) as emu:
        answer = await submit(http, emu, with_callback(plain_receiver))
        assert answer["base_resp"] == CHECK_FAILED
        assert "no answer within 0.2s" in (emu.deliveries[0].error or "")
        assert emu.counters.tasks_created == 0


async def test_slow_echo_after_create_fails_unless_told_to_continue(
    http: aiohttp.ClientSession, plain_receiver: PlainReceiver
) -> None:
    """After creation, a late echo fails the challenge; the task may still get callbacks if set."""

    async def slow(token: str) -> str:
        await asyncio.sleep(0.4)
        return token

    plain_receiver.echo = slow
    async with Emulator(challenge_timeout=0.2, challenge_timing=AFTER_CREATE) as emu:
        await submit(http, emu, with_callback(plain_receiver))
        await emu.callbacks.drain(5)
        assert "no answer within 0.2s" in (emu.deliveries[0].error or "")
    assert len(plain_receiver.bodies) == 1
    async with Emulator(
        challenge_timeout=0.2, challenge_timing=AFTER_CREATE, stop_after_failed_challenge=False
    ) as emu:
        await submit(http, emu, with_callback(plain_receiver))
        await emu.callbacks.drain(5)
    assert [b.get("status") for b in plain_receiver.bodies[2:]] == ["processing", "success"]


async def test_unreachable_callback_fails_the_submission(http: aiohttp.ClientSession) -> None:
    """A callback URL nobody listens on: 2013, no task, one failed delivery recorded."""
    async with Emulator() as emu:
        body = {**DOC_REQUEST, "callback_url": f"http://127.0.0.1:{free_port()}/cb"}
        answer = await submit(http, emu, body)
        (delivery,) = emu.deliveries
        assert answer["base_resp"] == CHECK_FAILED
        assert emu.counters.tasks_created == 0
        assert emu.counters.requests["submit"] == {"callback_check_failed": 1}
    assert delivery.kind == "challenge"
    assert delivery.http_status is None
    assert delivery.error


async def test_unreachable_callback_after_create_is_recorded(http: aiohttp.ClientSession) -> None:
    """In the older reading the task is created and the failed challenge only recorded."""
    async with Emulator(challenge_timing=AFTER_CREATE) as emu:
        body = {**DOC_REQUEST, "callback_url": f"http://127.0.0.1:{free_port()}/cb"}
        answer = await submit(http, emu, body)
        await emu.callbacks.drain(5)
        (delivery,) = emu.deliveries
    assert answer["base_resp"]["status_code"] == 0
    assert delivery.kind == "challenge"
    assert delivery.task_id == answer["task_id"]
    assert delivery.error


async def test_no_challenge_when_turned_off(
    http: aiohttp.ClientSession, plain_receiver: PlainReceiver
) -> None:
    """With challenge=False the URL is not checked at all: status callbacks only."""
    async with Emulator(challenge=False) as emu:
        answer = await submit(http, emu, with_callback(plain_receiver))
        await emu.callbacks.drain(5)
    assert answer["base_resp"]["status_code"] == 0
    assert [b.get("status") for b in plain_receiver.bodies] == ["processing", "success"]


def test_challenge_settings_are_checked() -> None:
    """An unknown challenge timing or a non-positive timeout is refused at construction."""
    with pytest.raises(ValueError, match="challenge_timing"):
        EmulatorConfig(challenge_timing="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="challenge_timeout"):
        EmulatorConfig(challenge_timeout=0)


async def test_deliveries_endpoint(
    http: aiohttp.ClientSession, plain_receiver: PlainReceiver
) -> None:
    """GET /_emulator/deliveries lists deliveries as JSON, filterable by task."""
    async with Emulator() as emu:
        task_id = (await submit(http, emu, with_callback(plain_receiver)))["task_id"]
        await submit(http, emu, with_callback(plain_receiver))
        await emu.callbacks.drain(5)
        async with http.get(emu.url / "_emulator/deliveries", params={"task_id": task_id}) as r:
            rows = await r.json()
    assert [row["kind"] for row in rows] == ["challenge", "status", "status"]
    assert {row["task_id"] for row in rows} == {task_id}


async def test_callback_faults(http: aiohttp.ClientSession, plain_receiver: PlainReceiver) -> None:
    """Drop, duplicate, reorder and delay each happen, and are counted, when certain."""
    cases = {
        "drop": CallbackFaults(drop=1.0),
        "duplicate": CallbackFaults(duplicate=1.0),
        "reorder": CallbackFaults(reorder=1.0),
        "delay": CallbackFaults(delay=1.0, delay_seconds=0.2),
    }
    seen: dict[str, list[str]] = {}
    for name, faults in cases.items():
        plain_receiver.bodies.clear()
        async with Emulator(faults=FaultPlan(callbacks=faults)) as emu:
            await submit(http, emu, with_callback(plain_receiver))
            await emu.callbacks.drain(5)
            seen[name] = [b["status"] for b in plain_receiver.bodies if "status" in b]
            if name == "delay":
                challenge, first = emu.deliveries[:2]
                assert first.sent_at - challenge.sent_at >= 0.19
    assert seen["drop"] == []
    assert seen["duplicate"] == ["processing", "processing", "success", "success"]
    assert seen["reorder"] == ["success", "processing"]
    assert seen["delay"] == ["processing", "success"]
