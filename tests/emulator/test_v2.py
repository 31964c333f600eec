"""The emulator's V2 API (MiniMax-H3): create, query by path, list, cancel, limits, callbacks."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from minimax_s2v import ContentPolicyError, InvalidRequestError, RateLimitError, TaskStatus
from minimax_s2v._wire import parse_h3_list, parse_h3_task, parse_submit, v2_error_in
from minimax_s2v.emulator import Durations, Emulator, Endpoint, EndpointFaults, FaultPlan
from tests.conftest import PlainReceiver
from tests.raw_api import auth

FACE = "https://example.com/face.jpg"
REFERENCE: dict[str, Any] = {
    "model": "MiniMax-H3",
    "content": [
        {"type": "text", "text": "She turns and smiles."},
        {"type": "image_url", "image_url": {"url": FACE}, "role": "reference_image"},
    ],
    "resolution": "2K",
    "duration": 5,
}


async def create(
    http: aiohttp.ClientSession, emu: Emulator, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        emu.url / "v2/video_generation", json=body or REFERENCE, headers=auth(emu.api_key)
    ) as response:
        return response.status, await response.json()


async def query(
    http: aiohttp.ClientSession, emu: Emulator, task_id: str
) -> tuple[int, dict[str, Any]]:
    async with http.get(
        emu.url / "v2/query/video_generation" / task_id, headers=auth(emu.api_key)
    ) as response:
        return response.status, await response.json()


async def cancel(
    http: aiohttp.ClientSession, emu: Emulator, task_id: str
) -> tuple[int, dict[str, Any]]:
    async with http.delete(
        emu.url / "v2/video_generation" / task_id, headers=auth(emu.api_key)
    ) as response:
        return response.status, await response.json()


async def test_create_then_query_by_path(http: aiohttp.ClientSession) -> None:
    """Create answers {"task_id"} only; the query answers {"task"} with content.url at the end."""
    async with Emulator(durations=Durations(queueing=0.2, processing=0.2)) as emu:
        status, body = await create(http, emu)
        assert (status, list(body)) == (200, ["task_id"])
        task_id = parse_submit(body)
        _, first = await query(http, emu, task_id)
        assert parse_h3_task(first).status_text == "queued"
        assert "content" not in first["task"]
        assert first["task"]["usage"] == {}
        await asyncio.sleep(0.5)
        _, done = await query(http, emu, task_id)
        task = parse_h3_task(done)
        assert task.status is TaskStatus.SUCCESS
        assert task.video_url is not None
        async with http.get(task.video_url) as response:
            assert response.status == 200
            assert (await response.read())[4:8] == b"ftyp"


async def test_expired_content_url_and_a_fresh_one(http: aiohttp.ClientSession) -> None:
    """content.url expires (403); querying again gives a fresh one that works."""
    async with Emulator(download_ttl=0.2) as emu:
        task_id = parse_submit((await create(http, emu))[1])
        old = parse_h3_task((await query(http, emu, task_id))[1]).video_url
        assert old is not None
        await asyncio.sleep(0.3)
        async with http.get(old) as response:
            assert response.status == 403
        fresh = parse_h3_task((await query(http, emu, task_id))[1]).video_url
        assert fresh is not None
        assert fresh != old
        async with http.get(fresh) as response:
            assert response.status == 200


async def test_query_past_the_window_is_invalid_task_id(http: aiohttp.ClientSession) -> None:
    """Past the 7-day window (shortened here) the API answers 400 invalid task_id (2013)."""
    async with Emulator(task_ttl=0.1) as emu:
        task_id = parse_submit((await create(http, emu))[1])
        await asyncio.sleep(0.2)
        status, body = await query(http, emu, task_id)
    error = v2_error_in(body, http_status=status)
    assert isinstance(error, InvalidRequestError)
    assert (status, error.code) == (400, 2013)
    assert "task_id" in error.message


async def test_list_filters_by_task_ids(http: aiohttp.ClientSession) -> None:
    """filter.task_ids, repeated or comma-joined, returns those tasks; total counts them."""
    async with Emulator() as emu:
        ids = [parse_submit((await create(http, emu))[1]) for _ in range(4)]
        url = emu.url / "v2/query/video_generation"
        params = [("page_num", "1"), ("page_size", "10"), ("filter.task_ids", ids[0])]
        params.append(("filter.task_ids", ids[1]))
        async with http.get(url, params=params, headers=auth(emu.api_key)) as response:
            tasks, total = parse_h3_list(await response.json())
        assert (sorted(t.id for t in tasks), total) == (sorted(ids[:2]), 2)
        joined = {"filter.task_ids": ",".join(ids[2:]), "page_size": "1"}
        async with http.get(url, params=joined, headers=auth(emu.api_key)) as response:
            tasks, total = parse_h3_list(await response.json())
        assert (len(tasks), total) == (1, 2)


async def test_cancel_by_status(http: aiohttp.ClientSession) -> None:
    """Queued: cancelled, never charged. Running: refused. Succeeded: deleted, then gone."""
    async with Emulator(durations=Durations(queueing=0.3, processing=0.5)) as emu:
        queued = parse_submit((await create(http, emu))[1])
        running = parse_submit((await create(http, emu))[1])
        status, body = await cancel(http, emu, queued)
        assert (status, body) == (
            200,
            {"task_id": queued, "action": "cancelled", "status": "cancelled"},
        )
        await asyncio.sleep(0.4)
        status, body = await cancel(http, emu, running)
        assert status == 400
        assert isinstance(v2_error_in(body, http_status=status), InvalidRequestError)
        again = (await cancel(http, emu, queued))[0]
        assert again == 400  # a cancelled task cannot be cancelled again
        assert parse_h3_task((await query(http, emu, queued))[1]).status is TaskStatus.CANCELLED
        await asyncio.sleep(0.5)
        assert emu.charged() == [running]
        assert emu.state()["v2_charged"] == 1
        status, body = await cancel(http, emu, running)
        assert (status, body["action"]) == (200, "deleted")
        assert (await query(http, emu, running))[0] == 400


async def test_in_flight_cap(http: aiohttp.ClientSession) -> None:
    """Past v2_max_in_flight a create answers 429 (1002), creating nothing; an end frees a slot.

    The tasks stay queued until one ends by a cancel: no timing decides what is in flight.
    """
    async with Emulator(durations=Durations(queueing=60.0), v2_max_in_flight=2) as emu:
        first_status, first = await create(http, emu)
        assert first_status == 200
        assert (await create(http, emu))[0] == 200
        status, body = await create(http, emu)
        error = v2_error_in(body, http_status=status)
        assert isinstance(error, RateLimitError)
        assert emu.counters.tasks_created == 2
        assert (await cancel(http, emu, first["task_id"]))[0] == 200
        assert (await create(http, emu))[0] == 200
        assert emu.state()["v2_max_in_flight_seen"] == 2


async def test_rpm_and_auth_use_the_envelope(http: aiohttp.ClientSession) -> None:
    """A missing key is 401 (1004), a burst past the RPM 429 (1002), both in the V2 envelope."""
    async with Emulator(rate_limits={Endpoint.V2_SUBMIT: 1}) as emu:
        async with http.post(emu.url / "v2/video_generation", json=REFERENCE) as response:
            assert response.status == 401
            assert v2_error_in(await response.json(), http_status=401).code == 1004  # type: ignore[union-attr]
        assert (await create(http, emu))[0] == 200
        status, body = await create(http, emu)
        assert status == 429
        assert v2_error_in(body, http_status=status).code == 1002  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, 1004),
        ("Basic emulator-key", 1004),
        ("Bearer ", 1004),
        ("bearer someone-elses-key", 2049),
        ("Bearer someone-elses-key", 2049),
    ],
)
async def test_v1_and_v2_refuse_a_key_alike(
    header: str | None, code: int, http: aiohttp.ClientSession
) -> None:
    """One rule decides a missing key (1004) from a refused one (2049), in either envelope."""
    headers = {} if header is None else {"Authorization": header}
    async with Emulator() as emu:
        async with http.get(
            emu.url / "v1/query/video_generation", params={"task_id": "1"}, headers=headers
        ) as response:
            assert (await response.json())["base_resp"]["status_code"] == code
        async with http.get(emu.url / "v2/query/video_generation/1", headers=headers) as response:
            error = v2_error_in(await response.json(), http_status=response.status)
            assert (response.status, error.code if error else None) == (401, code)
        assert emu.counters.requests == {"query": {"auth_error": 1}, "v2_query": {"auth_error": 1}}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"content": [{"type": "text", "text": " "}]}, "non-empty"),
        ({"resolution": "480P"}, "resolution"),
        ({"duration": 3}, "duration"),
        ({"content": [{"type": "text", "text": "x"}]}, "ratio"),
        ({"model": "MiniMax-H4"}, "model"),
        (
            {
                "content": REFERENCE["content"]
                + [{"type": "image_url", "image_url": {"url": FACE}, "role": "first_frame"}]
            },
            "mixed",
        ),
    ],
)
async def test_invalid_creates_are_400_2013(
    http: aiohttp.ClientSession, change: dict[str, Any], needle: str
) -> None:
    """The documented rules are enforced with 400 and 2013 in the message; nothing is created."""
    async with Emulator() as emu:
        status, body = await create(http, emu, {**REFERENCE, **change})
        assert emu.counters.tasks_created == 0
    error = v2_error_in(body, http_status=status)
    assert isinstance(error, InvalidRequestError)
    assert (status, error.code) == (400, 2013)
    assert needle in error.message


async def test_h3_max_references_both_readings(http: aiohttp.ClientSession) -> None:
    """H3-Max with references is accepted by default and refused when told to."""
    body = {**REFERENCE, "model": "MiniMax-H3-Max", "resolution": "768P"}
    async with Emulator() as emu:
        assert (await create(http, emu, body))[0] == 200
    async with Emulator(h3_max_references="reject") as emu:
        assert (await create(http, emu, body))[0] == 400


async def test_failed_task_carries_its_code(http: aiohttp.ClientSession) -> None:
    """A sensitive prompt fails with error.code "1026" (a string)."""
    body = {
        **REFERENCE,
        "content": [{"type": "text", "text": "[sensitive]"}, REFERENCE["content"][1]],
    }
    async with Emulator() as emu:
        task_id = parse_submit((await create(http, emu, body))[1])
        _, answer = await query(http, emu, task_id)
    assert answer["task"]["error"]["code"] == "1026"
    assert parse_h3_task(answer).status is TaskStatus.FAIL


async def test_faults_on_v2_endpoints_use_the_envelope(http: aiohttp.ClientSession) -> None:
    """The fault plan plays on V2 endpoints; rate limits and server errors come enveloped."""
    plan = FaultPlan(endpoints={Endpoint.V2_QUERY: EndpointFaults(rate_limit=1.0)})
    async with Emulator() as emu:
        task_id = parse_submit((await create(http, emu))[1])
        emu.configure(faults=plan)
        status, body = await query(http, emu, task_id)
        assert isinstance(v2_error_in(body, http_status=status), RateLimitError)
        emu.configure(
            faults=FaultPlan(endpoints={Endpoint.V2_SUBMIT: EndpointFaults(server_error=1.0)})
        )
        status, body = await create(http, emu)
        assert status in (500, 529)
        assert v2_error_in(body, http_status=status).retryable  # type: ignore[union-attr]
        assert emu.counters.tasks_created == 1


async def test_callbacks_challenge_in_create_then_task_bodies(
    http: aiohttp.ClientSession, plain_receiver: PlainReceiver
) -> None:
    """The challenge comes during the create; then running and succeeded as {"task": ...}."""
    async with Emulator(durations=Durations(processing=0.1)) as emu:
        body = {**REFERENCE, "callback_url": str(plain_receiver.url)}
        task_id = parse_submit((await create(http, emu, body))[1])
        await emu.callbacks.drain(5)
    bodies = plain_receiver.bodies
    assert list(bodies[0]) == ["challenge"]
    assert [parse_h3_task(b).status_text for b in bodies[1:]] == ["running", "succeeded"]
    assert all(b["task"]["id"] == task_id for b in bodies[1:])
    assert bodies[2]["task"]["content"]["url"].startswith("http://127.0.0.1")


async def test_unreachable_callback_fails_the_create(http: aiohttp.ClientSession) -> None:
    """No echo: 400 "fail to check callback url" (2013), nothing created."""
    from tests.processes import free_port

    async with Emulator(challenge_timeout=0.5) as emu:
        body = {**REFERENCE, "callback_url": f"http://127.0.0.1:{free_port()}/cb"}
        status, answer = await create(http, emu, body)
        assert emu.counters.tasks_created == 0
    assert status == 400
    assert "callback" in answer["error"]["message"]


async def test_cancelled_task_gets_a_cancelled_callback(
    http: aiohttp.ClientSession, plain_receiver: PlainReceiver
) -> None:
    """A cancel stops the task's callbacks and sends one `cancelled`."""
    async with Emulator(durations=Durations(queueing=0.5, processing=0.1)) as emu:
        body = {**REFERENCE, "callback_url": str(plain_receiver.url)}
        task_id = parse_submit((await create(http, emu, body))[1])
        await cancel(http, emu, task_id)
        await emu.callbacks.drain(5)
        await asyncio.sleep(0.7)
    statuses = [b["task"]["status"] for b in plain_receiver.bodies if "task" in b]
    assert statuses == ["cancelled"]


def test_content_policy_maps() -> None:
    """A 422 (1026) envelope maps to ContentPolicyError (as MiniMax documents it)."""
    body = {
        "type": "error",
        "error": {
            "type": "unprocessable_entity_error",
            "message": "sensitive (1026)",
            "http_code": "422",
        },
        "request_id": "r",
    }
    assert isinstance(v2_error_in(body, http_status=422), ContentPolicyError)
