"""A submission's body built in slices is the plain JSON body, byte for byte, and goes out whole."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import mmap
import os
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from minimax_s2v import (
    AnyRequest,
    Client,
    H3Request,
    InvalidRequestError,
    VideoRequest,
    validate_request,
)
from minimax_s2v._preflight import decode_base64
from minimax_s2v._submission import (
    _in_worker,
    build_submission,
    prepare_submission,
    remote_submission,
)
from minimax_s2v._wire import request_payload
from tests.client_setup import TEST_RETRY
from tests.profiles import examples


def plain_body(request: VideoRequest, callback_url: str | None) -> bytes:
    """The body as one string, the way submissions were built before (the reference)."""
    payload = request_payload(validate_request(request))
    if callback_url is not None:
        payload["callback_url"] = callback_url
    return json.dumps(payload, separators=(",", ":")).encode()


def plain_journal(body: bytes) -> dict[str, Any]:
    """The journal entry of ``body``: each data URL replaced by its size and digest."""
    payload: dict[str, Any] = json.loads(body)
    for subject in payload["subject_reference"]:
        images = []
        for image in subject["image"]:
            if image[:5].lower() == "data:":
                digest = hashlib.sha256(image.encode()).hexdigest()[:16]
                head = image.split(",", 1)[0]
                images.append(f"{head},<{len(image)} characters, sha256 {digest}>")
            else:
                images.append(image)
        subject["image"] = images
    return payload


def noise_png(path: Path, width: int, height: int) -> Path:
    """An incompressible PNG: its size is its pixels (3 bytes each)."""
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(
        path, compress_level=1
    )
    return path


@pytest.fixture(scope="module")
def face(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1.6 MB PNG face: its base64 text spans several slices."""
    return noise_png(tmp_path_factory.mktemp("faces") / "face.png", 740, 740)


# Data URL headers, one with characters JSON must escape.
HEADERS = [
    "data:image/png;base64,",
    'data:image/png;name="a\\b\u00e9";base64,',
    "DATA:image/png;BASE64,",
]


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prompt=st.none() | st.text(max_size=40),
    local=st.booleans(),
    header=st.sampled_from(HEADERS),
    callback=st.none() | st.just("https://hooks.example.com/cb/n0nce/t0ken"),
    optimizer=st.none() | st.booleans(),
)
def test_sliced_body_is_the_plain_body(  # noqa: PLR0917 - one argument per strategy
    face: Path,
    prompt: str | None,
    local: bool,
    header: str,
    callback: str | None,
    optimizer: bool | None,
) -> None:
    """Local file or data URL, any prompt and header: same bytes, fingerprint and journal."""
    image = str(face) if local else header + base64.b64encode(face.read_bytes()).decode()
    request = VideoRequest(subject=image, prompt=prompt, prompt_optimizer=optimizer)
    prepared = build_submission(request, callback)
    expected = plain_body(request, callback)
    assert prepared.body == expected
    assert prepared.fingerprint == hashlib.sha256(expected).hexdigest()[:32]
    assert prepared.journal_payload == plain_journal(expected)


def test_remote_image_needs_no_slices() -> None:
    """A request naming its face by URL is built the same way, with nothing inline."""
    request = VideoRequest(subject="https://example.com/face.jpg", prompt='say "hi"')
    prepared = build_submission(request, None)
    assert prepared.body == plain_body(request, None)
    assert prepared.journal_payload == json.loads(prepared.body)


def test_journal_holds_no_copy_of_the_image(face: Path) -> None:
    """The journal keeps a short summary of an inline image, never the image."""
    prepared = build_submission(VideoRequest(subject=str(face)), None)
    (image,) = prepared.journal_payload["subject_reference"][0]["image"]
    assert len(image) < 100
    assert "characters, sha256" in image
    assert "body" not in repr(prepared)


def test_a_file_changed_after_its_check_is_refused(face: Path, tmp_path: Path) -> None:
    """The file is checked again when the body is built: a swapped file sends nothing."""
    path = tmp_path / "swapped.png"
    path.write_bytes(face.read_bytes())
    request = VideoRequest(subject=str(path))
    validate_request(request)
    Image.new("RGB", (100, 100)).save(path)  # now too small
    with pytest.raises(InvalidRequestError, match="short side"):
        build_submission(request, None)


@asynccontextmanager
async def serving(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], *paths: str
) -> AsyncIterator[str]:
    """A small server answering POSTs to ``paths`` (the V1 create path by default)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    for path in paths or ("/v1/video_generation",):
        app.router.add_post(path, handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_large_body_arrives_whole(tmp_path: Path) -> None:
    """A 14.5 MB face goes out in slices: the server receives exactly the body journaled."""
    face = noise_png(tmp_path / "big.png", 2200, 2200)
    received: list[bytes] = []

    async def create(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({"task_id": "1234", "base_resp": {"status_code": 0}})

    request = VideoRequest(subject=str(face), prompt="smile")
    async with serving(create) as url, Client("k", base_url=url, retry=TEST_RETRY) as client:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            task = await client.submit(request)
        (stored,) = await client.store.unfinished()
    (body,) = received
    assert body == plain_body(request, None)
    assert stored.submission is not None
    assert stored.submission.fingerprint == hashlib.sha256(body).hexdigest()[:32]
    assert task.task_id == "1234"
    # aiohttp warns that a large body given as plain bytes "might lock the event loop".
    assert not [w for w in seen if issubclass(w.category, ResourceWarning)]


async def test_a_large_upload_cancelled_midway_leaves_the_client_working(tmp_path: Path) -> None:
    """Cancelled while its 14.5 MB body is going out, a submission ends cleanly.

    Nothing is left running or failing in the background (the body is let go of while a
    view of it may still be in the transport), and the next submission goes out whole.
    """
    face = noise_png(tmp_path / "big.png", 2200, 2200)
    started = asyncio.Event()
    received: list[bytes] = []

    async def create(request: web.Request) -> web.Response:
        if not started.is_set():
            started.set()
            await request.content.read(64 * 1024)
            await asyncio.sleep(30)  # reads no more: the upload stalls until cancelled
        received.append(await request.read())
        return web.json_response({"task_id": "1234", "base_resp": {"status_code": 0}})

    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    request = VideoRequest(subject=str(face), prompt="smile")
    try:
        async with (
            serving(create) as url,
            Client("k", base_url=url, retry=TEST_RETRY) as client,
        ):
            first = asyncio.ensure_future(client.submit(request))
            await asyncio.wait_for(started.wait(), 30)
            await asyncio.sleep(0.1)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            task = await client.submit(request)
    finally:
        loop.set_exception_handler(None)
    assert task.task_id == "1234"
    assert received == [plain_body(request, None)]
    assert unhandled == []


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="memory files are Linux's")
async def test_a_large_body_is_unmapped_once_released(tmp_path: Path) -> None:
    """Built off the loop, a large body lives in a memory map that release() unmaps.

    Unmapping happens in the worker thread and waits for no one; a map still in use (a
    view of it exported) stays mapped instead of failing.
    """
    face = noise_png(tmp_path / "big.png", 1000, 1000)
    request = VideoRequest(subject=str(face), prompt="smile")
    prepared = await prepare_submission(request, None, "nonce-0123456789")
    body = prepared.body
    assert isinstance(body, mmap.mmap)
    assert bytes(body) == plain_body(request, None) == build_submission(request, None).body
    view = memoryview(body)
    prepared.release()
    await _in_worker(lambda: None)  # the worker has done what was queued before
    assert not body.closed
    assert view[:1].tobytes() == b"{"
    view.release()
    prepared.release()
    await _in_worker(lambda: None)
    assert body.closed


@settings(max_examples=examples(300), deadline=None)
@given(
    text=st.text(alphabet="ABCab+/09=-\n\u00e9", max_size=40)
    | st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()),
    slice_chars=st.sampled_from([4, 8, 12]),
)
def test_sliced_base64_decoding_is_the_plain_one(text: str, slice_chars: int) -> None:
    """A data URL decoded a slice at a time: same bytes, same refusals, as in one call."""
    try:
        expected: bytes | None = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        expected = None
    try:
        got: bytes | None = decode_base64(text, slice_chars)
    except (binascii.Error, ValueError):
        got = None
    assert got == expected


@pytest.mark.parametrize("callback", [None, "https://hooks.example.com/cb/n0nce123/t0ken"])
@pytest.mark.parametrize(
    "request_",
    [
        VideoRequest(subject="https://example.com/face.jpg", prompt='say "hi" ✓'),
        VideoRequest(subject="HTTPS://example.com/b.png", prompt_optimizer=False),
        H3Request("a walk", references=["https://example.com/face.jpg", "mm_file://123"]),
        H3Request(
            "a walk",
            first_frame="https://example.com/first.jpg",
            ratio="16:9",
            aigc_watermark=True,
        ),
    ],
)
def test_a_request_of_urls_only_is_built_as_the_checked_path_builds_it(
    request_: AnyRequest, callback: str | None
) -> None:
    """The quick path for URLs only gives the same bytes, fingerprint and journal."""
    quick = remote_submission(request_, callback, "shown")
    checked = build_submission(request_, callback, "shown")
    assert quick == checked
    assert quick.body == checked.body
