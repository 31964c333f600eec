"""Hostile servers against large bodies held in memory maps, and the receiver's one route lookup."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web

from minimax_s2v import (
    Client,
    ConnectError,
    InvalidRequestError,
    MiniMaxError,
    SubmissionUncertainError,
    TaskSnapshot,
    Timeouts,
    VideoRequest,
)
from minimax_s2v.receiver import CallbackReceiver, CallbackVerdict
from tests.client_setup import TEST_RETRY
from tests.test_submission import noise_png, plain_body, serving

pytestmark = pytest.mark.skipif(
    not hasattr(os, "memfd_create"), reason="large bodies are memory maps on Linux only"
)

_OK = {"task_id": "1234", "base_resp": {"status_code": 0}}


@pytest.fixture(scope="module")
def big_face(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 MB face: its 4 MB body is built in a memory map."""
    return noise_png(tmp_path_factory.mktemp("faces") / "big.png", 1000, 1000)


@pytest.fixture(scope="module")
def huge_face(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 7.7 MB face: its 10 MB body outgrows the socket buffers of loopback."""
    return noise_png(tmp_path_factory.mktemp("faces") / "huge.png", 1600, 1600)


_FDS = Path("/proc/self/fd")


def open_fds() -> int:
    """Descriptors open in this process."""
    return sum(1 for _ in _FDS.iterdir())


def mapped_bodies() -> int:
    """Memory-file bodies still mapped or open in this process (maps and descriptors)."""
    with Path("/proc/self/maps").open(encoding="ascii", errors="replace") as maps:
        mapped = sum("minimax-s2v-body" in line for line in maps)
    fds = 0
    for fd in _FDS.iterdir():
        try:
            fds += "minimax-s2v-body" in str(fd.readlink())
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return mapped + fds


@asynccontextmanager
async def watched_loop() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the loop's exception handler meanwhile (an unhandled task error...)."""
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    try:
        yield unhandled
    finally:
        gc.collect()  # a task destroyed with its error unretrieved is reported here
        await asyncio.sleep(0.05)
        loop.set_exception_handler(None)


_OK_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 51\r\n\r\n"
    b'{"task_id":"1234","base_resp":{"status_code":0}}   '
)


@asynccontextmanager
async def raw_server(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A server of raw bytes (what aiohttp's server would not send)."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with suppress(ConnectionError, asyncio.IncompleteReadError):
            await serve(reader, writer)

    listening = socket.socket()
    # A small receive buffer (inherited by each connection): a body not read stalls at once.
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    listening.bind(("127.0.0.1", 0))
    server = await asyncio.start_server(handle, sock=listening)
    port = listening.getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in writers:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


def _response(body: bytes, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and its whole body (by its Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


async def _submit_each(
    base_url: str, request: VideoRequest, times: int, **options: Any
) -> list[BaseException | str]:
    """Submit ``request`` ``times`` times with one client: each task id or error."""
    outcomes: list[BaseException | str] = []
    options.setdefault("retry", TEST_RETRY)
    async with Client("k", base_url=base_url, **options) as client:
        for _ in range(times):
            try:
                outcomes.append((await client.submit(request)).task_id)
            except MiniMaxError as error:
                outcomes.append(error)
    return outcomes


async def _take_whole(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bodies: list[bytes]
) -> None:
    """Read a whole request, keep its body, and answer that a task was created."""
    _, body = await _read_request(reader)
    bodies.append(body)
    writer.write(_response(b'{"task_id":"1234","base_resp":{"status_code":0}}'))
    await writer.drain()


async def _run(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    request: VideoRequest,
    times: int,
) -> tuple[list[BaseException | str], int, int, list[dict[str, Any]]]:
    """Submit ``request`` ``times`` times to a raw server (one client).

    Returns the outcomes, the mapped bodies before and after, and what reached the loop's
    exception handler.
    """
    before = mapped_bodies()
    async with watched_loop() as unhandled, raw_server(serve) as url:
        outcomes = await _submit_each(url, request, times)
        left = await _settled(before)
    return outcomes, before, left, unhandled


async def _settled(before: int, *, collect: bool = False) -> int:
    """Mapped bodies once the worker thread and the loop have done what was queued.

    With ``collect``, after a full collection too (what a reference cycle alone holds).
    """
    for _ in range(20):
        if collect:
            gc.collect()
        await asyncio.sleep(0.01)
        if mapped_bodies() <= before:
            break
    return mapped_bodies()


async def test_an_answer_before_the_body_is_read_leaves_no_map(huge_face: Path) -> None:
    """A server that answers after 64 KiB and reads no more: each map is let go of at once.

    The body's writer is still in the middle of the body (a view of the map exported) when
    the answer ends the call and the submission releases its body.
    """
    during: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            await reader.read(64 * 1024)
            during.append(mapped_bodies())
            writer.write(_response(b'{"task_id":"1234","base_resp":{"status_code":0}}'))
            await asyncio.sleep(5)  # reads no more of the body

    before = mapped_bodies()
    async with watched_loop() as unhandled, raw_server(serve) as url:
        outcomes = await _submit_each(url, VideoRequest(subject=str(huge_face)), 3)
        left = await _settled(before)
    assert outcomes == ["1234"] * 3
    assert during == [before + 2] * 3  # the map and its descriptor, while it was sent
    assert left == before
    assert unhandled == []


async def test_a_1002_answered_before_the_body_is_read_then_a_whole_resend(
    huge_face: Path,
) -> None:
    """Rate limited after 64 KiB of the body, the resend carries the whole body, unmapped after."""
    bodies: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not bodies:
            bodies.append(b"")
            await reader.readuntil(b"\r\n\r\n")
            await reader.read(64 * 1024)
            writer.write(_response(b'{"base_resp":{"status_code":1002,"status_msg":"rpm"}}'))
            await asyncio.sleep(5)
            return
        await _take_whole(reader, writer, bodies)

    request = VideoRequest(subject=str(huge_face), prompt="smile")
    outcomes, before, left, unhandled = await _run(serve, request, 1)
    assert outcomes == ["1234"]
    assert bodies[1:] == [plain_body(request, None)]
    assert left == before
    assert unhandled == []


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize("read_first", [True, False])
async def test_a_redirected_large_body_arrives_whole_at_the_new_place(
    big_face: Path, status: int, read_first: bool
) -> None:
    """A 307/308 (after reading the body or not) has the same body sent whole again."""
    received: dict[str, list[bytes]] = {"/v1/video_generation": [], "/elsewhere": []}

    async def create(request: web.Request) -> web.StreamResponse:
        if request.path == "/v1/video_generation":
            if read_first:
                received[request.path].append(await request.read())
            return web.Response(status=status, headers={"Location": "/elsewhere"})
        received[request.path].append(await request.read())
        return web.json_response(_OK)

    request = VideoRequest(subject=str(big_face), prompt="smile")
    before = mapped_bodies()
    async with (
        watched_loop() as unhandled,
        serving(create, "/v1/video_generation", "/elsewhere") as url,
    ):
        outcomes = await _submit_each(url, request, 2)
        left = await _settled(before)
    expected = plain_body(request, None)
    assert outcomes == ["1234"] * 2
    assert received["/elsewhere"] == [expected] * 2
    assert received["/v1/video_generation"] == ([expected] * 2 if read_first else [])
    assert left == before
    assert unhandled == []


async def _cut_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the head and 256 KiB of the body, then reset the connection."""
    await reader.readuntil(b"\r\n\r\n")
    await reader.read(256 * 1024)
    writer.transport.abort()


async def test_refused_large_submissions_leave_no_map_and_no_descriptor(huge_face: Path) -> None:
    """Refused in-band (2013) or answered 500 after the whole body: nothing stays mapped."""
    count = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        await _read_request(reader)
        if count % 2:  # an invalid parameter: refused, nothing created
            writer.write(_response(b'{"base_resp":{"status_code":2013,"status_msg":"bad"}}'))
        else:  # it may have been served: uncertain
            writer.write(_response(b'{"error":"boom"}', "500 Internal Server Error"))
        await writer.drain()

    fds_before, before = open_fds(), mapped_bodies()
    async with watched_loop() as unhandled, raw_server(serve) as url:
        outcomes = await _submit_each(url, VideoRequest(subject=str(huge_face)), 4)
        left = await _settled(before)
    fds_left = open_fds()
    kinds = [type(outcome) for outcome in outcomes]
    assert kinds == [InvalidRequestError, SubmissionUncertainError] * 2
    assert unhandled == []
    assert left == before  # the errors are still held here
    assert fds_left == fds_before


async def test_large_submissions_that_cannot_connect_leave_no_map(huge_face: Path) -> None:
    """Every attempt refused at connect (retried, then ConnectError): each map is let go of."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        fds_before, before = open_fds(), mapped_bodies()
        async with watched_loop() as unhandled:
            outcomes = await _submit_each(
                f"http://127.0.0.1:{port}", VideoRequest(subject=str(huge_face)), 3
            )
            left = await _settled(before)
        fds_after = open_fds()
    assert [type(outcome) for outcome in outcomes] == [ConnectError] * 3
    assert left == before
    assert fds_after == fds_before
    assert unhandled == []


async def test_an_unasked_100_continue_before_the_body_changes_nothing(big_face: Path) -> None:
    """A server sending ``100 Continue`` unasked, then reading the body: it arrives whole."""
    bodies: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await _take_whole(reader, writer, bodies)

    request = VideoRequest(subject=str(big_face), prompt="smile")
    outcomes, before, left, unhandled = await _run(serve, request, 2)
    assert outcomes == ["1234"] * 2
    assert bodies == [plain_body(request, None)] * 2
    assert left == before
    assert unhandled == []


# -- the receiver: one route lookup per callback -----------------------------------------------

_UPDATE = {
    "task_id": "1234",
    "status": "processing",
    "base_resp": {"status_code": 0, "status_msg": "success"},
}


@attrs.define
class _Sink:
    """A client's side of the receiver: takes every update it is handed."""

    delivered: list[str] = attrs.Factory(list)

    async def deliver(self, nonce: str, snapshot: TaskSnapshot) -> CallbackVerdict:
        self.delivered.append(nonce)
        return CallbackVerdict.RECORDED


async def test_wrong_path_comes_before_wrong_method() -> None:
    """A path that does not verify is a 404 whatever the method; a verified one, 405 or not."""
    receiver = CallbackReceiver("http://127.0.0.1:1/cb", secret="attack-secret-0123456789")
    sink = _Sink()
    url = receiver.expect("abcdefghij", sink)
    forged = url.with_name("A" * len(url.name))
    cases = [
        ("GET", "/nonsense", 404),
        ("POST", "/nonsense", 404),
        ("DELETE", f"/abcdefghij/{forged.name}", 404),
        ("POST", f"/abcdefghij/{forged.name}", 404),
        ("get", f"/abcdefghij/{url.name}", 405),
        ("PATCH", f"/abcdefghij/{url.name}", 405),
        ("POST", f"/abcdefghij/{url.name}", 200),
    ]
    seen = []
    async with receiver.serve("127.0.0.1", 0) as local, aiohttp.ClientSession() as http:
        for method, path, _ in cases:
            async with http.request(method, f"{local}{path}", json=_UPDATE) as answer:
                seen.append((method, path, answer.status))
    assert seen == cases
    assert sink.delivered == ["abcdefghij"]
    assert (receiver.counts.not_found, receiver.counts.wrong_method) == (4, 2)


@pytest.mark.parametrize("discarded", [False, True])
async def test_a_route_discarded_while_its_streamed_body_arrives(discarded: bool) -> None:
    """The route is looked up again once a streamed body is in: a discarded one is not used."""
    receiver = CallbackReceiver("http://127.0.0.1:1/cb", secret="attack-secret-0123456789")
    sink = _Sink()
    url = receiver.expect("abcdefghij", sink)
    headers_sent = asyncio.Event()
    go_on = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        text = json.dumps(_UPDATE).encode()
        yield text[:10]
        headers_sent.set()
        await go_on.wait()
        yield text[10:]

    async with receiver.serve("127.0.0.1", 0) as local, aiohttp.ClientSession() as http:

        async def send() -> int:
            async with http.post(f"{local}/abcdefghij/{url.name}", data=body()) as answer:
                return answer.status

        sending = asyncio.ensure_future(send())
        await asyncio.wait_for(headers_sent.wait(), 5)
        await asyncio.sleep(0.05)  # the receiver has verified the path and waits for the body
        if discarded:
            receiver.discard("abcdefghij")
        go_on.set()
        status = await asyncio.wait_for(sending, 5)
    assert (status, sink.delivered) == ((404, []) if discarded else (200, ["abcdefghij"]))


# Failed before: each slice of the map was sent as a view, which the traceback of the
# ConnectionResetError chained under the kept error held (this frame's `view`, aiohttp's
# `chunk`, asyncio's `data`), so the one close() failed with BufferError and nothing closed
# the map later. Slices of a map are now sent as copies, and a map still in use when
# released is unmapped again later.
async def test_a_body_cut_off_mid_upload_is_unmapped_while_its_error_is_kept(
    huge_face: Path,
) -> None:
    """Errors kept by the caller (gather(..., return_exceptions=True)) hold no map open."""
    fds_before, before = open_fds(), mapped_bodies()
    async with watched_loop() as unhandled, raw_server(_cut_off) as url:
        outcomes = await _submit_each(url, VideoRequest(subject=str(huge_face)), 3)
        left = await _settled(before)
    fds_left = open_fds()
    assert [type(outcome) for outcome in outcomes] == [SubmissionUncertainError] * 3
    assert unhandled == []
    assert left == before
    assert fds_left == fds_before


async def _stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads a request's headers, then nothing more: the upload stalls until timed out."""
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(30)


async def test_bodies_of_timed_out_uploads_are_unmapped_once_the_writer_lets_go(
    huge_face: Path,
) -> None:
    """A request timeout ends the upload while its writer may still hold the map.

    Released at that moment, the map cannot be closed yet: it is unmapped again a moment
    later, kept errors or not, instead of staying open with its descriptor.
    """
    fds_before, before = open_fds(), mapped_bodies()
    async with watched_loop() as unhandled, raw_server(_stalled) as url:
        outcomes = await _submit_each(
            url, VideoRequest(subject=str(huge_face)), 4, timeouts=Timeouts(request=0.3)
        )
        for _ in range(300):  # the retries come 0.05 s and 0.55 s after the first try
            if mapped_bodies() <= before:
                break
            await asyncio.sleep(0.01)
        left = mapped_bodies()
    assert [type(outcome) for outcome in outcomes] == [SubmissionUncertainError] * 4
    assert unhandled == []
    assert left == before
    assert open_fds() <= fds_before
