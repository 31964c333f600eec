"""Attacks from outside: callbacks on an ended task's URL to replicas; a host that drips."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from yarl import URL

from minimax_s2v import (
    Client,
    ConfigurationError,
    RetryPolicy,
    TaskStatus,
    Timeouts,
    TransportError,
    VideoFile,
)
from minimax_s2v.emulator import Durations, Emulator
from minimax_s2v.receiver import CallbackReceiver
from minimax_s2v.stores import MemoryStore, StoredSubmission, StoredTask, SubmissionState
from minimax_s2v.stores.redis import RedisStore
from tests.attacks.test_session_changes import exchange, receiving
from tests.client_setup import face_request
from tests.media import mp4
from tests.receiver_setup import new_receiver, served_client, status_update
from tests.test_download_hostile import video_at

QUICK = Durations(preparing=0.05, queueing=0.05, processing=0.1)


@pytest.mark.parametrize("status", ["Success", "Processing", "Fail"])
async def test_callbacks_on_an_ended_tasks_url_do_not_grow_the_shared_journal(
    redis_url: str, status: str
) -> None:
    """Trust rule 4: anything after the end is acknowledged without a write.

    A replica that does not hold the nonce (another process, or this one after a restart)
    reads the submission from the shared journal; it used to journal every update on the
    URL for the other replicas, so that the holder of an ended task's URL could write to the
    journal at will and push other tasks' events out of its bounded replay.
    """
    prefix = f"ended-{status.lower()}:"
    raw = aioredis.Redis.from_url(redis_url)
    try:
        async with Emulator(durations=QUICK) as emu:
            async with served_client(emu, store=RedisStore(redis_url, prefix=prefix)) as (
                client,
                _,
            ):
                task = await client.submit(face_request())
                await task.wait(timeout=20)
                assert task.status is TaskStatus.SUCCESS
                callback_url = emu.task(task.task_id).callback_url
                assert callback_url is not None
                callback_path = URL(callback_url).path
            before = await raw.xlen(f"{prefix}events")
            assert before > 0  # the real task's updates were journaled
            async with served_client(
                emu, new_receiver(), store=RedisStore(redis_url, prefix=prefix)
            ) as (_, replica):
                assert replica.public_url is not None
                url = str(replica.public_url.with_path(callback_path))
                async with aiohttp.ClientSession() as session:
                    for _ in range(30):
                        update = status_update(task.task_id, status, "1")
                        async with session.post(url, json=update) as response:
                            assert response.status == 200  # acknowledged: nothing to retry
                callbacks = replica.stats().callbacks
            assert await raw.xlen(f"{prefix}events") == before
            assert callbacks.applied == 0
            assert callbacks.duplicate == 30
    finally:
        await raw.aclose()


# -- a download host that drips --------------------------------------------------------------


def dripping(body: bytes, *, drips: int) -> tuple[web.AppRunner, list[str | None]]:
    """A host that sends ``body`` a byte every 20 ms to its first ``drips`` requests.

    Each of those requests never stalls long enough for a read timeout, and would take
    hours to finish; the later ones get what is left at once (a resumed Range honoured).
    Returns the runner (not yet set up) and the Range header of each request.
    """
    ranges: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        ranges.append(request.headers.get("Range"))
        start = int(ranges[-1].removeprefix("bytes=").rstrip("-")) if ranges[-1] else 0
        headers = {"ETag": '"v"', "Content-Type": "video/mp4"}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        response = web.StreamResponse(status=206 if start else 200, headers=headers)
        response.content_length = len(body) - start
        await response.prepare(request)
        if len(ranges) > drips:
            await response.write(body[start:])
            return response
        await response.write(body[start : start + 4096])  # the head, so the start checks
        for offset in range(start + 4096, len(body)):
            await response.write(body[offset : offset + 1])
            await asyncio.sleep(0.02)
        return response

    app = web.Application()
    app.router.add_get("/v.mp4", handler)
    return web.AppRunner(app, access_log=None), ranges


@contextlib.asynccontextmanager
async def drip_host(
    body: bytes, *, drips: int
) -> AsyncIterator[tuple[VideoFile, list[str | None]]]:
    """:func:`dripping` served on loopback, and a video whose URL is there."""
    runner, ranges = dripping(body, drips=drips)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        port = runner.addresses[0][1]
        yield video_at(URL(f"http://127.0.0.1:{port}/v.mp4"), len(body)), ranges
    finally:
        await runner.cleanup()


def drip_client(**timeouts: Any) -> Client:
    """A client with a read timeout of 0.5 s and three attempts, retried almost at once."""
    return Client(
        "sk-drip-download-key-0123456789",
        base_url="http://127.0.0.1:9",
        retry=RetryPolicy(attempts=3, wait_initial=0.01, wait_max=0.05),
        timeouts=Timeouts(read=0.5, **timeouts),
    )


async def test_a_download_that_drips_is_resumed_not_waited_on_forever(tmp_path: Path) -> None:
    """A host sending a byte at a time, never stalling for a read timeout, is given up on.

    After a read timeout's window below the slowest rate allowed, the download resumes where
    it stood (a Range), as after a broken connection.
    """
    body = mp4(60_000, fill=3)
    async with drip_host(body, drips=1) as (video, ranges), drip_client() as client:
        async with asyncio.timeout(15):  # at a byte per 20 ms the drip alone takes 20 min
            path = await client.download(video, tmp_path / "v.mp4")
    assert path.read_bytes() == body
    assert len(ranges) == 2
    assert ranges[0] is None
    assert ranges[1] is not None
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) >= 4096
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


async def test_a_download_that_always_drips_ends_in_a_typed_error(tmp_path: Path) -> None:
    """Each attempt is given up on in turn; then the download fails, no part file left."""
    body = mp4(60_000, fill=4)
    async with drip_host(body, drips=99) as (video, ranges), drip_client() as client:
        async with asyncio.timeout(15):
            with pytest.raises(TransportError, match="slower than 1024 bytes/s"):
                await client.download(video, tmp_path / "v.mp4")
    assert len(ranges) == 3  # the retry policy's attempts, each resumed
    assert list(tmp_path.iterdir()) == []


async def test_the_slowest_download_rate_can_be_lowered_or_turned_off(tmp_path: Path) -> None:
    """``Timeouts(download_min_rate=)`` is checked when made; a lower rate lets a drip go on."""
    with pytest.raises(ConfigurationError, match="download_min_rate"):
        Timeouts(download_min_rate=-1)
    assert Timeouts(download_min_rate=None).download_min_rate is None
    body = mp4(8_000, fill=5)  # 3,904 bytes dripped: about 80 s at a byte per 20 ms
    async with drip_host(body, drips=1) as (video, ranges):
        client = drip_client(download_min_rate=10)  # 10 bytes/s: the drip's 50 pass
        async with client:
            task = asyncio.create_task(client.download(video, tmp_path / "v.mp4"))
            await asyncio.sleep(2)
            assert not task.done()  # still dripping: not given up on
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert len(ranges) == 1


def test_an_infinite_slowest_download_rate_is_refused_when_made() -> None:
    """``download_min_rate=inf`` would fail every download that lasts a read timeout."""
    with pytest.raises(ConfigurationError, match="download_min_rate"):
        Timeouts(download_min_rate=float("inf"))


# -- what a refused request leaves in the log -------------------------------------------------


@pytest.mark.parametrize("request_line", ["POST {path} HTTP/1.1x", "POST {path}\x01 HTTP/1.1"])
async def test_a_request_refused_as_not_http_leaves_no_token_in_the_log(
    request_line: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The standalone server logs a request it cannot parse at debug: never its bytes.

    The parser's error quotes the request line, and with it the callback URL's token.
    """
    caplog.set_level(logging.DEBUG, logger="minimax_s2v")
    async with receiving("serve") as (port, path, _, _):
        token = path.rsplit("/", 1)[1]
        raw = request_line.format(path=path) + "\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        answer = await exchange(port, raw.encode())
    assert answer in ([400], [])  # refused (or the connection closed): never delivered
    assert any("not valid HTTP" in record.getMessage() for record in caplog.records)
    assert all(token not in record.getMessage() for record in caplog.records)
    assert token not in caplog.text  # the formatted lines, tracebacks included


# -- a callback racing close() on a replica ----------------------------------------------------


class GatedSharedStore(MemoryStore):
    """A memory store that calls itself shared, whose ``task()`` waits at a gate."""

    shared = True

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()
        self.gate = asyncio.Event()
        self.events_saved = 0

    async def subscribe(self, on_update: Any) -> None:
        """No other replica publishes here."""

    async def task(self, task_id: str) -> StoredTask | None:
        self.asked.set()
        await self.gate.wait()
        return await super().task(task_id)

    async def save_event(self, *args: Any, **options: Any) -> None:
        self.events_saved += 1
        await super().save_event(*args, **options)


async def test_a_callback_on_a_replica_racing_close_is_not_acknowledged() -> None:
    """Trust rule 4: after ``close()``, 503 and nothing written.

    So also for a callback whose journal check was under way when the client closed.
    """
    store = GatedSharedStore()
    receiver = CallbackReceiver("http://127.0.0.1:1/cb", secret="s" * 32)
    client = Client(
        "sk-race-key-0123456789", base_url="http://127.0.0.1:9", receiver=receiver, store=store
    )
    await client.__aenter__()
    nonce, task_id = "replicanonce0001", "176844028768399"
    submitted = StoredSubmission(
        nonce, "fingerprint", {}, None, SubmissionState.SENDING, datetime.now(UTC)
    )
    await store.save_submission(submitted)
    await store.mark_submitted(nonce, task_id)  # another replica's submission
    path = receiver.callback_url(nonce).path.removeprefix("/cb/")
    body = json.dumps(status_update(task_id, "Processing")).encode()
    answer = asyncio.create_task(receiver.process("POST", path, body))
    await store.asked.wait()  # the journal check is under way
    closing = asyncio.create_task(client.close())
    await asyncio.sleep(0.05)
    store.gate.set()
    status, _ = await answer
    await closing
    assert status == 503
    assert store.events_saved == 0
