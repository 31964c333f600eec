"""Never pay twice: a submission is retried only when it certainly created nothing."""

from __future__ import annotations

import asyncio

import pytest

from minimax_s2v import (
    Client,
    ConnectError,
    InvalidRequestError,
    RateLimitError,
    RetryPolicy,
    SubmissionUncertainError,
    set_testing,
)
from minimax_s2v.emulator import Emulator, Endpoint, EndpointFaults, FaultPlan
from tests.client_setup import face_request, fast_client
from tests.processes import free_port


def submit_faults(**probabilities: float) -> FaultPlan:
    return FaultPlan(endpoints={Endpoint.SUBMIT: EndpointFaults(**probabilities)})


@pytest.mark.parametrize(
    ("fault", "created"),
    [("lost_response", 1), ("drop", 0), ("http_5xx", 0), ("non_json", 0)],
)
async def test_ambiguous_failures_are_not_retried(fault: str, created: int) -> None:
    """A lost answer, a drop, a 5xx or an HTML page: one attempt, SubmissionUncertainError."""
    async with Emulator(faults=submit_faults(**{fault: 1.0})) as emu, fast_client(emu) as client:
        with pytest.raises(SubmissionUncertainError) as info:
            await client.submit(face_request())
    assert emu.counters.requests_to("submit") == 1
    assert emu.counters.tasks_created == created
    assert info.value.nonce
    assert len(info.value.fingerprint) == 32
    assert info.value.__cause__ is not None


async def test_timeout_is_uncertain() -> None:
    """A submit answered after the client's timeout is uncertain, not retried."""
    from minimax_s2v import Timeouts

    faults = FaultPlan(endpoints={Endpoint.SUBMIT: EndpointFaults(slow=1.0, slow_seconds=1.0)})
    async with Emulator(faults=faults) as emu:
        client = fast_client(emu, timeouts=Timeouts(connect=1, read=0.3, request=0.3))
        async with client:
            with pytest.raises(SubmissionUncertainError, match="no complete answer"):
                await client.submit(face_request())
    assert emu.counters.faults["submit"] == {"slow": 1}  # one attempt reached the API


async def test_rate_limit_and_in_band_errors_are_retried() -> None:
    """1002 and in-band 1000/1001/1013 say nothing was created: retried until it works."""
    faults = submit_faults(rate_limit=0.3, server_error=0.3)
    async with Emulator(seed=8, faults=faults) as emu, fast_client(emu) as client:
        tasks = [await client.submit(face_request()) for _ in range(20)]
    assert len({t.task_id for t in tasks}) == 20
    assert emu.counters.tasks_created == 20
    assert emu.counters.requests_to("submit") > 20  # some attempts were retried


async def test_persistent_rate_limit_surfaces() -> None:
    """After the policy's attempts a RateLimitError is raised unwrapped."""
    async with Emulator(faults=submit_faults(rate_limit=1.0)) as emu:
        client = fast_client(emu, retry=RetryPolicy(attempts=3))
        async with client:
            with pytest.raises(RateLimitError):
                await client.submit(face_request())
    assert emu.counters.requests_to("submit") == 3
    assert emu.counters.tasks_created == 0


async def test_disallowed_data_url_is_final() -> None:
    """1000 "disallowed image url" (data URLs refused) is not retried, with a hint."""
    import base64
    import io

    from PIL import Image

    from minimax_s2v import VideoRequest

    buffer = io.BytesIO()
    Image.new("RGB", (400, 400)).save(buffer, "PNG")
    image = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    async with Emulator(data_urls="reject") as emu, fast_client(emu) as client:
        with pytest.raises(InvalidRequestError, match="public http") as info:
            await client.submit(VideoRequest(subject=image))
    assert info.value.code == 1000
    assert emu.counters.requests["submit"] == {"rejected": 1}
    assert emu.counters.tasks_created == 0


async def test_connection_refused_is_retried_then_raised() -> None:
    """Nobody listening: certainly not sent, retried, then ConnectError."""
    client = Client(
        "k",
        base_url=f"http://127.0.0.1:{free_port()}",
        retry=RetryPolicy(attempts=3),
    )
    async with client:
        with pytest.raises(ConnectError):
            await client.submit(face_request())


async def test_cancelled_while_waiting_to_retry_a_1002_leaves_no_uncertain_entry() -> None:
    """A 1002 created nothing: cancelled before its retry, the journal forgets it."""
    with set_testing(False):  # the retry must really wait, to be cancelled meanwhile
        await _cancel_while_waiting_to_retry()


async def _cancel_while_waiting_to_retry() -> None:
    async with Emulator(rate_limits={"submit": 1}) as emu:
        client = Client(
            emu.api_key,
            base_url=emu.url,
            retry=RetryPolicy(wait_initial=30.0, wait_jitter=0.0),
        )
        async with client:
            await client.submit(face_request())  # uses the minute's one submission
            second = asyncio.create_task(client.submit(face_request("second")))
            async with asyncio.timeout(10):
                while emu.counters.requests_to("submit") < 2:  # the 1002 came back
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # now waiting 30 s to retry
            second.cancel()
            with pytest.raises(asyncio.CancelledError):
                await second
            assert await client.store.uncertain() == []
            assert len(await client.store.submissions()) == 1
    assert emu.counters.tasks_created == 1
