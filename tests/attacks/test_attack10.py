"""Hostile download hosts, API hosts and interruptions that earlier attacks did not try."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from minimax_s2v import DownloadError
from tests.media import mp4
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
