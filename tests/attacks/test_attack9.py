"""Attacks on the callback receiver from outside: a hostile sender, or a broken proxy before it.

Each test speaks raw HTTP over a loopback socket to a receiver served standalone, mounted in
an aiohttp app or in an ASGI app under uvicorn, and pins a promise the receiver makes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import warnings

import pytest
from yarl import URL

from minimax_s2v import TaskStatus, UnknownStatusWarning
from minimax_s2v.emulator import Durations, Emulator
from tests.attacks.test_session_changes import (
    TASK,
    exchange,
    post,
    post_head,
    receiving,
    update,
)
from tests.client_setup import face_request
from tests.receiver_setup import MOUNTS, client_of, new_receiver, status_update
from tests.stores.flaky import FlakyStore
from tests.waiting import wait_until


@pytest.mark.parametrize("kind", MOUNTS)
@pytest.mark.parametrize("hang_up", ["half-close", "close"])
async def test_a_body_cut_short_by_a_hang_up_is_refused_in_every_host(
    kind: str, hang_up: str
) -> None:
    """A whole JSON update whose sender hangs up before its declared length is not delivered.

    The part that came parses as an update: under ASGI it was taken for the whole body and
    applied, while both aiohttp hosts refuse it as a broken upload.
    """
    async with receiving(kind) as (port, path, sink, receiver):
        body = update()
        head = post_head(path, len(body) + 50, close=False)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(0.05)  # the headers alone first: the body is read as it streams
        writer.write(body)
        await writer.drain()
        await asyncio.sleep(0.05)
        if hang_up == "half-close":
            writer.write_eof()
        else:
            writer.close()
        try:
            async with asyncio.timeout(5):
                answer = await reader.read()  # nobody may be left to answer to
        except ConnectionError:
            answer = b""
        writer.close()
        assert answer == b"" or answer.split(b" ", 2)[1] == b"400", answer[:80]
        await wait_until(
            lambda: receiver.stats().callbacks.malformed + receiver.stats().callbacks.applied > 0,
            "the cut-short body's handling",
        )
        callbacks = receiver.stats().callbacks
        assert (callbacks.applied, callbacks.malformed) == (0, 1)
        assert sink.got == []


async def test_malformed_http_costs_the_standalone_log_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Requests aiohttp cannot parse get 400 from serve(), and no ERROR or traceback each.

    No callback URL is needed to send them: aiohttp logged each one as "Error handling
    request" at ERROR with its traceback, so anyone reaching the port could fill the log.
    """
    caplog.set_level(logging.DEBUG)
    async with receiving("serve") as (port, path, sink, _):
        body = update()
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        malformed = [
            f"Content-Length: {len(body)}\r\nContent-Length: {len(body) + 1}\r\n",
            f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n",
            f"Content-Length: -{len(body)}\r\n",
            f"Content-Length: {len(body)}\r\nBad Header: x\r\n",
            f"Content-Length: {len(body)}\r\nX: {'a' * 9000}\r\n",
            f"Content-Length: {len(body)}\r\n" + "".join(f"X{i}: a\r\n" for i in range(300)),
        ]
        for extra in malformed * 3:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write((head + extra + "\r\n").encode() + body)
            await writer.drain()
            async with asyncio.timeout(10):
                answer = await reader.read()
            writer.close()
            assert answer.split(b" ", 2)[1] == b"400", answer[:80]
        assert sink.got == []
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert logged == [], [r.getMessage() for r in logged]


@pytest.mark.parametrize("shape", ["v1", "v2"])
async def test_unknown_statuses_in_callbacks_cost_no_warning_each(shape: str) -> None:
    """Callbacks naming 200 different made-up statuses raise no UnknownStatusWarning.

    Anyone holding a callback URL can name any status: a warning naming each one printed a
    line per callback and grew the warnings registry by one entry each, without bound. The
    callback is answered as before (a hint that changes nothing), its text kept.
    """
    async with receiving("serve") as (port, path, sink, _):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")  # a service's warnings: each text shown once
            for number in range(200):
                status = f"Paused{number}"
                body = (
                    update(status)
                    if shape == "v1"
                    else json.dumps({"task": {"id": TASK, "status": status}}).encode()
                )
                assert await exchange(port, post(path, body)) == [200]
        assert [str(w.message) for w in caught if w.category is UnknownStatusWarning] == []
        assert [s.status for s in sink.got] == [TaskStatus.UNKNOWN] * 200
        assert sink.got[-1].status_text == "Paused199"
        assert sink.got[-1].task_id == TASK
    with pytest.warns(UnknownStatusWarning, match="Paused"):
        TaskStatus.parse("Paused")  # what the API's own answers name is still warned about


async def test_updates_a_failing_store_cannot_record_are_logged_a_few_times(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Thirty updates on a task's URL while its store fails: thirty 503s, a warning or two.

    The URL's holder can repeat them at will while the journal is down: each one logged a
    WARNING of its own.
    """
    store = FlakyStore()
    receiver = new_receiver()
    async with Emulator(durations=Durations(preparing=30.0)) as emu:
        async with receiver.serve("127.0.0.1", 0), client_of(emu, receiver, store=store) as client:
            task = await client.submit(face_request())
            url = URL(emu.task(task.task_id).callback_url or "")
            store.failures["save_event"] = 10**6
            caplog.set_level(logging.DEBUG, logger="minimax_s2v")
            caplog.clear()
            body = json.dumps(status_update(task.task_id, "Processing")).encode()
            for _ in range(30):
                assert await exchange(url.port or 0, post(url.path, body)) == [503]
            assert task.events == []
    unrecorded = [r for r in caplog.records if "was not recorded" in r.getMessage()]
    assert len(unrecorded) == 30  # each one is still logged, at DEBUG after the first
    assert len([r for r in unrecorded if r.levelno >= logging.WARNING]) <= 2


@pytest.mark.parametrize("kind", MOUNTS)
async def test_a_method_spelled_in_lowercase_is_not_post(kind: str) -> None:
    """``post`` or ``Post`` is no POST (methods are case-sensitive): refused, nothing delivered.

    aiohttp refuses such a request line itself; under ASGI, h11 hands the method on as it
    came and the receiver took ``post`` for ``POST``.
    """
    async with receiving(kind) as (port, path, sink, _):
        for method in (b"post", b"Post", b"pOST"):
            request = post(path, update()).replace(b"POST", method, 1)
            got = await exchange(port, request)
            assert got in ([400], [405]), (method, got)
        assert sink.got == []
        assert await exchange(port, post(path, update())) == [200]
        assert len(sink.got) == 1
