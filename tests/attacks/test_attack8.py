"""Attacks from outside: what a caller's own code or a hostile API can put in the way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from minimax_s2v import (
    AnyRequest,
    Client,
    H3Request,
    InvalidRequestError,
    MiniMaxError,
    RetryPolicy,
    SubmissionUncertainError,
    TaskFailedError,
    TaskSnapshot,
    TaskStatus,
)
from minimax_s2v.emulator import Emulator
from tests.attacks.test_attack5 import api_server, losing_create, recovered
from tests.client_setup import TEST_RETRY, face_request, fast_client
from tests.receiver_setup import new_receiver, status_update
from tests.test_secrets import links


class InstrumentationBugError(Exception):
    """What a caller's tracing hook raises: nothing the library knows."""


def tracing(
    *,
    on_start: Callable[[aiohttp.ClientSession, object, aiohttp.TraceRequestStartParams], Any]
    | None = None,
    on_end: Callable[[aiohttp.ClientSession, object, aiohttp.TraceRequestEndParams], Any]
    | None = None,
) -> aiohttp.TraceConfig:
    """An aiohttp trace config with the given hooks (a caller's instrumentation)."""
    config = aiohttp.TraceConfig()
    if on_start is not None:
        config.on_request_start.append(on_start)
    if on_end is not None:
        config.on_request_end.append(on_end)
    return config


def failing_after(path: str) -> aiohttp.TraceConfig:
    """An aiohttp trace config whose hook raises once a request to ``path`` was answered."""

    async def on_end(
        _: aiohttp.ClientSession, __: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.url.path == path:
            raise InstrumentationBugError("the metrics backend is down")

    return tracing(on_end=on_end)


async def test_an_unexpected_error_after_the_create_call_leaves_the_submission_uncertain() -> None:
    """An error the library does not know, raised once the create call went out, is uncertain.

    Here a tracing hook of the caller's own fails after MiniMax answered: the task exists
    and is paid for. It must not be lost as a raw exception with the journal still saying
    "sending", nor sent again: the submission is uncertain, kept so that resume() and
    recover() can still find it, with the hook's error as its cause.
    """
    async with Emulator() as emu:
        trace = failing_after("/v1/video_generation")
        async with fast_client(emu, trace_configs=[trace]) as client:
            with pytest.raises(SubmissionUncertainError) as lost:
                await client.submit(face_request())
            assert isinstance(lost.value.__cause__, InstrumentationBugError)
            uncertain = await client.store.uncertain()
            assert [submission.nonce for submission in uncertain] == [lost.value.nonce]
        assert emu.state()["tasks_created"] == 1  # sent once, never again


async def test_an_unexpected_error_as_the_create_call_starts_is_uncertain_too() -> None:
    """The same hook failing as the request starts: inside aiohttp, whether it left is unknown.

    Uncertain rather than raised as it came: it is never sent again (one task at most), and
    its journal entry stays for resume() to ask about.
    """

    async def on_start(
        _: aiohttp.ClientSession, __: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        if params.url.path == "/v1/video_generation":
            raise InstrumentationBugError("the tracer refused the span")

    config = tracing(on_start=on_start)
    async with Emulator() as emu:
        async with fast_client(emu, trace_configs=[config]) as client:
            with pytest.raises(SubmissionUncertainError) as lost:
                await client.submit(face_request())
            assert isinstance(lost.value.__cause__, InstrumentationBugError)
            assert "InstrumentationBugError: the tracer refused the span" in str(lost.value)
        assert emu.state()["tasks_created"] == 0  # it never left, and was not sent again


async def test_an_unexpected_error_holding_the_key_leaves_no_trace_of_it() -> None:
    """A hook's error that quotes the request's headers never carries the key onwards."""

    async def on_end(
        _: aiohttp.ClientSession, __: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        raise InstrumentationBugError(f"could not export {dict(params.headers)}")

    config = tracing(on_end=on_end)
    async with Emulator() as emu:
        async with fast_client(emu, trace_configs=[config]) as client:
            with pytest.raises(SubmissionUncertainError) as lost:
                await client.submit(face_request())
    chain = links(lost.value)
    assert len(chain) >= 2  # the uncertainty, and what stands for the hook's error
    for error in chain:
        assert emu.api_key not in str(error)
        assert emu.api_key not in repr(error.args)


ESCAPES = "\x1b[2J\x1b]0;owned\x07\u202e"  # clear the screen, retitle it, reverse the text


def shows_no_control(text: str) -> bool:
    return all(character.isprintable() for character in text)


@pytest.mark.parametrize("dialect", ["v1", "v2"])
async def test_what_a_hostile_api_says_reaches_messages_and_logs_as_printable_text(
    dialect: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An API (or a proxy) answering with escape sequences cannot write them into a log.

    Its message and its V2 request id reach error messages and the library's log lines:
    each is kept printable there (control characters escaped), and a trace id (a 5,000
    character Trace-Id header here) is cut to a length support can use.
    """
    # aiohttp refuses control characters in a header: a long one gets through.
    trace = "t" * 5000

    async def create(_: web.Request) -> web.Response:
        if dialect == "v1":
            body: dict[str, object] = {
                "task_id": "",
                "base_resp": {"status_code": 2013, "status_msg": f"bad{ESCAPES}\nINFO forged"},
            }
            return web.json_response(body, headers={"Trace-Id": trace})
        body = {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": f"bad{ESCAPES} (2013)"},
            "request_id": "r" + ESCAPES,
        }
        return web.json_response(body, status=400)

    app = web.Application()
    app.router.add_post("/v1/video_generation", create)
    app.router.add_post("/v2/video_generation", create)
    request: AnyRequest = face_request()
    if dialect == "v2":
        request = H3Request("A girl winks.", references=["https://example.com/face.jpg"])
    caplog.set_level(logging.DEBUG, logger="minimax_s2v")
    async with api_server(app) as base_url:
        async with Client("key-" + "k" * 20, base_url=base_url, retry=TEST_RETRY) as client:
            with pytest.raises(InvalidRequestError) as refused:
                await client.submit(request)
    error = refused.value
    assert shows_no_control(str(error)), repr(str(error))
    assert error.trace_id is not None
    assert shows_no_control(error.trace_id)
    assert len(error.trace_id) <= 200
    if dialect == "v2":
        assert error.request_id is not None
        assert shows_no_control(error.request_id)
    for record in caplog.records:
        assert shows_no_control(record.getMessage()), record.getMessage()


async def _post_raw(host: str, port: int, path: str, headers: bytes, body: bytes) -> bytes:
    """One request written as bytes, its answer read to the end (the server closes)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            b"POST "
            + path.encode()
            + b" HTTP/1.1\r\nHost: x\r\n"
            + headers
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


@pytest.mark.parametrize("mount", ["serve", "setup"])
@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
async def test_a_body_that_does_not_decode_is_refused_without_a_logged_traceback(
    mount: str, encoding: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback whose Content-Encoding lies gets 400, and the log no traceback for it.

    Anyone can send it to a callback URL they hold, as often as they like: aiohttp logged
    each as an "Unhandled exception" with its traceback, at ERROR.
    """
    caplog.set_level(logging.DEBUG)
    receiver = new_receiver()
    nonce = "forgednonce1"
    headers = b"Content-Type: application/json\r\nContent-Encoding: " + encoding + b"\r\n"
    if mount == "serve":
        async with receiver.serve("127.0.0.1", 0) as url:
            path = receiver.callback_url(nonce).path
            answer = await _post_raw(url.host or "", url.port or 0, path, headers, b"not it")
    else:
        app = receiver.setup(web.Application(), "/minimax")
        async with api_server(app) as base_url:
            receiver.public_url = URL(base_url) / "minimax"
            path = receiver.callback_url(nonce).path
            parsed = URL(base_url)
            answer = await _post_raw(parsed.host or "", parsed.port or 0, path, headers, b"not it")
    assert answer.split(b" ", 2)[1] == b"400", answer[:80]  # aiohttp's own 400 or the receiver's
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert logged == [], [r.getMessage() for r in logged]


async def test_one_answer_about_another_task_is_asked_again_not_taken_as_the_end() -> None:
    """A cache on the way that once answers with another task's status costs one more query.

    The answer is refused (never taken for the task asked about), and asked again: the
    next, right answer is the one the caller gets, and a wait goes on to the real end.
    """
    answers: list[str] = []

    async def query(request: web.Request) -> web.Response:
        asked = request.query["task_id"]
        named = "2222" if len(answers) % 2 == 0 else asked  # every other answer is wrong
        answers.append(named)
        status = "Processing" if len(answers) < 4 else "Fail"
        body = {"task_id": named, "status": status, "file_id": "", "base_resp": {"status_code": 0}}
        if status == "Fail":
            body["base_resp"] = {"status_code": 1026, "status_msg": "sensitive content"}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v1/query/video_generation", query)
    async with api_server(app) as base_url:
        async with Client("key-" + "k" * 20, base_url=base_url, retry=TEST_RETRY) as client:
            snapshot = await client.get_task("1111")
            assert snapshot.task_id == "1111"
            assert answers == ["2222", "1111"]
            with pytest.raises(TaskFailedError):
                await client.task("1111").wait(timeout=10)
    assert answers == ["2222", "1111", "2222", "1111"]


KEY = "sk-review-0123456789abcdef-SECRET"


async def test_a_secret_cut_in_half_by_a_length_limit_is_still_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Text is scrubbed of the key before it is cut short, so no prefix of the key survives.

    A hostile host puts the key just before a trace id's limit, and a tracing hook's error
    quotes the request's headers just before a description's limit.
    """

    async def create(_: web.Request) -> web.Response:
        return web.json_response(
            {"task_id": "", "base_resp": {"status_code": 1000, "status_msg": "busy"}},
            headers={"Trace-Id": "t" * 116 + KEY},
        )

    async def on_end(
        _: aiohttp.ClientSession, __: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.url.path == "/v2/video_generation":
            raise InstrumentationBugError("x" * 250 + str(dict(params.headers)))

    async def created(_: web.Request) -> web.Response:
        return web.json_response({"task_id": "3333"})

    config = tracing(on_end=on_end)
    app = web.Application()
    app.router.add_post("/v1/video_generation", create)
    app.router.add_post("/v2/video_generation", created)
    caplog.set_level(logging.DEBUG, logger="minimax_s2v")
    retry = RetryPolicy.never()
    async with api_server(app) as base_url:
        async with Client(KEY, base_url=base_url, retry=retry, trace_configs=[config]) as client:
            with pytest.raises(MiniMaxError) as busy:
                await client.submit(face_request())
            with pytest.raises(SubmissionUncertainError) as lost:
                await client.submit(
                    H3Request("A girl winks.", references=["https://example.com/face.jpg"])
                )
    prefix = KEY[:10]
    for error in (busy.value, lost.value):
        for link in links(error):
            assert prefix not in str(link), str(link)
            assert prefix not in repr(vars(link))
    for record in caplog.records:
        assert prefix not in record.getMessage()


async def test_server_text_keeps_other_scripts_and_never_its_controls() -> None:
    """A Chinese message keeps its ideographic space; a task id or failure reason its escapes.

    A create refusal naming a "task id" that is a terminal escape, and a V2 failure with a
    message and no code, reach messages printable; MiniMax's own Chinese text is unchanged.
    """
    chinese = "任务失败\u3000请重试"
    replies = [
        {"task_id": "", "base_resp": {"status_code": 2013, "status_msg": chinese}},
        {"task_id": "\x1b]0;owned\x07\n[ERROR] forged", "base_resp": {"status_code": 1013}},
    ]

    async def create(_: web.Request) -> web.Response:
        return web.json_response(replies.pop(0))

    app = web.Application()
    app.router.add_post("/v1/video_generation", create)
    async with api_server(app) as base_url:
        async with Client(KEY, base_url=base_url, retry=RetryPolicy.never()) as client:
            with pytest.raises(InvalidRequestError) as refused:
                await client.submit(face_request())
            with pytest.raises(SubmissionUncertainError) as lost:
                await client.submit(face_request())
    assert refused.value.message == chinese
    assert shows_no_control(str(lost.value)), str(lost.value)
    failed = TaskFailedError(
        TaskSnapshot("1", TaskStatus.FAIL, error_message="bad\x1b[2J\nFAKE LOG LINE")
    )
    assert shows_no_control(str(failed)), str(failed)


async def test_a_forged_claim_disproved_last_does_not_lock_the_real_task_out() -> None:
    """The real task's claim is adopted even when a forged claim's check ends after it.

    The answer is lost; a forger's callback claims task 111 first, then MiniMax's names
    999. The API is slow to say 111 does not exist and quick to show 999: the adoption
    must not wait on whichever check happened to end last.
    """
    urls: list[str] = []
    release = asyncio.Event()

    async def query(request: web.Request) -> web.Response:
        asked = request.query["task_id"]
        if asked == "111":
            await release.wait()  # answered once 999's check is over
            body: dict[str, object] = {"base_resp": {"status_code": 2013, "status_msg": "no"}}
            return web.json_response(body)
        release.set()
        body = {"task_id": asked, "status": "Processing", "base_resp": {"status_code": 0}}
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/v1/video_generation", losing_create(urls))
    app.router.add_get("/v1/query/video_generation", query)
    receiver = new_receiver()
    async with api_server(app) as base_url, receiver.serve("127.0.0.1", 0):
        client = Client(KEY, base_url=base_url, receiver=receiver, retry=TEST_RETRY)
        async with client, aiohttp.ClientSession() as http:
            with pytest.raises(SubmissionUncertainError) as lost:
                await client.submit(face_request())
            for task_id in ("111", "999"):
                async with http.post(urls[0], json=status_update(task_id, "processing")) as r:
                    assert r.status == 200
            task = await recovered(client, lost.value)
            assert task.task_id == "999"
