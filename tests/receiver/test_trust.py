"""The trust rules, attacked from outside over loopback (see minimax_s2v._tracking).

Each test sends what a hostile sender, a broken proxy or a failing store would, and checks
that nothing a caller can see changes unless MiniMax's authenticated API says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from minimax_s2v import (
    Client,
    ConfigurationError,
    SubmissionConflictError,
    SubmissionUncertainError,
    TaskStatus,
)
from minimax_s2v.emulator import Durations, Emulator, Endpoint, EndpointFaults, FaultPlan
from minimax_s2v.receiver import ReceiverTimeouts
from tests.client_setup import TEST_RETRY, face_request
from tests.raw_api import DOC_REQUEST, auth
from tests.receiver_setup import (
    MOUNTS,
    client_of,
    mounted,
    new_receiver,
    status_update,
    uncertain_submission,
)
from tests.stores.flaky import FlakyStore
from tests.waiting import claim_weighed

SLOW = Durations(preparing=30.0)  # a task that stays in Preparing while the test runs


async def post(url: URL | str, body: object) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def raw_post(url: URL, body: bytes, *, chunked: bool) -> tuple[int, bytes]:
    """POST ``body`` in two TCP writes 50 ms apart (as two chunks with ``chunked``)."""
    assert url.host is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    half = len(body) // 2
    head = f"POST {url.raw_path} HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: application/json\r\n"
    if chunked:
        writer.write(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        writer.write(b"%x\r\n%s\r\n" % (half, body[:half]))
        await writer.drain()
        await asyncio.sleep(0.05)
        rest = body[half:]
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
    else:
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[:half])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(body[half:])
    await writer.drain()
    status_line = await reader.readline()
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    answer = await reader.readexactly(int(headers.get("content-length", "0")))
    writer.close()
    return int(status_line.split()[1]), answer


@pytest.mark.parametrize("chunked", [False, True], ids=["two-writes", "chunked"])
@pytest.mark.parametrize("kind", MOUNTS)
async def test_split_bodies_are_read_whole(kind: str, chunked: bool) -> None:
    """A challenge and an update sent in two pieces 50 ms apart: answered 200 and applied."""
    receiver = new_receiver()
    async with Emulator(durations=SLOW) as emu, mounted(kind, receiver):
        async with client_of(emu, receiver) as client:
            task = await client.submit(face_request())
            url = URL(emu.task(task.task_id).callback_url or "")
            challenge = json.dumps({"challenge": "x" * 40}).encode()
            status, answer = await raw_post(url, challenge, chunked=chunked)
            assert (status, json.loads(answer)) == (200, {"challenge": "x" * 40})
            body = json.dumps(status_update(task.task_id, "processing")).encode()
            status, _ = await raw_post(url, body, chunked=chunked)
            assert status == 200
            assert task.status is TaskStatus.PROCESSING  # applied, from the split body


async def test_self_check_and_never_issued_urls_resolve_nothing() -> None:
    """The self-check URL, and a verified URL nobody issued, get 404 for updates."""
    receiver = new_receiver()
    async with Emulator(durations=SLOW) as emu, receiver.serve("127.0.0.1", 0):
        async with client_of(emu, receiver) as client:
            task = await client.submit(face_request())
            check = await receiver.self_check()
            assert check.ok  # its challenge is echoed…
            forged = status_update(task.task_id, "processing")
            assert (await post(check.url, forged))[0] == 404  # …but no update is taken on it
            never_issued = receiver.callback_url("neverissued123")
            assert (await post(never_issued, forged))[0] == 404
            assert (await post(never_issued, {"challenge": "c"}))[1] == {"challenge": "c"}
            assert task.events == []  # nothing applied: the emulator has sent nothing yet


async def test_stale_url_of_a_finished_task_cannot_touch_another() -> None:
    """A finished task's URL naming another followed task: 409, and that task is untouched."""
    receiver = new_receiver()
    async with Emulator() as emu, receiver.serve("127.0.0.1", 0):
        async with client_of(emu, receiver) as client:
            done = await client.submit(face_request())
            await done.wait(timeout=10)
            stale = URL(emu.task(done.task_id).callback_url or "")
            emu.configure(durations=SLOW)
            task = await client.submit(face_request())
            forged = status_update(task.task_id, "success", str(emu.task(done.task_id).file_id))
            assert (await post(stale, forged))[0] == 409
            assert (await post(stale, status_update(task.task_id, "processing")))[0] == 409
            duplicate = status_update(done.task_id, "success")
            assert (await post(stale, duplicate))[0] == 200
            assert task.events == []
            assert client.stats().conflicts == 2


async def test_evicted_nonce_is_valid_for_its_own_task_only() -> None:
    """A nonce the receiver forgot is checked against the journal: its task only."""
    receiver = new_receiver(max_bindings=1)
    async with Emulator(durations=SLOW) as emu, receiver.serve("127.0.0.1", 0):
        async with client_of(emu, receiver) as client:
            first = await client.submit(face_request())
            second = await client.submit(face_request())  # evicts the first's nonce
            evicted = URL(emu.task(first.task_id).callback_url or "")
            assert (await post(evicted, status_update(second.task_id, "processing")))[0] == 409
            assert second.events == []
            assert (await post(evicted, status_update(first.task_id, "processing")))[0] == 200
            assert first.status is TaskStatus.PROCESSING


async def test_forged_success_with_a_file_of_the_same_account_is_not_believed() -> None:
    """A `success` naming another task's file of the same account waits for the real one."""
    receiver = new_receiver()
    async with Emulator(durations=Durations(processing=1.5)) as emu:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                emu.url / "v1/video_generation", json=DOC_REQUEST, headers=auth(emu.api_key)
            ) as r:
                other = (await r.json())["task_id"]  # same account, not followed by the client
        async with receiver.serve("127.0.0.1", 0):
            async with client_of(emu, receiver) as client:
                await asyncio.sleep(1.6)  # the other task's file now exists
                task = await client.submit(face_request())
                url = URL(emu.task(task.task_id).callback_url or "")
                foreign = str(emu.task(other).file_id)
                before = emu.counters.queries_by_task[task.task_id]
                assert (await post(url, status_update(task.task_id, "success", foreign)))[0] == 200
                await claim_weighed(emu, task.task_id, before)  # the query says Processing…
                assert not task.done  # …so nothing is believed
                final = await task.wait(timeout=10)
    assert final.status is TaskStatus.SUCCESS
    assert final.file_id == str(emu.task(task.task_id).file_id) != foreign
    assert task.video is not None
    assert task.video.file_id != int(foreign)


async def test_uncertain_submission_is_not_adopted_from_a_forged_claim() -> None:
    """A forged claim first, then the real task's callbacks: a conflict, never silent."""
    faults = FaultPlan(endpoints={Endpoint.SUBMIT: EndpointFaults(lost_response=1.0)})
    receiver = new_receiver()
    async with Emulator(durations=Durations(preparing=0.3, processing=0.3)) as emu:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                emu.url / "v1/video_generation", json=DOC_REQUEST, headers=auth(emu.api_key)
            ) as r:
                other = (await r.json())["task_id"]  # exists in the account, no nonce holds it
        emu.configure(faults=faults)
        async with receiver.serve("127.0.0.1", 0):
            async with client_of(emu, receiver) as client:
                lost, real = await uncertain_submission(client, emu, besides=other)
                url = URL(emu.task(real).callback_url or "")
                assert (await post(url, status_update(other, "processing")))[0] == 200  # a claim
                await emu.callbacks.drain(5)  # the real task's callbacks: claims too
                async with asyncio.timeout(5):
                    while client.stats().conflicts == 0:
                        await asyncio.sleep(0.01)
                with pytest.raises(SubmissionConflictError) as conflict:
                    client.recover(lost)
    assert set(conflict.value.task_ids) == {other, real}
    delivered = [d for d in emu.deliveries if d.kind == "status" and d.task_id == real]
    assert delivered
    assert {d.http_status for d in delivered} == {200}  # the real callbacks were not refused


async def test_uncertain_submission_adopts_only_a_task_the_api_shows() -> None:
    """A forged claim naming a task that does not exist is dropped; the real one is adopted."""
    faults = FaultPlan(endpoints={Endpoint.SUBMIT: EndpointFaults(lost_response=1.0)})
    receiver = new_receiver()
    async with Emulator(faults=faults, durations=Durations(preparing=0.3, processing=1.0)) as emu:
        async with receiver.serve("127.0.0.1", 0):
            async with client_of(emu, receiver) as client:
                lost, real = await uncertain_submission(client, emu)
                url = URL(emu.task(real).callback_url or "")
                assert (await post(url, status_update("123456789", "success")))[0] == 200
                await emu.callbacks.drain(5)
                async with asyncio.timeout(5):
                    while (task := client.recover(lost)) is None:
                        await asyncio.sleep(0.01)
                assert task.task_id == real
                assert (await task.wait(timeout=10)).status is TaskStatus.SUCCESS
    assert client.stats().adopted == 1


async def test_closed_client_and_failing_store_answer_503() -> None:
    """Not recorded means not acknowledged: 503, and the task does not move."""
    store = FlakyStore()
    receiver = new_receiver()
    async with Emulator(durations=SLOW) as emu, receiver.serve("127.0.0.1", 0):
        async with client_of(emu, receiver, store=store) as client:
            task = await client.submit(face_request())
            url = URL(emu.task(task.task_id).callback_url or "")
            store.failures["save_event"] = 10**6
            assert (await post(url, status_update(task.task_id, "processing")))[0] == 503
            assert task.events == []
            store.failures["save_event"] = 0
            assert (await post(url, status_update(task.task_id, "processing")))[0] == 200
            assert task.status is TaskStatus.PROCESSING
        status, _ = await post(url, status_update(task.task_id, "success"))
        assert status == 503
        assert (await post(url, {"challenge": "still"}))[0] == 200
    journal = [s.status for s, _, _ in await store.events(task.task_id)]
    assert TaskStatus.SUCCESS not in journal


async def test_standalone_server_bounds_slow_and_silent_clients(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A silent connection and slow headers are closed; a slow body gets 408; bad tokens 404."""
    caplog.set_level(logging.DEBUG, logger="minimax_s2v")
    receiver = new_receiver()
    timeouts = ReceiverTimeouts(header=0.3, body=0.3, idle=0.6)
    async with receiver.serve("127.0.0.1", 0, timeouts=timeouts) as local:
        assert local.port is not None
        silent_reader, silent = await asyncio.open_connection("127.0.0.1", local.port)
        slow_reader, slow = await asyncio.open_connection("127.0.0.1", local.port)
        slow.write(b"POST /x HTTP/1.1\r\nHost: a\r\n")  # never finishes its headers
        async with asyncio.timeout(5):  # both closed by the server after about 0.3 s
            assert await silent_reader.read() == b""
            assert await slow_reader.read() == b""
        silent.close()
        slow.close()
        url = receiver.callback_url("heldnonce123")
        reader, writer = await asyncio.open_connection("127.0.0.1", local.port)
        writer.write(
            f"POST {url.raw_path} HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\n{{".encode()
        )
        async with asyncio.timeout(5):
            assert (await reader.readline()).split()[1] == b"408"
        writer.close()
        base = url.parent
        for token in ("é" * 32, "%41" * 10 + "ab", "A" * 32, "0" * 31 + "\n", "zz"):
            async with aiohttp.ClientSession() as http:
                async with http.post(str(base) + "/" + token, json={"challenge": "c"}) as r:
                    assert r.status == 404, token
    assert not [r for r in caplog.records if r.exc_info]  # no traceback logged


async def test_submit_after_the_receiver_stopped_spends_no_call() -> None:
    """A standalone receiver whose serve() has ended: submit() says so, nothing is sent."""
    receiver = new_receiver()
    async with Emulator() as emu:
        async with receiver.serve("127.0.0.1", 0):
            pass
        async with client_of(emu, receiver) as client:
            with pytest.raises(ConfigurationError, match="not being served"):
                await client.submit(face_request())
            assert await client.store.submissions() == []
    assert emu.counters.requests_to("submit") == 0


async def test_a_claim_that_beat_the_lost_answer_still_adopts_the_task() -> None:
    """A progress callback that arrives before the create call breaks off is a claim too.

    A server of the test's own creates the task, delivers its ``Processing`` callback to the
    submission's URL, then drops the create call's answer. No other callback ever comes: the
    one that came while the client still waited must be what recovers the task.
    """
    task_id = "424242424242"
    delivered = asyncio.Event()

    async def create(request: web.Request) -> web.StreamResponse:
        callback_url = (await request.json())["callback_url"]
        async with aiohttp.ClientSession() as http:
            async with http.post(callback_url, json=status_update(task_id, "processing")) as r:
                assert r.status == 200
        delivered.set()
        assert request.transport is not None
        request.transport.close()  # the task exists; its answer is lost
        return web.Response()

    async def query(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "task_id": request.query["task_id"],
                "status": "Processing",
                "base_resp": {"status_code": 0, "status_msg": "success"},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/video_generation", create)
    app.router.add_get("/v1/query/video_generation", query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver = new_receiver()
    try:
        async with receiver.serve("127.0.0.1", 0):
            client = Client(
                "key", base_url=f"http://127.0.0.1:{port}", receiver=receiver, retry=TEST_RETRY
            )
            async with client:
                with pytest.raises(SubmissionUncertainError) as lost:
                    await client.submit(face_request())
                assert delivered.is_set()
                async with asyncio.timeout(5):
                    while (task := client.recover(lost.value)) is None:
                        await asyncio.sleep(0.01)
                assert task.task_id == task_id
                assert task.status is TaskStatus.PROCESSING
    finally:
        await runner.cleanup()
    assert client.stats().adopted == 1
