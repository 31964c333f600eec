"""The client on the V2 API (MiniMax-H3): the same Task handle, callbacks, cancel, limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from minimax_s2v import (
    CancelRefusedError,
    H3Request,
    RateLimit,
    SubmissionUncertainError,
    TaskCancelledError,
    TaskExpiredError,
    TaskStatus,
)
from minimax_s2v.emulator import Durations, Emulator, Endpoint, EndpointFaults, FaultPlan
from minimax_s2v.stores import SQLiteStore
from tests.client_setup import face_request, fast_client
from tests.receiver_setup import served_client
from tests.waiting import claim_weighed

FACE = "https://example.com/face.jpg"
NO_RPM = RateLimit(v2_submit_rpm=None)  # the 300 RPM default paces a burst at 5 a second


def h3(prompt: str = "She turns to the camera and smiles.") -> H3Request:
    return H3Request(prompt, references=[FACE])


async def test_generate_downloads_content_url(tmp_path: Path) -> None:
    """generate() of an H3 request polls the V2 query and saves task.content.url."""
    async with Emulator(durations=Durations(processing=0.1)) as emu:
        async with fast_client(emu) as client:
            result = await client.generate(h3(), tmp_path)
        assert emu.counters.requests_to("v2_submit") == 1
        assert emu.counters.requests_to("submit") == 0
    assert result.snapshot.status is TaskStatus.SUCCESS
    assert result.snapshot.video_url is not None
    assert result.path == tmp_path / f"{result.task_id}.mp4"
    assert result.path.read_bytes()[4:8] == b"ftyp"


async def test_expired_content_url_is_refreshed_by_a_query(tmp_path: Path) -> None:
    """A content.url past its life is replaced by querying the task again."""
    async with Emulator(download_ttl=0.3) as emu:
        async with fast_client(emu) as client:
            task = await client.submit(h3())
            await task.wait(10)
            await asyncio.sleep(0.5)  # the URL the wait saw has expired
            before = emu.counters.queries_by_task[task.task_id]
            path = await client.download(task, tmp_path)
        assert emu.counters.requests["download"]["expired"] == 1
        assert emu.counters.queries_by_task[task.task_id] == before + 1
    assert path.read_bytes()[4:8] == b"ftyp"


async def test_v1_and_v2_side_by_side() -> None:
    """One client follows an S2V-01 task and an H3 task, each on its own API."""
    async with Emulator() as emu:
        async with fast_client(emu) as client:
            v1, v2 = await asyncio.gather(client.submit(face_request()), client.submit(h3()))
            done = await asyncio.gather(v1.wait(10), v2.wait(10))
        assert emu.counters.requests_to("query") >= 1
        assert emu.counters.requests_to("v2_query") >= 1
    assert done[0].file_id is not None
    assert done[1].video_url is not None
    assert client.dialect_of(v2.task_id).value == "v2"


async def test_cancel_a_queued_task() -> None:
    """cancel() ends a queued task as CANCELLED; waiting raises; the emulator charges nothing."""
    async with Emulator(durations=Durations(queueing=2.0, processing=0.1)) as emu:
        async with fast_client(emu) as client:
            task = await client.submit(h3())
            assert await task.cancel()
            assert task.status is TaskStatus.CANCELLED
            with pytest.raises(TaskCancelledError):
                await task.wait(5)
        (seen,) = emu.state(tasks=True)["tasks"]
        assert (seen["task_id"], seen["status"]) == (task.task_id, TaskStatus.CANCELLED.value)
        assert emu.charged() == []
        assert emu.counters.requests["v2_cancel"] == {"cancelled": 1}


async def test_cancel_refused_for_running_and_v1_tasks() -> None:
    """A running task cannot be cancelled (typed error); a finished one is left alone."""
    async with Emulator(durations=Durations(processing=0.5)) as emu:
        async with fast_client(emu) as client:
            task = await client.submit(h3())
            await asyncio.sleep(0.1)
            with pytest.raises(CancelRefusedError):
                await task.cancel()
            await task.wait(5)
            assert not await task.cancel()  # ended: not deleted
            assert emu.counters.requests.get("v2_cancel") is None
            v1 = await client.submit(face_request())
            with pytest.raises(CancelRefusedError):
                await v1.cancel()


async def test_query_past_the_window_is_a_typed_error() -> None:
    """Past V2's query window the wait ends with TaskExpiredError; polling stops."""
    async with Emulator(task_ttl=0.2, durations=Durations(processing=30)) as emu:
        async with fast_client(emu) as client:
            task = await client.submit(h3())
            with pytest.raises(TaskExpiredError) as caught:
                await task.wait(10)
            polls = emu.counters.requests_to("v2_query")
            await asyncio.sleep(0.3)
            assert emu.counters.requests_to("v2_query") == polls  # not polled again
    assert caught.value.task_id == task.task_id
    assert "7-day" in str(caught.value)


async def test_200_reference_tasks_by_callbacks_with_the_cap_held() -> None:
    """200 at once: every one resolved by callbacks, no fallback poll, never over 30 in flight."""
    durations = Durations(queueing=(0.05, 0.2), processing=(0.1, 0.4))
    async with Emulator(durations=durations, seed=19) as emu:
        async with served_client(emu, rate_limit=NO_RPM) as (client, receiver):
            tasks = await asyncio.gather(*(client.submit(h3(f"take {i}")) for i in range(200)))
            results = await asyncio.gather(*(t.wait(60) for t in tasks))
            stats = client.stats()
        counters = emu.counters
    assert {r.status for r in results} == {TaskStatus.SUCCESS}
    assert len({t.task_id for t in tasks}) == 200
    assert counters.tasks_created == 200
    assert stats.fallback_polls == 0
    assert stats.confirmations == 200
    assert counters.v2_max_in_flight_seen == 30
    assert counters.requests["v2_submit"].get("in_flight_limited", 0) == 0
    assert receiver.stats().challenges.count == 200


async def test_lost_create_answer_is_adopted_from_a_v2_callback() -> None:
    """A create whose answer was lost is adopted once a V2 query shows the task its URL named."""
    faults = FaultPlan(endpoints={Endpoint.V2_SUBMIT: EndpointFaults(lost_response=1.0)})
    async with Emulator(durations=Durations(processing=0.2), faults=faults) as emu:
        async with served_client(emu, rate_limit=NO_RPM) as (client, _):
            with pytest.raises(SubmissionUncertainError) as caught:
                await client.submit(h3())
            for _ in range(100):
                task = client.recover(caught.value)
                if task is not None:
                    break
                await asyncio.sleep(0.05)
            assert task is not None
            snapshot = await task.wait(10)
        assert emu.counters.tasks_created == 1
    assert snapshot.status is TaskStatus.SUCCESS


async def test_resume_mixes_v1_and_v2(tmp_path: Path) -> None:
    """Journaled V1 and V2 tasks resume each on its own API (V2 by a list), none resubmitted."""
    path = tmp_path / "journal.db"
    async with Emulator(durations=Durations(processing=0.5)) as emu:
        async with fast_client(emu, store=SQLiteStore(path)) as client:
            first = [await client.submit(face_request()), await client.submit(h3())]
        async with fast_client(emu, store=SQLiteStore(path)) as client:
            queried = emu.counters.requests_to("v2_query")
            resumed = await client.resume()
            # The V2 task was reconciled by one list call (filter.task_ids), not a query.
            assert emu.counters.requests_to("v2_list") == 1
            assert emu.counters.requests_to("v2_query") == queried
            results = await asyncio.gather(*(t.wait(10) for t in resumed.tasks))
        assert emu.counters.tasks_created == 2
    assert sorted(t.task_id for t in resumed.tasks) == sorted(t.task_id for t in first)
    assert {r.status for r in results} == {TaskStatus.SUCCESS}
    v2 = next(r for r in results if r.task_id == first[1].task_id)
    assert v2.video_url is not None


async def test_forged_v2_success_callback_waits_for_the_v2_query() -> None:
    """A {"task": succeeded} push with a foreign URL resolves nothing until a V2 query agrees."""
    import aiohttp
    from yarl import URL

    async with Emulator(durations=Durations(queueing=1.0, processing=0.3)) as emu:
        async with served_client(emu, rate_limit=NO_RPM) as (client, _):
            task = await client.submit(h3())
            url = URL(emu.task(task.task_id).callback_url or "")
            forged = {
                "task": {
                    "id": task.task_id,
                    "status": "succeeded",
                    "content": {"url": "https://evil.example/not-your-video.mp4"},
                }
            }
            before = emu.counters.queries_by_task[task.task_id]
            async with aiohttp.ClientSession() as http, http.post(url, json=forged) as answer:
                assert answer.status == 200  # journaled as a hint
            await claim_weighed(emu, task.task_id, before)  # the V2 query says queued…
            assert not task.done  # …so nothing is believed
            final = await task.wait(10)
            origin = str(emu.url)
    assert final.status is TaskStatus.SUCCESS
    assert final.video_url is not None
    assert final.video_url.startswith(origin)  # the API's URL, not the forged one


async def test_in_flight_cap_waits_in_order_and_survives_cancelled_waiters() -> None:
    """take() waits for room in arrival order; a cancelled waiter never swallows a release."""
    from minimax_s2v._ratelimit import InFlightCap

    cap = InFlightCap(1)
    await cap.take()
    order: list[str] = []

    async def taker(name: str) -> None:
        await cap.take()
        order.append(name)

    doomed = asyncio.create_task(taker("doomed"))
    second = asyncio.create_task(taker("second"))
    third = asyncio.create_task(taker("third"))
    await asyncio.sleep(0)
    cap.release()  # wakes "doomed"…
    doomed.cancel()  # …which is cancelled before it runs: the room goes on to "second"
    await asyncio.sleep(0.01)
    assert order == ["second"]
    assert second.done()
    cap.force()  # a re-attached task: now over the cap
    cap.release()
    await asyncio.sleep(0.01)
    assert order == ["second"]  # still full (second holds it, the forced one ended)
    cap.release()
    await asyncio.wait_for(third, 1)
    assert order == ["second", "third"]
    assert cap.count == 1
    assert doomed.cancelled()


async def test_every_way_a_v2_task_ends_frees_its_slot() -> None:
    """With room for one task, its end (expiry past the window, a cancel) lets the next one in.

    The slot is not freed by a waiter: nobody waits on these tasks, the client follows them.
    """
    limits = RateLimit(v2_submit_rpm=None, v2_max_in_flight=1)
    durations = Durations(queueing=30.0, processing=0.05)
    async with Emulator(durations=durations, task_ttl=1.0) as emu:
        async with fast_client(emu, rate_limit=limits) as client:
            queued = await client.submit(h3("queued"))  # never runs: ends by expiring
            nxt = asyncio.create_task(client.submit(h3("next")))
            await asyncio.sleep(0.1)
            assert not nxt.done()  # the one slot is taken
            second = await asyncio.wait_for(nxt, 5)  # freed when the first expired
            assert queued.done
            with pytest.raises(TaskExpiredError):
                await queued.wait(1)
            third = asyncio.create_task(client.submit(h3("third")))
            await asyncio.sleep(0.05)
            assert not third.done()
            await asyncio.sleep(0.05)
            assert await second.cancel()  # freed by the cancel
            third_task = await asyncio.wait_for(third, 5)
            assert third_task.task_id not in (queued.task_id, second.task_id)
        # (The emulator still counts the expired task as queued: its window is artificial.)
        assert emu.counters.requests["v2_submit"] == {"ok": 3}


@pytest.mark.parametrize("own_session", [True, False])
async def test_closing_the_client_ends_a_submission_waiting_for_a_slot(own_session: bool) -> None:
    """A V2 submit() waiting for an in-flight slot when the client closes sends nothing."""
    limits = RateLimit(v2_submit_rpm=None, v2_max_in_flight=1)
    async with Emulator(durations=Durations(queueing=30.0)) as emu, aiohttp.ClientSession() as http:
        session = None if own_session else http
        client = fast_client(emu, rate_limit=limits, session=session)
        async with client:
            await client.submit(h3("first"))
            waiting = asyncio.create_task(client.submit(h3("waiting")))
            await asyncio.sleep(0.05)
            assert not waiting.done()
        with pytest.raises(RuntimeError, match="this Client is closed"):
            await asyncio.wait_for(waiting, 5)
        assert emu.counters.requests["v2_submit"] == {"ok": 1}
        assert emu.counters.tasks_created == 1
