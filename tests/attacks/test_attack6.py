"""A hostile MiniMax API, file server, emulator client and batch file, from outside the SDK."""

from __future__ import annotations

import asyncio
import math
import os
import stat
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, suppress
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from minimax_s2v import (
    AnyRequest,
    Client,
    ConfigurationError,
    DownloadError,
    H3Request,
    InvalidRequestError,
    MiniMaxError,
    MismatchedAnswerError,
    RateLimitError,
    ResponseValidationError,
    SubmissionUncertainError,
    TaskTimeoutError,
    Timeouts,
    TransportError,
    VideoRequest,
)
from minimax_s2v.emulator import Durations, Emulator, EmulatorConfig
from minimax_s2v.receiver import CallbackReceiver
from tests.attacks.test_attack3 import raw_server
from tests.attacks.test_attack5 import api_server
from tests.client_setup import FAST_POLLS, TEST_RETRY, face_request, fast_client
from tests.media import mp4
from tests.test_download_hostile import video_at
from tests.test_secrets import links

KEY = "sk-attack6-secret-key-0123456789"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def api(handler: Handler) -> AbstractAsyncContextManager[str]:
    """A stand-in for the API on a free loopback port: every path and method goes to ``handler``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return api_server(app)


def client_of(url: str) -> Client:
    """A client of the stand-in, with short timeouts and polls."""
    return Client(
        KEY,
        base_url=url,
        retry=TEST_RETRY,
        timeouts=Timeouts(connect=2, read=3, request=5),
        polling=FAST_POLLS,
    )


def assert_clean(error: BaseException) -> None:
    """``error`` and its whole chain never show the key."""
    for current in links(error):
        assert KEY not in repr(current)
        assert KEY not in str(current)
        assert KEY not in repr(vars(current))


DEEP = b"[" * 200_000 + b"]" * 200_000


@pytest.mark.parametrize("status", [200, 500])
async def test_a_deeply_nested_answer_is_a_typed_error(status: int) -> None:
    """An answer nested deeper than Python's stack is a MiniMaxError, not a RecursionError."""

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=DEEP, status=status, content_type="application/json")

    async with api(handle) as url, client_of(url) as client:
        with pytest.raises(MiniMaxError) as caught:
            await client.get_task("1234")
    assert_clean(caught.value)


async def test_a_deeply_nested_create_answer_is_uncertain_and_sent_once() -> None:
    """A create answered with JSON too deep to read may have created a task: sent once."""
    posts: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        posts.append(request.path)
        return web.Response(body=DEEP, content_type="application/json")

    async with api(handle) as url, client_of(url) as client:
        with pytest.raises(SubmissionUncertainError) as caught:
            await client.submit(face_request())
    assert posts == ["/v1/video_generation"]
    assert_clean(caught.value)


def gzip_bomb(size: int) -> bytes:
    """A gzip body of a few dozen KiB that inflates to a JSON object of ``size`` bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(b'{"task_id": "1234", "pad": "')]
    block = b"0" * (1 << 20)
    parts.extend(packer.compress(block) for _ in range(size >> 20))
    parts.append(packer.compress(b'"}') + packer.flush())
    return b"".join(parts)


async def test_a_gzip_bomb_is_refused_with_memory_bounded() -> None:
    """A small gzip answer inflating to 64 MiB is refused as too large; memory stays bounded.

    The 4 MB cap on API answers was checked against Content-Length, the size on the wire.
    """
    bomb = gzip_bomb(64 << 20)

    async def handle(_: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with api(handle) as url, client_of(url) as client:
        tracemalloc.start()
        try:
            with pytest.raises(TransportError, match="too large") as caught:
                await client.get_task("1234")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 40 << 20
    assert_clean(caught.value)


@pytest.mark.parametrize("where", ["under-a-file", "in-proc"])
async def test_a_destination_that_cannot_be_created_is_a_download_error(
    tmp_path: Path, where: str
) -> None:
    """A destination whose directory cannot be made or written is a DownloadError, no OSError."""
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"not a directory")
    dest = blocker / "out.mp4" if where == "under-a-file" else Path("/proc/attack6/out.mp4")
    async with Emulator(seed=6) as emu, fast_client(emu) as client:
        snapshot = await (await client.submit(face_request())).wait()
        with pytest.raises(DownloadError, match="could not write"):
            await client.download(snapshot, dest)
    assert blocker.read_bytes() == b"not a directory"


def test_hostile_batch_lines_are_skipped_each_with_one_line(tmp_path: Path) -> None:
    """Lines not UTF-8, nested too deeply or naming an unknown user's home are bad lines.

    The first two raised out of the CLI as a traceback (UnicodeDecodeError for the whole
    file, RecursionError), and the lines after them were never read.
    """
    batch = tmp_path / "batch.jsonl"
    batch.write_bytes(
        b'{"id": "bad-\xff\xfe", "prompt": "hi", "image": "https://example.com/f.jpg"}\n'
        + b"[" * 100_000
        + b"\n"
        + b'{"id": "tilde", "image": "~no-such-user-attack6/face.png"}\n'
    )
    done = subprocess.run(
        [
            *(sys.executable, "-m", "minimax_s2v", "batch", str(batch)),
            *("--out", str(tmp_path / "out"), "--base-url", "http://127.0.0.1:9"),
        ],
        env={**os.environ, "MINIMAX_API_KEY": KEY},
        capture_output=True,
        timeout=60,
        check=False,
    )
    shown = done.stdout + done.stderr
    assert b"Traceback" not in shown
    assert KEY.encode() not in shown
    for number in (1, 2, 3):
        assert f"batch.jsonl:{number}: skipped".encode() in shown
    assert b"3 bad lines" in shown
    assert done.returncode == 2


@pytest.mark.parametrize("path", ["~no-such-user-attack6/face.png", "faces/face\x00.png"])
@pytest.mark.parametrize("model", ["S2V-01", "MiniMax-H3"])
async def test_a_local_path_naming_no_possible_file_is_refused_before_sending(
    path: str, model: str
) -> None:
    """An unknown user's ``~`` or a NUL byte is a problem found before anything is sent.

    A raw RuntimeError or ValueError came out of submit().
    """
    posts: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        posts.append(request.path)
        return web.json_response({"task_id": "1234", "base_resp": {"status_code": 0}})

    request: AnyRequest = (
        VideoRequest(subject=path) if model == "S2V-01" else H3Request("hi", references=[path])
    )
    async with api(handle) as url, client_of(url) as client:
        with pytest.raises(InvalidRequestError) as caught:
            await client.submit(request)
    assert posts == []
    assert "\x00" not in str(caught.value)


@pytest.mark.parametrize("timing", ["in_create", "after_create"])
async def test_a_challenge_echo_nested_too_deeply_fails_the_check_without_an_internal_error(
    timing: str,
) -> None:
    """A callback URL whose host answers the challenge with 1 KiB of ``[`` fails its check.

    The emulator's check of the echo raised RecursionError.
    """
    answered = asyncio.Event()

    async def receiver(_: web.Request) -> web.Response:
        answered.set()
        return web.Response(body=b"[" * 1024, content_type="application/json")

    body = {
        "model": "S2V-01",
        "prompt": "hi",
        "subject_reference": [{"type": "character", "image": ["https://example.com/f.jpg"]}],
    }
    async with (
        api(receiver) as hook,
        Emulator(seed=6, challenge_timing=timing) as emu,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {emu.api_key}"}) as session,
    ):
        async with session.post(
            emu.url / "v1/video_generation", json={**body, "callback_url": f"{hook}/hook"}
        ) as response:
            status, data = response.status, await response.json()
        await asyncio.wait_for(answered.wait(), 10)
        await asyncio.sleep(0.1)  # an after-create check ends in the background
        state = emu.state()
    assert status == 200
    expected = 2013 if timing == "in_create" else 0
    assert data["base_resp"]["status_code"] == expected
    assert "internal_error" not in state["requests"]["submit"]
    assert state["callbacks"]["challenges_failed"] == 1


_MIB_OF_SPACES = b" " * (1 << 20)


@pytest.mark.parametrize("answer", ["not-utf-8", "deep", "huge"])
async def test_self_check_of_a_hostile_public_url_reports_a_failure(answer: str) -> None:
    """self_check() against a host answering garbage returns a failed result, memory bounded.

    A body not UTF-8 raised UnicodeDecodeError, one nested too deeply RecursionError, and a
    32 MiB one was read whole.
    """

    async def host(request: web.Request) -> web.StreamResponse:
        if answer == "not-utf-8":
            return web.Response(body=b'{"challenge": "\xff"}', content_type="application/json")
        if answer == "deep":
            return web.Response(body=b"[" * 100_000, content_type="application/json")
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        with suppress(ConnectionError):  # the check may stop reading and hang up
            for _ in range(32):
                await response.write(_MIB_OF_SPACES)
        return response

    async with api(host) as url:
        receiver = CallbackReceiver(f"{url}/cb", secret=b"s" * 32)
        tracemalloc.start()
        try:
            result = await receiver.self_check(timeout=10)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert not result.ok
    assert result.http_status == 200
    assert peak < 8 << 20


def _other_task_api(request: web.Request) -> web.Response:
    """Answers every query with another task's success, every retrieve with another file."""
    if request.path == "/v1/video_generation":
        return web.json_response({"task_id": "1111", "base_resp": {"status_code": 0}})
    if request.path == "/v2/video_generation":
        return web.json_response({"task_id": "1111"})
    if request.path == "/v1/query/video_generation":
        return web.json_response(
            {
                "task_id": "2222",
                "status": "Success",
                "file_id": "888",
                "base_resp": {"status_code": 0},
            }
        )
    if request.path.startswith("/v2/query/video_generation/"):
        task = {
            "id": "2222",
            "model": "MiniMax-H3",
            "status": "succeeded",
            "created_at": 1,
            "updated_at": 2,
            "content": {"url": "http://127.0.0.1:9/other.mp4"},
        }
        return web.json_response({"task": task})
    file = {
        "file_id": 888,
        "bytes": 0,
        "created_at": 1,
        "filename": "output.mp4",
        "purpose": "video_generation",
        "download_url": "http://127.0.0.1:9/other.mp4",
    }
    return web.json_response({"file": file, "base_resp": {"status_code": 0}})


@pytest.mark.parametrize("model", ["S2V-01", "MiniMax-H3"])
async def test_an_answer_about_another_task_is_not_taken_for_the_one_asked_about(
    model: str,
) -> None:
    """A query of task 1111 answered with task 2222's success is a ResponseValidationError.

    get_task("1111") returned task 2222's snapshot, which download() would have saved.
    """

    async def handle(request: web.Request) -> web.Response:
        return _other_task_api(request)

    request: AnyRequest = (
        face_request()
        if model == "S2V-01"
        else H3Request("hi", references=["https://example.com/f.jpg"])
    )
    async with api(handle) as url, client_of(url) as client:
        task = await client.submit(request)
        assert task.task_id == "1111"
        with pytest.raises(ResponseValidationError, match="2222"):
            await client.get_task("1111")


async def test_a_retrieve_answering_another_file_is_not_taken_for_the_one_asked_about() -> None:
    """A retrieve of file 999 answered with file 888 is a ResponseValidationError."""

    async def handle(request: web.Request) -> web.Response:
        return _other_task_api(request)

    async with api(handle) as url, client_of(url) as client:
        with pytest.raises(ResponseValidationError, match="888"):
            await client.get_file(999)


@pytest.mark.parametrize(("status", "code"), [(200, 1013), (200, 1002), (429, 1002), (500, None)])
async def test_a_refusal_that_names_a_task_is_not_sent_again(status: int, code: int | None) -> None:
    """A create answer naming a task id beside an error may have created it: never resent.

    It was taken as a refusal (created nothing) and sent again: a second paid task.
    """
    posts: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        posts.append(await request.read())
        if len(posts) > 1:
            return web.json_response({"task_id": "6666", "base_resp": {"status_code": 0}})
        body: dict[str, object] = {"task_id": "5555"}
        if code is not None:
            body["base_resp"] = {"status_code": code, "status_msg": "busy"}
        return web.json_response(body, status=status)

    async with api(handle) as url, client_of(url) as client:
        with pytest.raises(SubmissionUncertainError, match="5555") as caught:
            await client.submit(face_request())
    assert len(posts) == 1
    assert_clean(caught.value)


@pytest.mark.parametrize(
    "target", ["http://[::1", "http://xn--/", "http://127.0.0.1:99999", "ftp://x"]
)
def test_the_emulator_refuses_a_callback_target_that_is_no_http_origin(target: str) -> None:
    """``callback_targets`` are http(s) origins: anything else is refused when configured.

    Accepted, the first three made every create with a callback an internal error.
    """
    with pytest.raises(ConfigurationError, match="callback_targets"):
        EmulatorConfig(callback_targets=(target,))


@pytest.mark.parametrize(
    "args",
    [
        ["--fault-rate", "nan"],
        ["--fault-rate", "2"],
        ["--port", "70000"],
        ["--port", "-1"],
        ["--callback-target", "http://[::1"],
    ],
)
def test_the_emulator_command_line_refuses_nonsense_in_one_line(args: list[str]) -> None:
    """Nonsense settings end the emulator's command line with one ``error:`` line and 2.

    --fault-rate and --port ended with a traceback (exit code 1); a bad --callback-target
    was accepted.
    """
    done = subprocess.run(
        [sys.executable, "-m", "minimax_s2v.emulator", *args],
        capture_output=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert b"Traceback" not in done.stderr
    lines = done.stderr.decode().splitlines()
    assert "error:" in lines[-1]  # argparse's usage may come before it
    assert sum("error:" in line for line in lines) == 1


@pytest.mark.parametrize(
    "key", [f"{KEY}\nX-Injected: 1", f"{KEY[:10]}\x01{KEY[10:]}", KEY + "\x7f"]
)
async def test_a_key_holding_control_characters_is_refused_when_the_client_is_made(
    key: str,
) -> None:
    """A key with a control character inside is a ConfigurationError naming no key.

    It was accepted, and every call raised aiohttp's raw ValueError ("Forbidden control
    character detected in headers"), a submission after it had been journaled.
    """
    with pytest.raises(ConfigurationError, match="control character") as caught:
        Client(key, base_url="http://127.0.0.1:9")
    assert KEY[:12] not in str(caught.value)
    assert_clean(caught.value)


# The child limits its own address space to 2 GiB first, so that reading an endless device
# fails fast instead of taking the machine's memory (no preexec_fn: this process has threads).
_BOUNDED_CLI = (
    "import resource, runpy, sys; "
    "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
    "sys.argv[0] = 'minimax-s2v'; "
    "runpy.run_module('minimax_s2v', run_name='__main__')"
)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_given_as_the_batch_file_is_refused_in_one_line(
    tmp_path: Path, device: str
) -> None:
    """A character device is no batch file: one ``error:`` line, exit code 2.

    It was read to the end, which never came: all memory, then a MemoryError traceback.
    """
    done = subprocess.run(
        [
            *(sys.executable, "-c", _BOUNDED_CLI, "batch", device),
            *("--out", str(tmp_path / "out"), "--base-url", "http://127.0.0.1:9"),
        ],
        env={**os.environ, "MINIMAX_API_KEY": KEY},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr.startswith(b"error: ")
    assert done.stderr.count(b"\n") == 1


@pytest.mark.parametrize("path", ["/v1/video_generation", "/v2/video_generation"])
async def test_a_create_body_that_does_not_decode_as_its_encoding_says_is_2013(path: str) -> None:
    """A create whose body is not the gzip its Content-Encoding says gets 2013, no error.

    Reading it raised RequestPayloadError: the emulator answered 1000 (V1) or 500 (V2) and
    counted an internal error.
    """
    async with (
        Emulator(seed=6) as emu,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {emu.api_key}"}) as session,
        session.post(
            emu.url.with_path(path),
            data=b"this is not gzip",
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        ) as response,
    ):
        status, data = response.status, await response.json()
        state = emu.state()
    assert status == (200 if path.startswith("/v1/") else 400)
    code = data["base_resp"]["status_code"] if "base_resp" in data else data["error"]["message"]
    assert "2013" in str(code)
    assert all("internal_error" not in counts for counts in state["requests"].values())


HUGE_DATE = "Mon, 1 Jan 99999999999999999999 00:00:00 GMT"


async def test_a_retry_after_date_past_any_calendar_is_ignored_on_a_created_task() -> None:
    """A create answered with success and a Retry-After date in a year past C's long: created.

    Reading the header raised OverflowError out of submit(): the task created was reported
    neither as created nor as uncertain.
    """

    async def handle(_: web.Request) -> web.Response:
        body = {"task_id": "1234", "base_resp": {"status_code": 0}}
        return web.json_response(body, headers={"Retry-After": HUGE_DATE})

    async with api(handle) as url, client_of(url) as client:
        task = await client.submit(face_request())
    assert task.task_id == "1234"


async def test_a_retry_after_date_past_any_calendar_on_a_429_is_a_rate_limit() -> None:
    """A 429 whose Retry-After is a date no calendar holds is a RateLimitError without a wait."""

    async def handle(_: web.Request) -> web.Response:
        return web.Response(status=429, text="slow down", headers={"Retry-After": HUGE_DATE})

    async with api(handle) as url, client_of(url) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.get_task("1234")
    assert caught.value.retry_after is None


@pytest.mark.parametrize("header", ["ETag", "Last-Modified"])
async def test_a_validator_holding_a_control_character_does_not_break_the_resume(
    tmp_path: Path, header: str
) -> None:
    """A download whose first answer's ETag holds a control character resumes, or starts over.

    The ETag was sent back in If-Range: aiohttp refused the header with a raw ValueError,
    out of download().
    """
    video = mp4(200_000)
    answers: list[str | None] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        ranged = "range:" in head.lower()
        answers.append("range" if ranged else "whole")
        if ranged:
            start = int(head.lower().split("range: bytes=")[1].split("-")[0])
            part = video[start:]
            writer.write(
                b"HTTP/1.1 206 Partial Content\r\nContent-Type: video/mp4\r\n"
                + f"Content-Range: bytes {start}-{len(video) - 1}/{len(video)}\r\n".encode()
                + f"Content-Length: {len(part)}\r\n\r\n".encode()
                + part
            )
        else:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n"
                + f'{header}: "v1\x1b[2J\x01"\r\nContent-Length: {len(video)}\r\n\r\n'.encode()
                + video[:100_000]
            )
            await writer.drain()
            writer.transport.abort()  # broken off halfway: the next request resumes
            return
        await writer.drain()
        writer.close()

    async with raw_server(serve) as url, client_of(url) as client:
        saved = await client.download(video_at(URL(f"{url}/v.mp4"), len(video)), tmp_path / "v.mp4")
    assert saved.read_bytes() == video
    assert answers[0] == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


async def test_a_destination_that_is_a_fifo_is_refused_and_left_in_place(tmp_path: Path) -> None:
    """A destination that exists as something other than a file is refused, left as it was.

    The finished video was renamed over it: a FIFO (or, for root, ``/dev/null``) replaced
    by a regular file.
    """
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    async with Emulator(seed=6) as emu, fast_client(emu) as client:
        snapshot = await (await client.submit(face_request())).wait()
        with pytest.raises(DownloadError, match="not a regular file"):
            await client.download(snapshot, fifo)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def _videoless_success_api(request: web.Request) -> web.Response:
    """Creates task 1111, then says it succeeded without naming any video."""
    if request.path == "/v1/video_generation":
        return web.json_response({"task_id": "1111", "base_resp": {"status_code": 0}})
    if request.path == "/v2/video_generation":
        return web.json_response({"task_id": "1111"})
    if request.path.startswith("/v2/query/video_generation/"):
        task = {"id": "1111", "model": "MiniMax-H3", "status": "succeeded", "created_at": 1}
        return web.json_response({"task": task})
    body = {"task_id": "1111", "status": "Success", "file_id": "", "base_resp": {"status_code": 0}}
    return web.json_response(body)


@pytest.mark.parametrize("model", ["S2V-01", "MiniMax-H3"])
async def test_a_success_that_names_no_video_is_never_taken_for_one(
    tmp_path: Path, model: str
) -> None:
    """A query saying Success with no file id (V1) or no content URL (V2) is not a video.

    generate() raised a raw AssertionError (V1) or ValueError (V2), and get_task() returned
    a success nothing can be downloaded from. Such an answer may be a cache's on the way:
    get_task() asks again and then raises the typed error; a wait goes on asking until
    its own timeout, and saves nothing.
    """

    async def handle(request: web.Request) -> web.Response:
        return _videoless_success_api(request)

    request: AnyRequest = (
        face_request()
        if model == "S2V-01"
        else H3Request("hi", references=["https://example.com/f.jpg"])
    )
    async with api(handle) as url, client_of(url) as client:
        with pytest.raises(TaskTimeoutError):
            await client.generate(request, tmp_path, timeout=1)
        with pytest.raises(MismatchedAnswerError, match="no video"):
            await client.get_task("1111")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("keys", [(), ("",), ("  ",), ("emulator\nkey",)])
def test_the_emulator_refuses_keys_no_request_could_carry(keys: tuple[str, ...]) -> None:
    """No key, an empty or blank key, or one with a line break is refused when configured.

    Each was accepted: the emulator then refused every request (``Emulator.api_key`` of
    no keys raised IndexError), and the command line printed "accepted API key: " blank.
    """
    with pytest.raises(ConfigurationError, match="api_keys"):
        EmulatorConfig(api_keys=keys)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Durations.from_speed("inf"),
        lambda: Durations.from_speed("1e400"),
        lambda: Durations(processing=math.inf),
        lambda: Durations(queueing=(1.0, math.inf)),
        lambda: Durations(preparing=math.nan),
    ],
    ids=["speed-inf", "speed-1e400", "processing-inf", "queueing-to-inf", "preparing-nan"],
)
def test_durations_that_never_end_or_are_no_number_are_refused(
    build: Callable[[], Durations],
) -> None:
    """An infinite or NaN duration is refused when the durations are made.

    Each was accepted; with an infinite one every create was an internal error (1000 on V1,
    HTTP 500 on V2).
    """
    with pytest.raises(ValueError, match=r"duration|speed"):
        build()


def test_the_emulator_command_line_refuses_an_infinite_speed() -> None:
    """``--speed inf`` is a usage error, not an emulator whose every create fails."""
    done = subprocess.run(
        [sys.executable, "-m", "minimax_s2v.emulator", "--speed", "inf", "--port", "0"],
        capture_output=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert b"Traceback" not in done.stderr
    assert b"--speed" in done.stderr.splitlines()[-1]


BAD_IDS = ["../../v1/files/retrieve", "1/../../../v1/video_generation", "1?x=2", "1&file_id=2", ""]


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_an_id_that_is_no_string_of_digits_is_refused_before_any_request(
    bad_id: str,
) -> None:
    """Task and file ids given to the client are digits; anything else sends nothing.

    A V2 task id became a path segment: ``1/../../../v1/video_generation`` made an
    authenticated GET of ``/v2/v1/video_generation``, ``..`` walking out of the query path.
    """
    requests: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        requests.append(request.raw_path)
        return web.json_response({"base_resp": {"status_code": 0}})

    async with api(handle) as url, client_of(url) as client:
        with pytest.raises(ValueError, match="not a task or file id"):
            client.task(bad_id, model="MiniMax-H3")
        with pytest.raises(ValueError, match="not a task or file id"):
            await client.get_task(bad_id)
        with pytest.raises(ValueError, match="not a task or file id"):
            await client.get_file(bad_id)
        with pytest.raises(ValueError, match="not a task or file id"):
            await client.download(bad_id, Path("unused.mp4"))
    assert requests == []
