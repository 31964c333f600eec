"""Downloads from hostile or broken hosts: each ends in the right file or a typed error.

Every test runs a small aiohttp server of its own on loopback that misbehaves in one way
(or, in the property test, in a generated sequence of ways), counts the requests it gets,
and checks that no part file is left behind. The error is a DownloadError, or a
TransportError when the connection itself kept breaking.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from minimax_s2v import (
    Client,
    ConnectError,
    DownloadError,
    RetryPolicy,
    Timeouts,
    TransportError,
    VideoFile,
)
from tests.media import mp4
from tests.profiles import examples

KEY = "sk-hostile-download-key-0123456789"
ATTEMPTS = 4
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.define
class HostileServer:
    """A loopback HTTP server with one handler, recording every request's headers."""

    url: URL
    requests: list[dict[str, str]] = attrs.field(factory=list)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[HostileServer]]]:
    """Start servers with the given handlers; all are stopped at the end of the test."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler, host: str = "127.0.0.1") -> HostileServer:
        server: list[HostileServer] = []

        async def record(request: web.Request) -> web.StreamResponse:
            server[0].requests.append(dict(request.headers))
            return await handler(request)

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", record)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, 0).start()
        runners.append(runner)
        port = runner.addresses[0][1]
        server.append(HostileServer(URL.build(scheme="http", host=host, port=port, path="/v.mp4")))
        return server[0]

    yield start
    for runner in runners:
        await runner.cleanup()


def video_at(url: URL, size: int = 0) -> VideoFile:
    now = datetime.now(UTC)
    return VideoFile(
        file_id=176844028768320,
        bytes=size,
        created_at=now,
        filename="output.mp4",
        purpose="video_generation",
        download_url=url,
        expires_at=now + timedelta(hours=1),
    )


async def download(
    video: VideoFile, dest: Path, retry: RetryPolicy | None = None, **options: object
) -> Path:
    """``Client.download`` with a small retry budget, cut off after 10 s (a loop fails)."""
    retry = retry or RetryPolicy(attempts=ATTEMPTS)
    client = Client(KEY, base_url="http://127.0.0.1:9", retry=retry, timeouts=Timeouts(read=5))
    async with asyncio.timeout(10), client:
        return await client.download(video, dest, **options)  # type: ignore[arg-type]


def assert_no_leftovers(directory: Path, *keep: str) -> None:
    assert sorted(p.name for p in directory.iterdir()) == sorted(keep)


async def test_wrong_206_start_is_bounded(
    serve: Callable[[Handler], Awaitable[HostileServer]], tmp_path: Path
) -> None:
    """A 206 whose start is not what was asked for never loops: bounded, then DownloadError."""
    body = mp4(10_000)

    async def wrong_start(_: web.Request) -> web.Response:
        return web.Response(
            status=206, body=body[5:], headers={"Content-Range": f"bytes 5-9999/{len(body)}"}
        )

    server = await serve(wrong_start)
    with pytest.raises(DownloadError, match="partial"):
        await download(video_at(server.url), tmp_path / "v.mp4")
    assert len(server.requests) <= ATTEMPTS
    assert_no_leftovers(tmp_path)


async def test_206_without_range_is_bounded(
    serve: Callable[[Handler], Awaitable[HostileServer]], tmp_path: Path
) -> None:
    """A 206 answering a request that asked for no range is refused, a bounded number of times."""
    body = mp4(10_000)

    async def always_partial(_: web.Request) -> web.Response:
        return web.Response(
            status=206, body=body, headers={"Content-Range": f"bytes 0-9999/{len(body)}"}
        )

    server = await serve(always_partial)
    with pytest.raises(DownloadError, match="partial"):
        await download(video_at(server.url), tmp_path / "v.mp4")
    assert len(server.requests) <= ATTEMPTS
    assert all("Range" not in headers for headers in server.requests)
    assert_no_leftovers(tmp_path)


def changing_file(*, honour_if_range: bool) -> tuple[Handler, bytes]:
    """A host whose file is replaced (new size, new ETag) after the first, broken-off answer."""
    old, new = mp4(200_000, fill=1), mp4(300_000, fill=2)
    served = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal served
        served += 1
        if served == 1:  # the old file, cut off half-way
            response = web.StreamResponse(headers={"ETag": '"old"'})
            response.content_length = len(old)
            await response.prepare(request)
            await response.write(old[:100_000])
            assert request.transport is not None
            request.transport.close()
            return response
        wanted = request.headers.get("Range")
        validator_matches = request.headers.get("If-Range") == '"new"'
        if wanted and (validator_matches or not honour_if_range):
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            return web.Response(
                status=206,
                body=new[start:],
                headers={"ETag": '"new"', "Content-Range": f"bytes {start}-{len(new) - 1}/300000"},
            )
        return web.Response(body=new, headers={"ETag": '"new"'})

    return handler, new


@pytest.mark.parametrize("honour_if_range", [True, False])
async def test_changed_file_on_resume_is_not_spliced(
    serve: Callable[[Handler], Awaitable[HostileServer]], tmp_path: Path, honour_if_range: bool
) -> None:
    """A resume sends If-Range; a file whose total or ETag changed is fetched again whole."""
    handler, new = changing_file(honour_if_range=honour_if_range)
    server = await serve(handler)
    path = await download(video_at(server.url), tmp_path / "v.mp4")
    assert path.read_bytes() == new
    assert server.requests[1].get("If-Range") == '"old"'
    assert server.requests[1].get("Range") == "bytes=100000-"
    assert len(server.requests) <= 3
    assert_no_leftovers(tmp_path, "v.mp4")


async def test_resume_of_the_same_file_is_kept(
    serve: Callable[[Handler], Awaitable[HostileServer]], tmp_path: Path
) -> None:
    """An honest resume (same ETag, same total, right start) continues where it broke off."""
    body = mp4(200_000, fill=7)
    served = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal served
        served += 1
        if served == 1:
            response = web.StreamResponse(headers={"ETag": '"v"'})
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body[:50_000])
            assert request.transport is not None
            request.transport.close()
            return response
        assert request.headers["If-Range"] == '"v"'
        return web.Response(
            status=206,
            body=body[50_000:],
            headers={"ETag": '"v"', "Content-Range": "bytes 50000-199999/200000"},
        )

    server = await serve(handler)
    path = await download(video_at(server.url, size=len(body)), tmp_path / "v.mp4")
    assert path.read_bytes() == body
    assert len(server.requests) == 2
    assert_no_leftovers(tmp_path, "v.mp4")


async def test_html_page_with_200_is_not_saved(
    serve: Callable[[Handler], Awaitable[HostileServer]], tmp_path: Path
) -> None:
    """An HTML error page on HTTP 200 is a DownloadError naming what came; nothing is saved."""
    page = "<html><body>Service temporarily unavailable</body></html>"

    async def html(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    server = await serve(html)
    dest = tmp_path / "v.mp4"
    for size in (100_000, 0):  # with and without a size reported by the retrieve
        with pytest.raises(DownloadError, match="text/html") as caught:
            await download(video_at(server.url, size=size), dest)
        assert "Service temporarily unavailable" in str(caught.value)
        assert_no_leftovers(tmp_path)
    assert len(server.requests) <= 2


@pytest.mark.parametrize(("served", "reported"), [(20_000, 10_000), (10_000, 20_000)])
@pytest.mark.parametrize("declared", [True, False])
async def test_size_other_than_reported_is_refused(
    serve: Callable[[Handler], Awaitable[HostileServer]],
    tmp_path: Path,
    served: int,
    reported: int,
    declared: bool,
) -> None:
    """More or fewer bytes than the retrieve's ``bytes``, with or without a length: refused."""
    body = mp4(served)

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        if declared:
            response.content_length = len(body)
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    server = await serve(handler)
    with pytest.raises(DownloadError, match=f"{reported}"):
        await download(video_at(server.url, size=reported), tmp_path / "v.mp4")
    assert len(server.requests) <= ATTEMPTS
    assert_no_leftovers(tmp_path)


async def test_endless_body_without_length_stops_at_max_bytes(
    serve: Callable[[Handler], Awaitable[HostileServer]], tmp_path: Path
) -> None:
    """A 200 with no Content-Length that never ends is cut off at max_bytes."""
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(mp4(64 * 1024))
        chunk = bytes(64 * 1024)
        with_limit = 200  # about 13 MB: far more than allowed, but a bound on the test
        for _ in range(with_limit):
            try:
                await response.write(chunk)
            except (ConnectionError, RuntimeError):
                break
            sent += len(chunk)
        return response

    server = await serve(endless)
    with pytest.raises(DownloadError, match="max_bytes"):
        await download(video_at(server.url), tmp_path / "v.mp4", max_bytes=1_000_000)
    assert len(server.requests) == 1
    assert_no_leftovers(tmp_path)


async def test_declared_size_over_max_bytes_is_refused_before_reading(
    serve: Callable[[Handler], Awaitable[HostileServer]], tmp_path: Path
) -> None:
    """A declared Content-Length over max_bytes is refused at once, with nothing saved."""
    body = mp4(2_000_000)

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=body)

    server = await serve(big)
    with pytest.raises(DownloadError, match="max_bytes"):
        await download(video_at(server.url), tmp_path / "v.mp4", max_bytes=1_000_000)
    assert len(server.requests) == 1
    assert_no_leftovers(tmp_path)


async def test_redirect_to_another_host_carries_no_key(
    serve: Callable[..., Awaitable[HostileServer]], tmp_path: Path
) -> None:
    """A download redirected to another host follows it, and no Authorization goes there."""
    body = mp4(50_000)

    async def target(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="video/mp4")

    other = await serve(target, "localhost")

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound(other.url)

    first = await serve(redirect)
    path = await download(video_at(first.url, size=len(body)), tmp_path / "v.mp4")
    assert path.read_bytes() == body
    assert len(other.requests) == 1
    assert all("Authorization" not in headers for headers in first.requests + other.requests)
    assert all(KEY not in str(headers) for headers in first.requests + other.requests)


async def test_redirect_loop_is_a_download_error_without_the_key(
    serve: Callable[[Handler], Awaitable[HostileServer]], tmp_path: Path
) -> None:
    """A download URL redirecting to itself ends in a typed error, bounded, with no part file."""

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.url)

    server = await serve(loop)
    with pytest.raises(DownloadError, match="redirected 5 times") as caught:
        await download(video_at(server.url), tmp_path / "v.mp4")
    assert len(server.requests) == 5  # five answers, all redirects; not retried
    assert type(caught.value.__cause__).__name__ == "RedactedError"
    assert caught.value.__context__ is None
    assert_no_leftovers(tmp_path)


def truncating_host(body: bytes) -> Handler:
    """A host that sends 1,000 bytes of what was asked for, then drops the connection."""

    async def truncating(request: web.Request) -> web.StreamResponse:
        start = int(request.headers.get("Range", "bytes=0-").removeprefix("bytes=").rstrip("-"))
        partial = start > 0
        response = web.StreamResponse(status=206 if partial else 200, headers={"ETag": '"e"'})
        if partial:
            response.headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        response.content_length = len(body) - start
        await response.prepare(request)
        await response.write(body[start : start + 1000])  # then the connection drops
        assert request.transport is not None
        request.transport.close()
        return response

    return truncating


async def test_body_shorter_than_its_content_length_is_bounded(
    serve: Callable[[Handler], Awaitable[HostileServer]], tmp_path: Path
) -> None:
    """A host that always closes early: resumed a bounded number of times, then a typed error."""
    body = mp4(100_000)
    server = await serve(truncating_host(body))
    with pytest.raises(TransportError, match="interrupted"):
        await download(video_at(server.url, size=len(body)), tmp_path / "v.mp4")
    assert len(server.requests) == ATTEMPTS
    assert [h.get("Range") for h in server.requests] == [None] + [
        f"bytes={1000 * n}-" for n in range(1, ATTEMPTS)
    ]
    assert_no_leftovers(tmp_path)


GOOD, OTHER = mp4(40_000, fill=1), mp4(40_000, fill=2)
KINDS = ("honest", "full", "wrong_start", "changed", "html", "error", "partial_always")


@st.composite
def answers(draw: st.DrawFn) -> list[tuple[str, int | None]]:
    """A host's answers in turn: what kind, and where (if at all) the body is cut off."""
    kinds = st.sampled_from(KINDS)
    cut = st.none() | st.sampled_from([1_000, 20_000, 39_999]) | st.integers(1, 39_999)
    return draw(st.lists(st.tuples(kinds, cut), min_size=1, max_size=6))


def scripted(script: list[tuple[str, int | None]]) -> Handler:
    """A host playing ``script`` in turn (its last answer over and over)."""
    turn = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal turn
        kind, cut = script[min(turn, len(script) - 1)]
        turn += 1
        wanted = request.headers.get("Range")
        start = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted else 0
        body, etag, status = GOOD, '"good"', 200
        if kind == "error":
            return web.Response(status=503, text="busy")
        if kind == "html":
            return web.Response(text="<html>oops</html>", content_type="text/html")
        if kind == "changed":
            body, etag = OTHER, '"other"'
        if kind == "honest" and request.headers.get("If-Range") not in (None, etag):
            start = 0  # the validator does not match: the whole file, as RFC 9110 says
        if kind in ("honest", "changed", "wrong_start") and start:
            status = 206
            start += 7 if kind == "wrong_start" else 0
        elif kind == "partial_always":
            status = 206
        else:
            start = 0
        response = web.StreamResponse(status=status, headers={"ETag": etag})
        if status == 206:
            response.headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        response.content_length = len(body) - start
        await response.prepare(request)
        if cut is None or cut <= start:
            await response.write(body[start:])
            await response.write_eof()
            return response
        await response.write(body[start:cut])
        assert request.transport is not None
        request.transport.close()
        return response

    return handler


async def play(script: list[tuple[str, int | None]], dest: Path) -> tuple[object, int]:
    """Download from a host playing ``script``: the outcome and how many requests it took."""
    requests = 0
    inner = scripted(script)

    async def counted(request: web.Request) -> web.StreamResponse:
        nonlocal requests
        requests += 1
        return await inner(request)

    app = web.Application()
    app.router.add_get("/v.mp4", counted)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = URL.build(scheme="http", host="127.0.0.1", port=runner.addresses[0][1], path="/v.mp4")
    try:
        outcome: object = await download(video_at(url, size=len(GOOD)), dest)
    except (DownloadError, TransportError) as error:
        outcome = error
    finally:
        await runner.cleanup()
    return outcome, requests


@settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck))
@given(script=answers())
def test_any_sequence_of_answers_gives_a_whole_file_or_a_typed_error(
    tmp_path_factory: pytest.TempPathFactory, script: list[tuple[str, int | None]]
) -> None:
    """Whatever a host answers in turn: one whole file, never a splice; bounded; no part file."""
    directory = tmp_path_factory.mktemp("dl")
    outcome, requests = asyncio.run(play(script, directory / "v.mp4"))
    assert requests <= ATTEMPTS
    if isinstance(outcome, Path):
        assert outcome.read_bytes() in (GOOD, OTHER)
        assert_no_leftovers(directory, "v.mp4")
    else:
        assert isinstance(outcome, DownloadError | TransportError)
        assert_no_leftovers(directory)


@pytest.mark.parametrize(
    "policy",
    [
        # Its ``on`` leaves broken exchanges out.
        RetryPolicy(attempts=ATTEMPTS, on=(ConnectError,)),
        # A first wait of 30 s against a 1 s budget: no resumption may start.
        RetryPolicy(attempts=ATTEMPTS, timeout=1.0, wait_initial=30, wait_max=30),
    ],
    ids=["on", "timeout"],
)
async def test_the_clients_retry_policy_decides_for_downloads_too(
    serve: Callable[[Handler], Awaitable[HostileServer]], tmp_path: Path, policy: RetryPolicy
) -> None:
    """A policy that does not retry this broken exchange is obeyed: no resumption."""
    body = mp4(100_000)
    server = await serve(truncating_host(body))
    with pytest.raises(TransportError, match="interrupted"):
        await download(video_at(server.url, size=len(body)), tmp_path / "v.mp4", policy)
    assert len(server.requests) == 1
    assert_no_leftovers(tmp_path)
