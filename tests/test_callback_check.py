"""The callback URL checked during the create call: a typed error, nothing created, every mount."""

from __future__ import annotations

import asyncio
import pickle
import time

import pytest

from minimax_s2v import (
    CallbackUnreachableError,
    InvalidRequestError,
    TaskStatus,
    VideoRequest,
)
from minimax_s2v.emulator import Durations, Emulator
from tests.client_setup import face_request, fast_client
from tests.processes import free_port, python_process
from tests.receiver_setup import MOUNTS, client_of, mounted, new_receiver

CONCURRENT = 200


async def test_closed_port_gets_a_typed_error_and_creates_nothing() -> None:
    """A receiver nobody serves: CallbackUnreachableError, 0 tasks, one submit request only."""
    receiver = new_receiver(free_port(), path="/hooks/minimax")
    async with Emulator() as emu:
        async with fast_client(emu, receiver=receiver) as client:
            with pytest.raises(CallbackUnreachableError) as info:
                await client.submit(face_request())
            journaled = await client.store.uncertain(), await client.store.unfinished()
        assert emu.counters.tasks_created == 0
        assert emu.counters.requests_to("submit") == 1  # not retried
        (challenge,) = emu.deliveries
    error = info.value
    assert isinstance(error, InvalidRequestError)
    assert not error.retryable
    assert error.code == 2013
    assert error.public_url == str(receiver.public_url)
    text = str(error)
    assert str(receiver.public_url) in text
    nonce, token = challenge.url.rsplit("/", 2)[-2:]
    assert nonce not in text
    assert token not in text
    for advice in ("reachable from the internet", "TLS", "mount path", "3 s", "self_check()"):
        assert advice in text
    assert "minimax-s2v serve --check" in text
    assert journaled == ([], [])  # the journal entry was dropped: nothing was created
    await receiver.close()


async def test_own_callback_url_is_named_by_its_origin_only() -> None:
    """A callback URL given in the request may hold a secret path: the error shows the origin."""
    port = free_port()
    request = VideoRequest(
        subject="https://example.com/face.jpg",
        callback_url=f"http://127.0.0.1:{port}/hooks/s3cr3t-token",
    )
    async with Emulator() as emu, fast_client(emu) as client:
        with pytest.raises(CallbackUnreachableError) as info:
            await client.submit(request)
        assert emu.counters.tasks_created == 0
    assert info.value.public_url == f"http://127.0.0.1:{port}"
    assert "s3cr3t-token" not in str(info.value)
    assert "s3cr3t-token" not in repr(info.value)


def test_error_survives_pickling() -> None:
    """The error keeps its public URL across processes (e.g. from a worker pool)."""
    error = CallbackUnreachableError(
        "invalid params, fail to check callback url", code=2013, trace_id="t1", http_status=200
    ).naming("https://example.com/hooks")
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert type(again) is CallbackUnreachableError
    assert (again.public_url, again.trace_id, str(again)) == (error.public_url, "t1", str(error))


async def test_docs_fastapi_sample_answers_before_the_create_call() -> None:
    """The documentation's FastAPI receiver under uvicorn: challenged mid-call, then updated."""
    port = free_port()
    args = ["-m", "uvicorn", "tests.docs_sample_receiver:app", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--log-level", "warning"]
    request = VideoRequest(
        subject="https://example.com/face.jpg",
        callback_url=f"http://127.0.0.1:{port}/get_callback",
    )
    with python_process(args, port):
        async with Emulator(durations=Durations(processing=0.2)) as emu:
            async with fast_client(emu) as client:
                task = await client.submit(request)
                answered_at = time.time()
                await task.wait(timeout=10)
            await emu.callbacks.drain(10)
            deliveries = [d for d in emu.deliveries if d.task_id == task.task_id]
    challenge = deliveries[0]
    assert challenge.kind == "challenge"
    assert challenge.error is None
    assert challenge.latency is not None
    assert challenge.sent_at + challenge.latency <= answered_at  # echoed before the answer
    assert [(d.kind, d.status, d.http_status) for d in deliveries[1:]] == [
        ("status", "processing", 200),
        ("status", "success", 200),
    ]
    assert emu.counters.callbacks["challenges_sent"] == 1


@pytest.mark.parametrize("kind", MOUNTS)
async def test_own_receiver_passes_the_check_in_every_mount(kind: str) -> None:
    """200 concurrent submissions, each challenged during its create call, all created."""
    receiver = new_receiver()
    async with Emulator(durations=Durations(processing=0.1)) as emu, mounted(kind, receiver):
        async with client_of(emu, receiver) as client:
            submits = (client.submit(face_request()) for _ in range(CONCURRENT))
            tasks = await asyncio.gather(*submits)
            results = await asyncio.gather(*(t.wait(timeout=60) for t in tasks))
        counters = emu.counters
    assert {r.status for r in results} == {TaskStatus.SUCCESS}
    assert counters.tasks_created == CONCURRENT
    assert counters.callbacks["challenges_passed"] == CONCURRENT
    assert counters.callbacks["challenges_failed"] == 0
    assert receiver.stats().challenges.count == CONCURRENT
