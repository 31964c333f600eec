"""The emulator's output video: a real 6 s 720p H.264 MP4, padded to any size, streamed."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from functools import cache
from importlib.resources import files

__all__ = ["VideoBytes"]

_CHUNK = 256 * 1024
_ZEROS = bytes(_CHUNK)
_MAX_BOX = 2**32 - 1


@cache
def _sample() -> bytes:
    # ftyp + moov + mdat of a playable clip, made once with:
    # ffmpeg -f lavfi -i gradients=size=1280x720:rate=24:duration=6:speed=0.02 -c:v libx264
    #   -preset veryslow -crf 40 -pix_fmt yuv420p -movflags +faststart -an sample.mp4
    return files("minimax_s2v.emulator").joinpath("sample.mp4").read_bytes()


class VideoBytes:
    """The bytes of one generated MP4 of ``size`` bytes, produced on demand.

    The file is the bundled clip followed by an ISO BMFF ``free`` box of zeros, so that any
    player opens it whatever its size; no more than one chunk is ever in memory.
    """

    def __init__(self, size: int) -> None:
        head = _sample()
        padding = size - len(head)
        if padding < 8 or padding > _MAX_BOX:
            padding = 0
        self._head = head + (struct.pack(">I4s", padding, b"free") if padding else b"")
        self.size = len(head) + padding

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes of ``[start, end)`` in chunks of at most 256 KiB."""
        stop = self.size if end is None else min(end, self.size)
        position = start
        head = self._head
        while position < stop:
            if position < len(head):
                chunk = head[position : min(stop, len(head), position + _CHUNK)]
            else:
                chunk = _ZEROS[: min(_CHUNK, stop - position)]
            position += len(chunk)
            yield chunk
