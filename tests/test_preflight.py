"""Preflight validation with real PNG, JPEG and WebP files."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from minimax_s2v import InvalidRequestError, SubjectReference, VideoRequest, validate_request
from minimax_s2v._images import read_image_info

FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def image_bytes(fmt: str, width: int, height: int, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 150, 120)).save(buffer, FORMATS[fmt], **options)
    return buffer.getvalue()


def write_image(tmp_path: Path, fmt: str, width: int, height: int) -> Path:
    path = tmp_path / f"face_{width}x{height}.{fmt}"
    path.write_bytes(image_bytes(fmt, width, height))
    return path


def problems_of(request: VideoRequest) -> dict[str, str]:
    with pytest.raises(InvalidRequestError) as info:
        validate_request(request)
    return {p.field: p.message for p in info.value.problems}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize(("width", "height"), [(512, 512), (301, 752), (1000, 400), (720, 1280)])
def test_good_local_image_becomes_data_url(
    tmp_path: Path, fmt: str, width: int, height: int
) -> None:
    """A valid local file is read, sniffed and sent as a data URL of its real type."""
    path = write_image(tmp_path, fmt, width, height)
    ready = validate_request(VideoRequest(subject=path, prompt="smile"))
    image = ready.subject[0].image[0]
    mime = "image/jpeg" if fmt == "jpeg" else f"image/{fmt}"
    assert image.startswith(f"data:{mime};base64,")
    assert base64.b64decode(image.split(",", 1)[1]) == path.read_bytes()
    assert ready.prompt == "smile"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (300, 600, "short side"),
        (200, 200, "short side"),
        (400, 1001, "aspect ratio"),
        (1600, 600, "aspect ratio"),
    ],
)
def test_bad_dimensions_rejected(
    tmp_path: Path, fmt: str, width: int, height: int, expected: str
) -> None:
    """Short side of 300 px or less, or an aspect ratio beyond 2:5 to 5:2, is refused."""
    path = write_image(tmp_path, fmt, width, height)
    problems = problems_of(VideoRequest(subject=path))
    assert expected in problems["subject_reference[0].image[0]"]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_header_dimensions_match_pillow(fmt: str) -> None:
    """The header reader agrees with Pillow for every accepted format."""
    for width, height in [(301, 302), (1920, 1080), (777, 1999)]:
        info = read_image_info(image_bytes(fmt, width, height))
        assert (info.format, info.width, info.height) == (fmt, width, height)


def test_lossless_and_extended_webp() -> None:
    """VP8L (lossless) and VP8X (with alpha) WebP headers are read too."""
    lossless = image_bytes("webp", 640, 480, lossless=True)
    assert lossless[12:16] == b"VP8L"
    assert read_image_info(lossless).width == 640
    buffer = io.BytesIO()
    Image.new("RGBA", (500, 900), (1, 2, 3, 128)).save(buffer, "WEBP", exif=b"Exif\x00\x00")
    assert buffer.getvalue()[12:16] == b"VP8X"
    info = read_image_info(buffer.getvalue())
    assert (info.width, info.height) == (500, 900)


def test_progressive_jpeg_with_exif() -> None:
    """A progressive JPEG with a large EXIF block before the frame header is read."""
    data = image_bytes("jpeg", 800, 600, progressive=True, exif=b"Exif\x00\x00" + b"\x00" * 30_000)
    info = read_image_info(data)
    assert (info.width, info.height) == (800, 600)


def test_oversize_file_rejected_without_reading(tmp_path: Path) -> None:
    """A file of 20 MB or more is refused by its size."""
    path = tmp_path / "big.jpg"
    with path.open("wb") as file:
        file.write(image_bytes("jpeg", 640, 640))
        file.truncate(20_000_000)
    problems = problems_of(VideoRequest(subject=path))
    assert "must be under 20 MB" in problems["subject_reference[0].image[0]"]


def test_oversize_data_url_rejected() -> None:
    """A data URL whose decoded bytes reach 20 MB is refused."""
    data = image_bytes("png", 640, 640).ljust(20_000_001, b"\x00")
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    assert (
        "must be under" in problems_of(VideoRequest(subject=url))["subject_reference[0].image[0]"]
    )


def test_good_data_url_kept() -> None:
    """A valid data URL is checked and sent unchanged."""
    url = "data:image/webp;base64," + base64.b64encode(image_bytes("webp", 600, 600)).decode()
    assert validate_request(VideoRequest(subject=url)).subject[0].image == (url,)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:image/png,abc", "base64"),
        ("data:image/gif;base64,R0lGOD", "image/gif"),
        ("data:image/png;base64,!!!", "not valid base64"),
        ("data:image/png;base64", "','"),
        ("data:image/png;base64," + base64.b64encode(b"GIF89a....").decode(), "GIF"),
    ],
)
def test_bad_data_urls(url: str, message: str) -> None:
    """Malformed data URLs each get a clear message."""
    assert message in problems_of(VideoRequest(subject=url))["subject_reference[0].image[0]"]


def test_remote_urls_not_fetched() -> None:
    """http(s) URLs are accepted as they are; a broken one is reported."""
    good = VideoRequest(subject="https://cdn.example.com/face.jpg")
    assert validate_request(good) == good
    assert (
        "not a valid"
        in problems_of(VideoRequest(subject="https://"))["subject_reference[0].image[0]"]
    )


def test_missing_and_non_image_files(tmp_path: Path) -> None:
    """A missing path and a text file are reported, naming the path."""
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    request = VideoRequest(subject=SubjectReference((str(tmp_path / "nope.jpg"), str(text))))
    problems = problems_of(request)
    assert "no such file" in problems["subject_reference[0].image[0]"]
    assert "not a JPG, PNG or WebP" in problems["subject_reference[0].image[1]"]
    assert "exactly one image" in problems["subject_reference[0].image"]


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    """A 2001-character prompt, two subjects and a wrong type all appear in one error."""
    face = write_image(tmp_path, "png", 512, 512)
    request = VideoRequest(
        subject=[SubjectReference(face, type="object"), SubjectReference(face)],
        prompt="x" * 2001,
        model="S2V-02",
        callback_url="ftp://host/cb",
    )
    problems = problems_of(request)
    assert "2001 characters" in problems["prompt"]
    assert "exactly one subject" in problems["subject_reference"]
    assert "'character'" in problems["subject_reference[0].type"]
    assert "S2V-01" in problems["model"]
    assert "http(s)" in problems["callback_url"]


def test_prompt_of_2000_characters_passes() -> None:
    """Exactly 2000 characters is allowed."""
    request = VideoRequest(subject="https://example.com/f.jpg", prompt="y" * 2000)
    assert validate_request(request) is not None
