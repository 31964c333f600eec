"""Small media files for tests: an MP4 (ISO BMFF) of any size."""

from __future__ import annotations

import struct


def mp4(size: int, fill: int = 0) -> bytes:
    """An ISO BMFF file of ``size`` bytes: an ``ftyp`` box, then a ``free`` box of ``fill``."""
    head = struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 0x200)
    return head + struct.pack(">I4s", size - 16, b"free") + bytes([fill]) * (size - 24)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def clip(seconds: float, *, brand: bytes = b"isom", size: int = 0, timescale: int = 1000) -> bytes:
    """A tiny MP4 (or MOV with ``brand=b"qt  "``): ftyp, moov/mvhd of ``seconds``, then mdat.

    With ``size``, the mdat is padded so that the file has exactly ``size`` bytes.
    """
    ftyp = _box(b"ftyp", brand + struct.pack(">I", 0x200) + brand + b"mp41")
    mvhd = _box(
        b"mvhd",
        struct.pack(">B3xIIII", 0, 0, 0, timescale, round(seconds * timescale)) + bytes(80),
    )
    head = ftyp + _box(b"moov", mvhd)
    fill = max(0, size - len(head) - 8) if size else 16
    return head + struct.pack(">I4s", 8 + fill, b"mdat") + bytes(fill)


def wav(seconds: float, *, rate: int = 8000) -> bytes:
    """A real mono 8-bit WAV of ``seconds`` of silence, written by the standard library."""
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(rate)
        out.writeframes(bytes([128]) * round(seconds * rate))
    return buffer.getvalue()


def mp3(seconds: float) -> bytes:
    """A constant-bit-rate MP3 stream (128 kbit/s, 44.1 kHz) of ``seconds``: frame headers only."""
    frame = b"\xff\xfb\x90\x64" + bytes(413)  # 417 bytes: one MPEG-1 layer III frame
    frames = round(seconds * 128_000 / 8 / len(frame))
    return frame * frames


def heic(width: int, height: int) -> bytes:
    """The header of a HEIC image: ftyp, then meta > iprp > ipco > ispe with its size."""
    ftyp = _box(b"ftyp", b"heic" + bytes(4) + b"mif1heic")
    ispe = _box(b"ispe", bytes(4) + struct.pack(">II", width, height))
    meta = _box(b"meta", bytes(4) + _box(b"hdlr", bytes(24)) + _box(b"iprp", _box(b"ipco", ispe)))
    return ftyp + meta + _box(b"mdat", bytes(32))
