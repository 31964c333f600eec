"""Hostile download hosts, API hosts and interruptions that earlier attacks did not try."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.request import urlopen

import pytest
from aiohttp import web
from PIL import Image

from minimax_s2v import DownloadError
from minimax_s2v.cli import EXIT
from tests.media import mp4
from tests.processes import ROOT, emulator_process
from tests.test_cli_interrupt import batch_file
from tests.test_download_hostile import (
    Handler,
    HostileServer,
    assert_no_leftovers,
    download,
    serve,
    video_at,
)

__all__ = ["serve"]  # the fixture, imported to be used here


async def test_a_resumed_206_that_sends_more_than_its_total_is_not_saved(
    serve: Callable[[Handler], Awaitable[HostileServer]], tmp_path: Path
) -> None:
    """A resumed 206 whose body runs past the total it declares is never spliced into the file.

    The retrieve reported no size (``bytes`` can be 0): only the first answer's length and
    the Content-Range total say where the file ends. A body beyond them is another file (or
    garbage): the video must be the one file, or a typed error, never a longer splice.
    """
    body = mp4(20_000)
    half = len(body) // 2

    async def cut_then_overflow(request: web.Request) -> web.StreamResponse:
        if "Range" not in request.headers:
            response = web.StreamResponse(headers={"Content-Length": str(len(body))})
            await response.prepare(request)
            await response.write(body[:half])
            assert request.transport is not None
            request.transport.close()  # broken off mid-file: the client resumes
            return response
        # Chunked (no Content-Length): the declared total is the only bound.
        response = web.StreamResponse(
            status=206, headers={"Content-Range": f"bytes {half}-{len(body) - 1}/{len(body)}"}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(body[half:] + b"spliced garbage " * 1000)
        await response.write_eof()
        return response

    server = await serve(cut_then_overflow)
    dest = tmp_path / "v.mp4"
    try:
        await download(video_at(server.url), dest)
    except DownloadError:
        assert_no_leftovers(tmp_path)
    else:
        assert dest.read_bytes() == body


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://127.0.0.1/v.mp4", "data:video/mp4;base64,AAAA"]
)
async def test_a_redirect_to_another_scheme_is_a_download_error_asked_once(
    serve: Callable[[Handler], Awaitable[HostileServer]], tmp_path: Path, location: str
) -> None:
    """A download URL redirecting to no HTTP URL is the host's answer, not a broken connection.

    Taken for a broken exchange, it was asked again as many times as the retry policy
    allows, and ended as a TransportError that said the connection kept failing.
    """

    async def elsewhere(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": location})

    server = await serve(elsewhere)
    with pytest.raises(DownloadError, match="redirected"):
        await download(video_at(server.url), tmp_path / "v.mp4")
    assert len(server.requests) == 1
    assert_no_leftovers(tmp_path)


@pytest.mark.slow
def test_sigterm_mid_download_ends_a_batch_as_ctrl_c_does(tmp_path: Path) -> None:
    """SIGTERM (a service manager's stop, ``kill``) while a batch downloads: cleaned up, resumable.

    It killed the process where it stood: the partly written video stayed behind as a
    hidden part file that no later run removes, and no line said how to resume.
    """
    face = tmp_path / "face.png"
    Image.new("RGB", (512, 640), (200, 160, 140)).save(face)
    batch = batch_file(tmp_path, face, 2, "term line")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "minimax_s2v", "batch", str(batch), "--out", str(out)]
    with emulator_process("--speed", "0.01", "--seed", "4", "--download-rate", "20000") as emu:
        command += ["--api-key", "emulator-key", "--base-url", emu.url, "--poll-interval", "0.1"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        first = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        deadline = time.monotonic() + 30
        while not list(out.glob(".*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(out.glob(".*.part")), "no download started"
        first.send_signal(signal.SIGTERM)
        _, first_err = first.communicate(timeout=30)
        assert first.returncode == EXIT["interrupted"], first_err[-2000:]
        assert "run the same command again to resume" in first_err
        assert not list(out.glob(".*.part"))
        second = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, env=env
        )
        with urlopen(f"{emu.url}/_emulator/state?tasks=1", timeout=10) as response:
            tasks = json.load(response)["tasks"]
    assert second.returncode == EXIT["ok"], second.stderr[-2000:]
    assert sorted(task["prompt"] for task in tasks) == ["term line 0", "term line 1"]
    assert sorted(p.name for p in out.glob("*.mp4")) == ["line-0.mp4", "line-1.mp4"]
    assert not list(out.glob(".*.part"))
