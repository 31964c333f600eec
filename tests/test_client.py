"""The Client against the emulator: set-up, life cycle, tasks, failures and logging."""

from __future__ import annotations

import asyncio
import logging
import threading

import aiohttp
import pytest

from minimax_s2v import (
    AuthenticationError,
    Client,
    ConfigurationError,
    ContentPolicyError,
    InvalidRequestError,
    RetryPolicy,
    TaskFailedError,
    TaskStatus,
    TaskTimeoutError,
    VideoRequest,
)
from minimax_s2v.emulator import Durations, Emulator
from tests.client_setup import face_request, fast_client

SECRET = "sk-very-secret-key-0123456789"


def test_key_and_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """MINIMAX_API_KEY and MINIMAX_BASE_URL are used when nothing is passed."""
    monkeypatch.setenv("MINIMAX_API_KEY", SECRET)
    monkeypatch.setenv("MINIMAX_BASE_URL", "http://127.0.0.1:9999")
    client = Client()
    assert str(client.base_url) == "http://127.0.0.1:9999"
    assert SECRET not in repr(client)


def test_regions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The region picks the host; a bad region or a missing key is a clear error."""
    monkeypatch.delenv("MINIMAX_BASE_URL", raising=False)
    monkeypatch.delenv("MINIMAX_API_KEY", raising=False)
    assert Client("k").base_url.host == "api.minimax.io"
    assert Client("k", region="cn").base_url.host == "api.minimaxi.com"
    with pytest.raises(ConfigurationError, match="region"):
        Client("k", region="mars")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="MINIMAX_API_KEY"):
        Client()
    with pytest.raises(ConfigurationError, match="base_url"):
        Client("k", base_url="ftp://x")


async def test_submit_wait_and_file(emulator: Emulator) -> None:
    """Submitting gives a Task; awaiting it gives the Success snapshot; get_file its file."""
    async with fast_client(emulator) as client:
        task = await client.submit(face_request())
        assert task.task_id.isdigit()
        assert task.request == face_request()
        assert task.submitted_at is not None
        snapshot = await task
        assert snapshot.status is TaskStatus.SUCCESS
        assert snapshot.file_id is not None
        video = await client.get_file(snapshot.file_id)
        assert video.file_id == int(snapshot.file_id)
        again = await client.get_file(int(snapshot.file_id))
        assert again.download_url != video.download_url
        assert (await client.get_task(task.task_id)).status is TaskStatus.SUCCESS


async def test_updates_stream_every_phase() -> None:
    """task.updates() yields each status once, in order, and ends after the final one."""
    durations = Durations(preparing=0.15, queueing=0.15, processing=0.15)
    async with Emulator(durations=durations) as emu, fast_client(emu) as client:
        task = await client.submit(face_request())
        statuses = [s.status async for s in task.updates()]
    assert statuses[-1] is TaskStatus.SUCCESS
    assert statuses == sorted(set(statuses), key=lambda s: s.rank)
    assert TaskStatus.PROCESSING in statuses
    assert [e.snapshot.status for e in task.events] == statuses


@pytest.mark.parametrize(("late_fail_ratio", "code"), [(1.0, 1027), (0.0, 1026)])
async def test_failures_are_typed(late_fail_ratio: float, code: int) -> None:
    """A Fail (1026 early, 1027 late) raises TaskFailedError carrying a ContentPolicyError."""
    async with Emulator(late_fail_ratio=late_fail_ratio) as emu, fast_client(emu) as client:
        prompt = "hi [sensitive]" if code == 1026 else "hi"
        task = await client.submit(face_request(prompt))
        with pytest.raises(TaskFailedError) as info:
            await task.wait()
    assert isinstance(info.value.api_error, ContentPolicyError)
    assert info.value.api_error.code == code
    assert info.value.snapshot.status is TaskStatus.FAIL


async def test_region_key_mismatch(caplog: pytest.LogCaptureFixture) -> None:
    """A key of the other region fails with 2049, a region hint and a trace id; never the key."""
    caplog.set_level(logging.DEBUG, logger="minimax_s2v")
    async with (
        Emulator() as emu,  # does not accept SECRET: 2049, as for a key of the other region
        fast_client(emu, api_key=SECRET) as client,
    ):
        with pytest.raises(AuthenticationError) as info:
            await client.submit(face_request())
    error = info.value
    assert error.code == 2049
    assert error.trace_id
    assert "api.minimaxi.com" in str(error)
    assert emu.counters.requests["submit"] == {"auth_error": 1}  # not retried
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in caplog.text
    assert "trace id" in caplog.text


async def test_preflight_spends_no_call(emulator: Emulator) -> None:
    """An invalid request fails before any request reaches the API."""
    async with fast_client(emulator) as client:
        with pytest.raises(InvalidRequestError) as info:
            await client.submit(VideoRequest(subject="missing.png", prompt="x" * 2001))
    assert {p.field for p in info.value.problems} == {"prompt", "subject_reference[0].image[0]"}
    assert emulator.counters.requests == {}


async def test_unknown_task_fails_fast(emulator: Emulator) -> None:
    """Waiting on an unknown task ends with the API's error instead of polling forever."""
    async with fast_client(emulator) as client:
        with pytest.raises(InvalidRequestError, match="task not found"):
            await client.task("123456").wait(timeout=5)
    assert emulator.counters.requests["query"] == {"not_found": 1}


async def test_timeout_then_wait_again() -> None:
    """A wait can time out; the task goes on and a later wait succeeds."""
    async with Emulator(durations=Durations(processing=0.5)) as emu, fast_client(emu) as client:
        task = await client.submit(face_request())
        with pytest.raises(TaskTimeoutError) as info:
            await task.wait(timeout=0.05)
        assert info.value.task_id == task.task_id
        assert f"client.task({task.task_id!r})" in str(info.value)
        assert (await client.task(task.task_id).wait(timeout=5)).status is TaskStatus.SUCCESS


async def test_poll_errors_are_retried_not_fatal() -> None:
    """Transient errors while polling delay the result; they never fail the wait."""
    from minimax_s2v.emulator import Endpoint, EndpointFaults, FaultPlan

    faults = FaultPlan(endpoints={Endpoint.QUERY: EndpointFaults(http_5xx=0.3, server_error=0.3)})
    async with Emulator(seed=5, faults=faults) as emu, fast_client(emu) as client:
        tasks = [await client.submit(face_request()) for _ in range(10)]
        results = await asyncio.gather(*(t.wait(timeout=10) for t in tasks))
    assert {r.status for r in results} == {TaskStatus.SUCCESS}
    assert sum(emu.counters.faults["query"].values()) > 0


async def test_closed_client_fails_loudly() -> None:
    """Using a closed client raises; pending waits end with a clear error."""
    durations = Durations(processing=5)
    async with Emulator(durations=durations) as emu:
        client = fast_client(emu)
        task = await client.submit(face_request())
        waiter = asyncio.ensure_future(task.wait())
        await asyncio.sleep(0.05)
        await client.close()
        with pytest.raises(RuntimeError, match="closed while waiting"):
            await waiter
        with pytest.raises(RuntimeError, match="closed"):
            await client.submit(face_request())
        assert client.closed


async def test_given_session_is_not_closed(emulator: Emulator) -> None:
    """A session passed in stays open after the client closes."""
    async with aiohttp.ClientSession() as session:
        async with fast_client(emulator, session=session) as client:
            await client.submit(face_request())
        assert not session.closed


def test_session_of_another_loop_is_refused() -> None:
    """A session made in another event loop gives a clear error, not a hang."""
    holder: list[aiohttp.ClientSession] = []

    def make() -> None:
        async def build() -> None:
            holder.append(aiohttp.ClientSession())

        asyncio.run(build())

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()

    async def use() -> None:
        client = Client("k", base_url="http://127.0.0.1:9", session=holder[0])
        with pytest.raises(RuntimeError, match="another event loop"):
            await client.submit(face_request())

    asyncio.run(use())


async def test_get_task_retries_transient_errors() -> None:
    """A GET is retried on 5xx; with retries off the error surfaces typed."""
    from minimax_s2v import ServerError
    from minimax_s2v.emulator import Endpoint, EndpointFaults, FaultPlan

    async with Emulator(seed=2) as emu, fast_client(emu) as client:
        task = await client.submit(face_request())
        emu.configure(faults=FaultPlan(endpoints={Endpoint.QUERY: EndpointFaults(http_5xx=0.3)}))
        for _ in range(10):
            assert (await client.get_task(task.task_id)).status is TaskStatus.SUCCESS
        assert emu.counters.requests["query"]["fault_http_5xx"] > 0
        emu.configure(faults=FaultPlan(endpoints={Endpoint.QUERY: EndpointFaults(http_5xx=1.0)}))
        strict = fast_client(emu, retry=RetryPolicy.never())
        with pytest.raises(ServerError) as info:
            await strict.get_task(task.task_id)
        await strict.close()
    assert info.value.http_status in (500, 502, 503)


async def test_a_burst_of_submissions_goes_out_a_slice_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many submit() calls at once: only so many are journaled and sent, the rest wait.

    Past validation a submission costs the event loop CPU before its first send; gathered by
    the thousand, that would hold the loop for seconds in one stretch. The client's pool
    (100 connections) would let all 30 of these through at once; the gate lets 10.
    """
    from minimax_s2v import _client
    from minimax_s2v.emulator import Endpoint, EndpointFaults, FaultPlan
    from minimax_s2v.stores import SubmissionState

    monkeypatch.setattr(_client, "_SUBMITS_AT_ONCE", 10)
    slow = FaultPlan(endpoints={Endpoint.SUBMIT: EndpointFaults(slow=1.0, slow_seconds=0.3)})
    async with Emulator(faults=slow) as emu, fast_client(emu) as client:
        jobs = [asyncio.ensure_future(client.submit(face_request())) for _ in range(30)]
        async with asyncio.timeout(10):
            while len(await client.store.submissions()) < 10:
                await asyncio.sleep(0.01)
        journaled = await client.store.submissions()
        sending = [s for s in journaled if s.state is SubmissionState.SENDING]
        reached = emu.counters.requests_to("submit")
        tasks = await asyncio.gather(*jobs)
    # Answers take 0.3 s, so the first slice was still out when the journal was read.
    assert len(sending) <= 10
    assert len(journaled) < 30  # the others had not even been journaled yet
    assert reached <= 10
    assert len({task.task_id for task in tasks}) == 30
    assert emu.counters.tasks_created == 30
