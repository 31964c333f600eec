"""Image format and dimensions from the header bytes alone (PNG, JPEG, WebP, HEIC/HEIF)."""

from __future__ import annotations

import struct

import attrs

from ._media import iso_boxes

__all__ = ["H3_MIME_TYPES", "MIME_TYPES", "ImageInfo", "read_image_info"]

#: The formats S2V-01 accepts, with their MIME types.
MIME_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
#: The formats MiniMax-H3 accepts: S2V-01's and HEIC/HEIF.
H3_MIME_TYPES = {**MIME_TYPES, "heic": "image/heic", "heif": "image/heif"}
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"heif"})

# JPEG start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


@attrs.frozen
class ImageInfo:
    """What an image header says: the format (``jpeg``, ``png``, ``webp``) and the size."""

    format: str
    width: int
    height: int


def read_image_info(data: bytes, *, heif: bool = False) -> ImageInfo:
    """Read format and size from the first bytes of an image.

    Args:
        data: the image, or at least its header.
        heif: read HEIC/HEIF too (MiniMax-H3 takes them, S2V-01 does not).

    Raises:
        ValueError: not a PNG, JPEG or WebP image (nor HEIC/HEIF with ``heif``), or a
            header too damaged to read.

    """
    if heif and data[4:8] == b"ftyp" and data[8:12] in _HEIC_BRANDS | _HEIF_BRANDS:
        return _heif(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data[:4] == b"GIF8":
        raise ValueError("GIF is not accepted: use JPG, PNG or WebP")
    if data[:2] == b"BM":
        raise ValueError("BMP is not accepted: use JPG, PNG or WebP")
    raise ValueError("not a JPG, PNG or WebP image")


def _png(data: bytes) -> ImageInfo:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ValueError("truncated PNG header")
    width, height = struct.unpack(">II", data[16:24])
    return ImageInfo("png", width, height)


def _jpeg(data: bytes) -> ImageInfo:
    pos = 2
    size = len(data)
    while pos < size:
        if data[pos] != 0xFF:
            raise ValueError("damaged JPEG header")
        while pos < size and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= size:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        if pos + 2 > size:
            break
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            raise ValueError("damaged JPEG header")
        if marker in _SOF_MARKERS:
            if pos + 7 > size:
                break
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            return ImageInfo("jpeg", width, height)
        pos += length
    raise ValueError("JPEG header has no frame size")


def _webp(data: bytes) -> ImageInfo:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageInfo("webp", width, height)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return ImageInfo("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return ImageInfo("webp", width & 0x3FFF, height & 0x3FFF)
    raise ValueError("truncated or unknown WebP header")


def _heif(data: bytes) -> ImageInfo:
    """The size in the first ``ispe`` property (meta > iprp > ipco), the primary image's."""
    kind = "heic" if data[8:12] in _HEIC_BRANDS else "heif"
    for box, start, end in iso_boxes(data):
        if box != b"meta":
            continue
        for child, child_start, child_end in iso_boxes(data, start + 4, end):  # full box
            if child != b"iprp":
                continue
            for group, group_start, group_end in iso_boxes(data, child_start, child_end):
                if group != b"ipco":
                    continue
                for prop, prop_start, prop_end in iso_boxes(data, group_start, group_end):
                    if prop == b"ispe" and prop_end - prop_start >= 12:
                        width, height = struct.unpack(">II", data[prop_start + 4 : prop_start + 12])
                        return ImageInfo(kind, width, height)
    raise ValueError("HEIF header has no image size (ispe)")
