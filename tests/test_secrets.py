"""No secret in any exception chain, repr or log: every error kind against a hostile API."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from minimax_s2v import (
    APIError,
    AuthenticationError,
    Client,
    ConfigurationError,
    ConnectError,
    DownloadError,
    InvalidRequestError,
    MiniMaxError,
    RateLimitError,
    RequestTimeoutError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
    SubmissionUncertainError,
    TaskFailedError,
    TaskTimeoutError,
    Timeouts,
    TransportError,
    UnknownAPIError,
    VideoRequest,
)
from minimax_s2v._redaction import Redactor
from tests.client_setup import FAST_POLLS
from tests.processes import free_port

KEY = "sk-api-0123456789abcdefSECRETKEY"
SECRET = "callback-secret-0123456789-SECRET"
OK = {"status_code": 0, "status_msg": "success"}
REQUEST = VideoRequest(subject="https://example.com/face.jpg", prompt="hi")


def links(error: BaseException) -> list[BaseException]:
    """``error``, its whole ``__cause__``/``__context__`` chain and exceptions it holds."""
    found: list[BaseException] = []
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or any(current is f for f in found):
            continue
        found.append(current)
        pending += [current.__cause__, current.__context__, *vars(current).values()]
    return found


def assert_clean(error: BaseException, *secrets: str) -> None:
    """Neither secret appears in any link's str, repr, args or attributes, nor the traceback."""
    secrets = secrets or (KEY,)
    texts = ["".join(traceback.format_exception(error))]
    for link in links(error):
        texts += [str(link), repr(link), repr(link.args), repr(vars(link))]
    for text in texts:
        for secret in secrets:
            assert secret not in text


Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def hostile() -> AsyncIterator[Callable[[Behaviour], Awaitable[URL]]]:
    """Start an API server that answers every path with the given behaviour."""
    runners: list[web.AppRunner] = []

    async def start(behaviour: Behaviour, host: str = "127.0.0.1") -> URL:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", behaviour)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, 0).start()
        runners.append(runner)
        return URL.build(scheme="http", host=host, port=runner.addresses[0][1])

    yield start
    for runner in runners:
        await runner.cleanup()


def echo(request: web.Request) -> str:
    """What a hostile server echoes: the request's own Authorization header."""
    return request.headers.get("Authorization", "")


def escape_key(text: str) -> str:
    """JSON text with the key spelled in unicode escapes: its bytes do not hold the key."""
    if KEY not in text:
        return text
    escaped = text.replace(KEY, "".join(f"\\u{ord(c):04x}" for c in KEY))
    assert KEY not in escaped
    return escaped


def client_of(url: URL) -> Client:
    timeouts = Timeouts(connect=1, read=1, request=0.5)
    return Client(KEY, base_url=url, retry=RetryPolicy.never(), timeouts=timeouts)


async def each_call(client: Client) -> list[BaseException]:
    """The error of each kind of call: query, retrieve, submit."""
    errors: list[BaseException] = []
    for call in (
        lambda: client.get_task("123"),
        lambda: client.get_file("456"),
        lambda: client.submit(REQUEST),
    ):
        try:
            await call()
        except MiniMaxError as error:
            errors.append(error)
    return errors


async def test_redirect_loop_keeps_no_request_headers(
    hostile: Callable[[Behaviour], Awaitable[URL]], caplog: pytest.LogCaptureFixture
) -> None:
    """Aiohttp's TooManyRedirects (its repr holds the request headers) is not in the chain."""

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.url)

    caplog.set_level(logging.DEBUG)
    async with client_of(await hostile(loop)) as client:
        errors = await each_call(client)
    assert len(errors) == 3
    for error in errors:
        transport = error.__cause__ if isinstance(error, SubmissionUncertainError) else error
        assert isinstance(transport, TransportError)
        assert "too many redirects" in str(transport)
        assert_clean(error)
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (1004, AuthenticationError),
        (2049, AuthenticationError),
        (1002, RateLimitError),
        (2013, InvalidRequestError),
        (1013, ServerError),
        (4321, UnknownAPIError),
    ],
)
@pytest.mark.parametrize("escaped", [False, True])
async def test_echoed_status_msg_is_scrubbed(
    hostile: Callable[[Behaviour], Awaitable[URL]],
    caplog: pytest.LogCaptureFixture,
    code: int,
    kind: type[APIError],
    escaped: bool,
) -> None:
    """A status_msg that echoes the key, even spelled with JSON escapes, is scrubbed."""

    async def answer(request: web.Request) -> web.Response:
        message = f"refused {echo(request)} for {request.path}"
        text = json.dumps({"base_resp": {"status_code": code, "status_msg": message}})
        if escaped:
            text = escape_key(text)
        return web.Response(text=text, content_type="application/json")

    caplog.set_level(logging.DEBUG)
    async with client_of(await hostile(answer)) as client:
        errors = await each_call(client)
    assert [type(e) for e in errors] == [kind, kind, kind]
    for error in errors:
        assert "refused Bearer <redacted>" in str(error)
        assert isinstance(error, APIError)
        assert KEY not in error.message
        assert_clean(error)
    assert KEY not in caplog.text


@pytest.mark.parametrize("status", [401, 429, 500, 418])
async def test_http_error_bodies_are_scrubbed(
    hostile: Callable[[Behaviour], Awaitable[URL]], status: int
) -> None:
    """An HTTP error whose body echoes the key, in base_resp or as text, carries no key."""

    async def answer(request: web.Request) -> web.Response:
        if request.method == "GET":
            body = {"base_resp": {"status_code": 1000 + status, "status_msg": echo(request)}}
            return web.json_response(body, status=status)
        return web.Response(text=f"<h1>{echo(request)}</h1>", status=status)

    async with client_of(await hostile(answer)) as client:
        errors = await each_call(client)
    assert len(errors) == 3
    for error in errors:
        assert_clean(error)


async def test_malformed_answers_echoing_the_key_are_scrubbed(
    hostile: Callable[[Behaviour], Awaitable[URL]],
) -> None:
    """A body of the wrong shape quoting the key: the validation error's excerpt has no key."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"task_id": echo(request), "file": echo(request), "status": 1})

    async with client_of(await hostile(answer)) as client:
        errors = await each_call(client)
    assert [type(e) for e in errors] == [
        ResponseValidationError,
        ResponseValidationError,
        SubmissionUncertainError,
    ]
    for error in errors:
        assert "<redacted>" in "".join(traceback.format_exception(error))
        assert_clean(error)


async def test_timeouts_and_refusals_are_clean(
    hostile: Callable[[Behaviour], Awaitable[URL]],
) -> None:
    """A stalled answer and a refused connection give typed errors whose chains are clean."""
    released = asyncio.Event()

    async def stall(_: web.Request) -> web.Response:
        await released.wait()
        return web.json_response({})

    async with client_of(await hostile(stall)) as client:
        stalled = await each_call(client)
    released.set()
    async with client_of(URL(f"http://127.0.0.1:{free_port()}")) as client:
        refused = await each_call(client)
    assert [type(e) for e in stalled[:2]] == [RequestTimeoutError, RequestTimeoutError]
    assert [type(e) for e in refused] == [ConnectError, ConnectError, ConnectError]
    for error in stalled + refused:
        assert_clean(error)


async def test_redirect_to_another_host_drops_the_key(
    hostile: Callable[..., Awaitable[URL]],
) -> None:
    """An API answer redirecting to another host: the request there has no Authorization."""
    seen: list[dict[str, str]] = []

    async def other(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"base_resp": {"status_code": 2013, "status_msg": "no"}})

    elsewhere = await hostile(other, "localhost")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(elsewhere.with_path(request.path))

    async with client_of(await hostile(redirect)) as client:
        errors = await each_call(client)
    assert len(seen) == 3
    assert all("Authorization" not in headers for headers in seen)
    assert all(KEY not in repr(headers) for headers in seen)
    for error in errors:
        assert_clean(error)


def test_reprs_hold_no_secret() -> None:
    """Client, its transport and the receiver show neither the key nor the secret."""
    from minimax_s2v.receiver import CallbackReceiver

    receiver = CallbackReceiver("https://hooks.example.com/cb", secret=SECRET)
    client = Client(KEY, receiver=receiver)
    for text in (repr(client), repr(receiver), repr(Redactor(KEY, SECRET))):
        assert KEY not in text
        assert SECRET not in text


def test_redactor_replaces_foreign_links_and_scrubs_own_text() -> None:
    """Chains built by hand: a foreign link naming a secret is replaced, ours are scrubbed."""
    redactor = Redactor(KEY, SECRET.encode())

    def fail() -> None:
        raise OSError(f"boom {SECRET}")

    try:
        try:
            fail()
        except OSError as inner:
            raise TransportError(f"outer {KEY}") from inner
    except TransportError as error:
        outer = error
    cleaned = redactor.clean(outer)
    assert cleaned is outer
    assert str(outer) == "outer <redacted>"
    assert type(outer.__cause__).__name__ == "RedactedError"
    assert "OSError: boom <redacted>" in str(outer.__cause__)
    assert_clean(outer, KEY, SECRET)
    harmless = ValueError("nothing secret")
    assert redactor.cause(harmless) is harmless


async def test_task_download_and_config_errors_are_clean(
    hostile: Callable[[Behaviour], Awaitable[URL]], tmp_path: Path
) -> None:
    """TaskFailedError, TaskTimeoutError, DownloadError and the set-up errors: no key.

    The hostile host echoes the key it was sent, in the failure message and in the HTML
    page it serves as "the video".
    """
    seen: list[str] = []
    status = {"value": "Fail"}

    async def api(request: web.Request) -> web.Response:
        seen.append(echo(request) or (seen[-1] if seen else ""))
        said = seen[-1]
        if request.path == "/v1/video_generation":
            return web.json_response({"task_id": "1", "base_resp": OK})
        if request.path == "/v1/query/video_generation":
            failing = status["value"] == "Fail"
            base = {"status_code": 1026, "status_msg": said} if failing else OK
            asked = request.query.get("task_id", "1")  # an answer about another is refused
            body = {"task_id": asked, "status": status["value"], "error_message": f"no {said}"}
            text = escape_key(json.dumps({**body, "base_resp": base}))
            return web.Response(text=text, content_type="application/json")
        if request.path == "/v1/files/retrieve":
            page = str(request.url.with_path("/page").with_query(None))
            return web.json_response(
                {"file": {"file_id": 7, "download_url": page}, "base_resp": OK}
            )
        return web.Response(text=f"<html>{said}</html>", content_type="text/html")

    url = await hostile(api)
    timeouts = Timeouts(connect=1, read=1, request=1)
    async with Client(KEY, base_url=url, polling=FAST_POLLS, timeouts=timeouts) as client:
        task = await client.submit(REQUEST)
        with pytest.raises(TaskFailedError) as failed:
            await task.wait(5)
        status["value"] = "Processing"
        with pytest.raises(TaskTimeoutError) as timed_out:
            await client.task("2").wait(0.05)
        with pytest.raises(DownloadError, match="text/html") as download:
            await client.download("7", tmp_path / "v.mp4")
    assert "Bearer <redacted>" in str(download.value)
    with pytest.raises(InvalidRequestError) as invalid:
        async with Client(KEY, base_url=url) as client:
            await client.submit(VideoRequest(subject=REQUEST.subject, prompt="x" * 3000))
    with pytest.raises(ConfigurationError) as config:
        Client(KEY, base_url="ftp://example.com")
    for error in (failed.value, timed_out.value, download.value, invalid.value, config.value):
        assert_clean(error)
    assert list(tmp_path.iterdir()) == []
