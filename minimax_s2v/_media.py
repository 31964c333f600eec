"""Video and audio format and duration from header bytes alone (MP4/MOV, WAV, MP3); no decoding.

Images are read by ``_images``; this module reads what MiniMax-H3 takes besides: the container
of a clip and how long it lasts. Nothing is decoded: MP4/MOV give their duration in ``mvhd``,
WAV in its ``fmt``/``data`` chunks, MP3 in a Xing/Info header or, for constant bit rate, from
the size and the first frame's bit rate. Codec and frame rate are not checked here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import attrs

__all__ = ["MediaInfo", "iso_boxes", "read_audio_info", "read_video_info"]

_MOV_BRANDS = frozenset({b"qt  "})
# Old QuickTime files may open with one of these atoms instead of ftyp.
_MOV_FIRST_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_MP3_BITRATES = {  # kbit/s by (version is MPEG-1, layer 3) and index
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


@attrs.frozen
class MediaInfo:
    """What a clip's header says: its container (``mp4``, ``mov``, ``wav``, ``mp3``), seconds."""

    format: str
    duration: float | None


def iso_boxes(
    data: bytes, start: int = 0, end: int | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """The ISO BMFF boxes in ``data[start:end]``: (type, payload start, box end) each.

    A box whose size runs past the data is yielded clipped to it (a header read from a
    file's first bytes); a size that cannot be a box stops the walk.
    """
    stop = len(data) if end is None else min(end, len(data))
    pos = start
    while pos + 8 <= stop:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > stop:
                return
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            header = 16
        elif size == 0:
            size = stop - pos
        if size < header:
            return
        yield kind, pos + header, min(pos + size, stop)
        pos += size


def _child(data: bytes, kind: bytes, start: int, end: int) -> tuple[int, int] | None:
    for found, payload, box_end in iso_boxes(data, start, end):
        if found == kind:
            return payload, box_end
    return None


def read_video_info(data: bytes) -> MediaInfo:
    """Read the container and duration of an MP4 or MOV file.

    Raises:
        ValueError: not an MP4/MOV file (the message says what it seems to be).
    """
    first = data[4:8]
    if first == b"ftyp":
        brand = data[8:12]
        kind = "mov" if brand in _MOV_BRANDS else "mp4"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
            raise ValueError("an image (HEIF/AVIF), not a video: use MP4 or MOV")
    elif first in _MOV_FIRST_ATOMS:
        kind = "mov"
    else:
        raise ValueError("not an MP4 or MOV video")
    moov = _child(data, b"moov", 0, len(data))
    duration = None
    if moov is not None:
        mvhd = _child(data, b"mvhd", *moov)
        if mvhd is not None:
            duration = _mvhd_seconds(data[mvhd[0] : mvhd[1]])
    return MediaInfo(kind, duration)


def _mvhd_seconds(box: bytes) -> float | None:
    if not box:
        return None
    if box[0] == 1 and len(box) >= 32:
        timescale, length = struct.unpack(">IQ", box[20:32])
    elif len(box) >= 20:
        timescale, length = struct.unpack(">II", box[12:20])
    else:
        return None
    return float(length) / timescale if timescale else None


def read_audio_info(data: bytes, size: int | None = None) -> MediaInfo:
    """Read the format and duration of a WAV or MP3 file (``size``: the whole file's bytes).

    Raises:
        ValueError: not a WAV or MP3 file.
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return MediaInfo("wav", _wav_seconds(data))
    if data[:3] == b"ID3" or (len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return MediaInfo("mp3", _mp3_seconds(data, len(data) if size is None else size))
    raise ValueError("not a WAV or MP3 audio")


def _wav_seconds(data: bytes) -> float | None:
    pos, byte_rate, length = 12, 0, None
    while pos + 8 <= len(data):
        kind, chunk = struct.unpack("<4sI", data[pos : pos + 8])
        if kind == b"fmt " and pos + 20 <= len(data):
            (byte_rate,) = struct.unpack("<I", data[pos + 16 : pos + 20])
        elif kind == b"data":
            length = chunk
            break
        pos += 8 + chunk + (chunk & 1)
    if length is None or not byte_rate:
        return None
    return float(length) / byte_rate


def _mp3_seconds(data: bytes, size: int) -> float | None:
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        tag = data[6:10]
        pos = 10 + ((tag[0] << 21) | (tag[1] << 14) | (tag[2] << 7) | tag[3])
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    header = struct.unpack(">I", data[pos : pos + 4])[0]
    version = (header >> 19) & 3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    bitrate_index, rate_index = (header >> 12) & 15, (header >> 10) & 3
    if version == 1 or rate_index == 3 or bitrate_index in (0, 15):
        return None
    rate = _MP3_RATES[version][rate_index]
    samples = 1152 if version == 3 else 576
    for offset in (36, 21, 13):  # where a Xing/Info header sits, by version and channels
        tag = data[pos + offset : pos + offset + 4]
        if tag in (b"Xing", b"Info") and len(data) >= pos + offset + 12:
            flags, frames = struct.unpack(">II", data[pos + offset + 4 : pos + offset + 12])
            if flags & 1:
                return float(frames * samples) / rate
    bitrate = _MP3_BITRATES[version == 3][bitrate_index] * 1000
    return (size - pos) * 8 / bitrate
