"""Task and file ids from the API are digits of bounded length, and never leave a directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from minimax_s2v import (
    Client,
    ResponseValidationError,
    RetryPolicy,
    SubmissionUncertainError,
    VideoRequest,
)
from minimax_s2v._download import target_path
from minimax_s2v._wire import parse_callback, parse_file, parse_snapshot, parse_submit
from tests.media import mp4
from tests.profiles import examples

HOSTILE_IDS: list[object] = [
    "../../../../tmp/x",
    "../escaped",
    "1/2",
    "..",
    "12.mp4",
    "\uff11\uff12",  # full-width digits: isdigit() says yes, but they are no id
    "1" * 41,
    " 12",
    "12\n",
    "\ud800",
    -1,
    10**40,
    True,
    1.5,
]
OK = {"status_code": 0, "status_msg": "success"}


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_hostile_task_id_is_a_validation_error(bad: object) -> None:
    """Submit answers, query answers and callbacks with a task id that is not digits: refused."""
    with pytest.raises(ResponseValidationError, match=r"task.id"):
        parse_submit({"task_id": bad, "base_resp": OK})
    for parse in (parse_snapshot, parse_callback):
        with pytest.raises(ResponseValidationError, match=r"task.id"):
            parse({"task_id": bad, "status": "Success", "file_id": "1", "base_resp": OK})


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_hostile_file_id_is_a_validation_error(bad: object) -> None:
    """A file id that is not digits is refused in the query answer and in the retrieve."""
    with pytest.raises(ResponseValidationError, match=r"file.id"):
        parse_snapshot({"task_id": "1", "status": "Success", "file_id": bad, "base_resp": OK})
    info = {"file_id": bad, "download_url": "https://example.com/v.mp4"}
    with pytest.raises(ResponseValidationError, match=r"file.id"):
        parse_file({"file": info, "base_resp": OK}, datetime.now(UTC))


def test_usual_ids_still_read() -> None:
    """The ids MiniMax sends, as strings or integers, are read as before."""
    assert parse_submit({"task_id": "106916112212032", "base_resp": OK}) == "106916112212032"
    assert parse_submit({"task_id": 106916112212032, "base_resp": OK}) == "106916112212032"
    info = {"file_id": "176844028768320", "download_url": "https://example.com/v.mp4"}
    assert parse_file({"file": info}, datetime.now(UTC)).file_id == 176844028768320


@settings(max_examples=examples(500))
@given(st.text(max_size=60))
def test_no_name_leaves_the_directory(name: str) -> None:
    """Whatever the name, a file saved into a directory is directly inside it, or refused."""
    directory = Path("/nonexistent-dir-of-the-test")
    for dest in (f"{directory}/", directory):
        try:
            path = target_path(dest, name)
        except ValueError:
            continue
        if isinstance(dest, str):  # a trailing slash: a directory
            assert path.parent == directory
            assert path.name == f"{name}.mp4"
            assert name.isascii()
            assert name.isdigit()


@pytest.fixture
async def hostile_api() -> AsyncIterator[tuple[URL, dict[str, Any]]]:
    """An API that answers every submission with a hostile task id, and serves any file."""
    settings: dict[str, Any] = {"task_id": "../escaped"}
    body = mp4(20_000)

    async def submit(_: web.Request) -> web.Response:
        return web.json_response({"task_id": settings["task_id"], "base_resp": OK})

    async def retrieve(request: web.Request) -> web.Response:
        info = {
            "file_id": 176844028768320,
            "bytes": len(body),
            "download_url": str(request.url.with_path("/v.mp4").with_query(None)),
        }
        return web.json_response({"file": info, "base_resp": OK})

    async def video(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="video/mp4")

    app = web.Application()
    app.router.add_post("/v1/video_generation", submit)
    app.router.add_get("/v1/files/retrieve", retrieve)
    app.router.add_get("/v.mp4", video)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    yield URL.build(scheme="http", host="127.0.0.1", port=port), settings
    await runner.cleanup()


async def test_generate_with_a_hostile_task_id_writes_nothing(
    hostile_api: tuple[URL, dict[str, Any]], tmp_path: Path
) -> None:
    """A submit answer with task id ``../escaped`` is refused; nothing is written anywhere."""
    url, _ = hostile_api
    out = tmp_path / "out"
    out.mkdir()
    request = VideoRequest(subject="https://example.com/face.jpg", prompt="hi")
    async with Client("k" * 20, base_url=url, retry=RetryPolicy.never()) as client:
        with pytest.raises(SubmissionUncertainError, match="no readable task id") as caught:
            await client.generate(request, dest=out)
    assert isinstance(caught.value.__cause__, ResponseValidationError)
    assert "task id" in str(caught.value.__cause__)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out"]


@pytest.mark.parametrize("file_id", ["../escaped", "..", "1/2", "\uff11"])
async def test_download_named_after_a_hostile_id_is_refused(
    hostile_api: tuple[URL, dict[str, Any]], tmp_path: Path, file_id: str
) -> None:
    """Downloading ``"../escaped"`` into a directory never names a file after it."""
    url, _ = hostile_api
    out = tmp_path / "out"
    out.mkdir()
    async with Client("k" * 20, base_url=url, retry=RetryPolicy.never()) as client:
        with pytest.raises(ValueError, match="not a task or file id"):
            await client.download(file_id, out)
        saved = await client.download("176844028768320", f"{out}/")
    assert saved == out / "176844028768320.mp4"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "out",
        "out/176844028768320.mp4",
    ]


def test_trailing_slash_means_a_new_directory(tmp_path: Path) -> None:
    """``out/`` that does not exist yet is a directory to save into, not a file name."""
    assert target_path(f"{tmp_path}/new/", "123") == tmp_path / "new" / "123.mp4"
    assert target_path(tmp_path, "123") == tmp_path / "123.mp4"
    assert target_path(tmp_path / "v.mp4", "not an id") == tmp_path / "v.mp4"
