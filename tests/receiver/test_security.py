"""Forged and malformed callbacks change nothing a caller can see."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from minimax_s2v import TaskStatus
from minimax_s2v.emulator import Durations, Emulator
from minimax_s2v.receiver import CallbackReceiver
from tests.client_setup import face_request
from tests.raw_api import DOC_REQUEST, auth, query
from tests.receiver_setup import served_client
from tests.waiting import claim_weighed

SUCCESS_BODY = {
    "status": "success",
    "file_id": "",
    "base_resp": {"status_code": 0, "status_msg": "success"},
}


async def post(url: URL | str, body: object, method: str = "POST") -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.request(method, url, json=body) as r:
        return r.status, await r.text()


async def test_forgeries_change_nothing() -> None:
    """No token, a bad token, another task's id, a foreign file: the task stays as it is."""
    async with Emulator(api_keys=("mine", "theirs"), durations=Durations(processing=3)) as emu:
        async with aiohttp.ClientSession() as http:
            # A finished task of another account gives a real, foreign file id.
            async with http.post(
                emu.url / "v1/video_generation", json=DOC_REQUEST, headers=auth("theirs")
            ) as r:
                foreign_task = (await r.json())["task_id"]
        foreign_file = str(emu.task(foreign_task).file_id)
        async with served_client(emu) as (client, receiver):  # the client uses "mine"
            task = await client.submit(face_request())
            url = URL(emu.task(task.task_id).callback_url or "")
            base = url.parent.parent
            forged = {**SUCCESS_BODY, "task_id": task.task_id, "file_id": foreign_file}
            assert (await post(base, forged))[0] == 404  # no token
            assert (await post(base / url.parent.name / ("0" * 32), forged))[0] == 404  # bad token
            assert (await post(base / "abcdefgh" / url.name, forged))[
                0
            ] == 404  # token of another nonce
            other = {**forged, "task_id": "999999999"}
            assert (await post(url, other))[0] == 409  # valid token, another task
            before = emu.counters.queries_by_task[task.task_id]
            assert (await post(url, forged))[0] == 200  # valid token, foreign file: accepted...
            await claim_weighed(emu, task.task_id, before)
            assert not task.done  # ...but not believed: the query said Processing
            assert task.status in (TaskStatus.PREPARING, TaskStatus.QUEUEING, TaskStatus.PROCESSING)
            # All three forged paths were counted, the bare mount path included.
            assert receiver.stats().callbacks.not_found == 3
            assert receiver.stats().callbacks.conflict == 1
            final = await task.wait(timeout=10)
    assert final.status is TaskStatus.SUCCESS
    assert final.file_id == str(emu.task(task.task_id).file_id)
    assert final.file_id != foreign_file


async def test_forged_failure_is_not_believed() -> None:
    """A `failed` callback is checked with a query; a forged one changes nothing."""
    async with Emulator(durations=Durations(processing=2)) as emu:
        async with served_client(emu) as (client, _):
            task = await client.submit(face_request())
            url = emu.task(task.task_id).callback_url or ""
            body = {
                "task_id": task.task_id,
                "status": "failed",
                "file_id": "",
                "base_resp": {"status_code": 1027, "status_msg": "output sensitive"},
            }
            before = emu.counters.queries_by_task[task.task_id]
            assert (await post(url, body))[0] == 200
            await claim_weighed(emu, task.task_id, before)
            assert not task.done
            assert (await task.wait(timeout=10)).status is TaskStatus.SUCCESS


async def test_reused_file_id_of_another_task_is_not_believed() -> None:
    """A success naming a file that another of our tasks produced is checked by query."""
    async with Emulator(durations=Durations(processing=(0.0, 0.0))) as emu:
        async with served_client(emu) as (client, _):
            first = await (await client.submit(face_request())).wait(timeout=10)
            emu.configure(durations=Durations(processing=2))
            task = await client.submit(face_request())
            url = emu.task(task.task_id).callback_url or ""
            forged = {**SUCCESS_BODY, "task_id": task.task_id, "file_id": first.file_id}
            before = emu.counters.queries_by_task[task.task_id]
            assert (await post(url, forged))[0] == 200
            await claim_weighed(emu, task.task_id, before)
            assert not task.done
            final = await task.wait(timeout=10)
    assert final.file_id != first.file_id


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [
        ("GET", None, 405),
        ("PUT", {}, 405),
        ("POST", "not json", 400),
        ("POST", [1, 2], 400),
        ("POST", {"task_id": "1"}, 400),
        ("POST", {"challenge": 5}, 400),
    ],
)
async def test_bad_requests_get_4xx(method: str, body: object, status: int) -> None:
    """Wrong method, malformed JSON or a wrong shape: a 4xx, never a 500."""
    async with Emulator() as emu:
        async with served_client(emu) as (_, receiver):
            url = receiver.callback_url("abcdefghij")
            async with aiohttp.ClientSession() as http:
                data = body if isinstance(body, str) else None
                json_body = None if isinstance(body, str) else body
                async with http.request(method, url, data=data, json=json_body) as r:
                    assert r.status == status
                    assert "error" in await r.json()


async def test_body_over_the_cap_gets_413() -> None:
    """A body over max_body is refused with 413, whether declared or streamed."""
    receiver = CallbackReceiver("http://127.0.0.1:1/cb", max_body=1024)
    async with receiver.serve("127.0.0.1", 0) as local:
        url = local / "abcdefghij" / receiver.callback_url("abcdefghij").name
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=b"x" * 2048) as r:
                assert r.status == 413

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(4):
                    yield b"y" * 512

            async with http.post(url, data=chunks()) as r:
                assert r.status == 413


async def test_secret_never_shown() -> None:
    """The secret is not in the receiver's repr."""
    receiver = CallbackReceiver("https://example.com/cb", secret="a-very-secret-value-123")
    assert "a-very-secret" not in repr(receiver)
    with pytest.raises(ValueError, match="16 bytes"):
        CallbackReceiver("https://example.com/cb", secret="short")
    with pytest.raises(ValueError, match="absolute"):
        CallbackReceiver("/cb")


async def test_query_helper_is_consistent() -> None:
    """The raw query helper sees the same task the client does (sanity for these tests)."""
    async with Emulator() as emu, aiohttp.ClientSession() as http:
        body = await query(http, emu, "1")
    assert body["base_resp"]["status_code"] == 2013
