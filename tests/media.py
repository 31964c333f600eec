"""Small media files for tests: an MP4 (ISO BMFF) of any size."""

from __future__ import annotations

import struct


def mp4(size: int, fill: int = 0) -> bytes:
    """An ISO BMFF file of ``size`` bytes: an ``ftyp`` box, then a ``free`` box of ``fill``."""
    head = struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 0x200)
    return head + struct.pack(">I4s", size - 16, b"free") + bytes([fill]) * (size - 24)
