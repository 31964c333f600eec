"""MiniMax-H3 preflight with real generated images, a tiny MP4/MOV, WAV and MP3: every limit."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from minimax_s2v import H3Request, InvalidRequestError, validate_request
from minimax_s2v._preflight import H3_MAX_BODY_BYTES, check_h3_request
from minimax_s2v._wire import h3_request_payload
from tests.media import clip, heic, mp3, wav

FACE = "https://example.com/face.jpg"


def png(width: int, height: int, *, size: int = 0) -> bytes:
    """A real PNG from Pillow; with ``size``, padded after IEND to exactly that many bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 150, 120)).save(buffer, "PNG")
    data = buffer.getvalue()
    return data + bytes(size - len(data)) if size else data


def image(fmt: str, width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 60, 30)).save(buffer, fmt)
    return buffer.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def problems_of(request: H3Request) -> dict[str, str]:
    with pytest.raises(InvalidRequestError) as caught:
        check_h3_request(request)
    return {p.field: p.message for p in caught.value.problems}


def passes(request: H3Request) -> bool:
    try:
        check_h3_request(request)
    except InvalidRequestError:
        return False
    return True


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_local_reference_becomes_a_data_url(tmp_path: Path, fmt: str) -> None:
    """A local reference image is sniffed and sent as a data URL of its real type."""
    path = write(tmp_path, "face.bin", image(fmt, 512, 640))
    ready = validate_request(H3Request("the same woman walks", references=[path]))
    assert isinstance(ready, H3Request)
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[fmt]
    assert ready.references[0].startswith(f"data:{mime};base64,")
    assert base64.b64decode(ready.references[0].split(",", 1)[1]) == Path(path).read_bytes()


def test_heic_is_read_and_sent_as_heic(tmp_path: Path) -> None:
    """HEIC sizes come from its ispe box; it is sent as image/heic."""
    path = write(tmp_path, "face.heic", heic(1024, 768))
    ready = validate_request(H3Request("p", references=[path]))
    assert isinstance(ready, H3Request)
    assert ready.references[0].startswith("data:image/heic;base64,")
    assert (
        "side"
        in problems_of(H3Request("p", references=[write(tmp_path, "s.heic", heic(255, 400))]))[
            "references[0]"
        ]
    )


@pytest.mark.parametrize(
    ("width", "height", "ok"),
    [
        (256, 256, True),
        (255, 400, False),
        (400, 255, False),
        (5760, 5760, True),  # large but cheap: a PNG of one colour
        (5761, 3000, False),
        (1000, 400, True),  # 2.5 exactly
        (1001, 400, False),
        (400, 1000, True),  # 0.4 exactly
        (400, 1001, False),
    ],
)
def test_image_sides_and_aspect_at_and_past_the_edges(
    tmp_path: Path, width: int, height: int, ok: bool
) -> None:
    """Each side 256-5760 px and width/height 0.4-2.5, both ends included."""
    path = write(tmp_path, "face.png", png(width, height))
    assert passes(H3Request("p", references=[path])) is ok


def test_image_size_at_and_past_30_mb(tmp_path: Path) -> None:
    """30 MB is allowed, a byte more is not (the file is not read past its header to say so)."""
    at = write(tmp_path, "at.png", png(512, 512, size=30_000_000))
    past = write(tmp_path, "past.png", png(512, 512, size=30_000_001))
    assert passes(H3Request("p", references=[at]))
    assert "30 MB" in problems_of(H3Request("p", references=[past]))["references[0]"]


def test_formats_refused_with_what_to_use(tmp_path: Path) -> None:
    """A GIF is no image input, a WAV no video, an MP4 no audio: each says what is taken."""
    gif = write(tmp_path, "a.gif", image("GIF", 300, 300))
    found = problems_of(
        H3Request(
            "p",
            references=[gif],
            reference_videos=[write(tmp_path, "v.wav", wav(3))],
            reference_audios=[write(tmp_path, "a.mp4", clip(3))],
        )
    )
    assert "HEIC" in found["references[0]"]
    assert "MP4 or MOV" in found["reference_videos[0]"]
    assert "WAV or MP3" in found["reference_audios[0]"]


@pytest.mark.parametrize(
    ("seconds", "ok"), [(2.0, True), (1.99, False), (15.0, True), (15.01, False)]
)
def test_clip_durations_at_and_past_the_edges(tmp_path: Path, seconds: float, ok: bool) -> None:
    """Each reference clip lasts 2-15 s (read from mvhd / the WAV header)."""
    video = write(tmp_path, "v.mp4", clip(seconds))
    audio = write(tmp_path, "a.wav", wav(seconds))
    assert passes(H3Request("p", references=[FACE], reference_videos=[video])) is ok
    assert passes(H3Request("p", references=[FACE], reference_audios=[audio])) is ok


def test_mov_and_mp3_are_read(tmp_path: Path) -> None:
    """A QuickTime file and a CBR MP3 are accepted, sent as video/quicktime and audio/mpeg."""
    ready = validate_request(
        H3Request(
            "p",
            reference_videos=[write(tmp_path, "v.mov", clip(4, brand=b"qt  "))],
            reference_audios=[write(tmp_path, "a.mp3", mp3(4))],
        )
    )
    assert isinstance(ready, H3Request)
    assert ready.reference_videos[0].startswith("data:video/quicktime;base64,")
    assert ready.reference_audios[0].startswith("data:audio/mpeg;base64,")
    assert (
        "lasts"
        in problems_of(H3Request("p", reference_audios=[write(tmp_path, "b.mp3", mp3(1))]))[
            "reference_audios[0]"
        ]
    )


def test_clip_totals_at_and_past_15_seconds(tmp_path: Path) -> None:
    """The clips of a kind last at most 15 s together."""
    five = write(tmp_path, "5.mp4", clip(5))
    six = write(tmp_path, "6.mp4", clip(6))
    assert passes(H3Request("p", reference_videos=[five, five, five]))
    assert (
        "15 s"
        in problems_of(H3Request("p", reference_videos=[five, five, six]))["reference_videos"]
    )
    a5, a6 = write(tmp_path, "5.wav", wav(5)), write(tmp_path, "6.wav", wav(6))
    assert passes(H3Request("p", reference_audios=[a5, a5, a5]))
    assert "reference_audios" in problems_of(H3Request("p", reference_audios=[a5, a5, a6]))


def test_video_and_audio_sizes_at_and_past_the_edges(tmp_path: Path) -> None:
    """A video of 50 MB and an audio of 15 MB pass their own rule; a byte more does not."""
    at = write(tmp_path, "at.mp4", clip(5, size=50_000_000))
    past = write(tmp_path, "past.mp4", clip(5, size=50_000_001))
    found = problems_of(H3Request("p", reference_videos=[at]))
    assert "reference_videos[0]" not in found  # within its own limit...
    assert "request" in found  # ...but as a data URL it makes the body larger than 64 MB
    assert "50 MB" in problems_of(H3Request("p", reference_videos=[past]))["reference_videos[0]"]
    padded = wav(5)
    audio_at = write(tmp_path, "at.wav", padded + bytes(15_000_000 - len(padded)))
    audio_past = write(tmp_path, "past.wav", padded + bytes(15_000_001 - len(padded)))
    assert passes(H3Request("p", reference_audios=[audio_at]))
    assert (
        "15 MB" in problems_of(H3Request("p", reference_audios=[audio_past]))["reference_audios[0]"]
    )


def test_body_at_and_past_64_mb(tmp_path: Path) -> None:
    """The whole body, inline files as data URLs, may be 64 MB (decimal), not a byte more."""
    first = write(tmp_path, "a.png", png(512, 512, size=24_000_000))
    second = write(tmp_path, "b.png", png(512, 512, size=23_999_000))
    probe = H3Request("x", references=[first, second])
    ready = validate_request(probe)
    body = len(json.dumps(h3_request_payload(ready), separators=(",", ":")).encode())
    room = H3_MAX_BODY_BYTES - body
    assert 0 < room < 6000
    at = H3Request("x" * (1 + room), references=[first, second])
    ready_at = validate_request(at)
    assert len(json.dumps(h3_request_payload(ready_at), separators=(",", ":")).encode()) == (
        H3_MAX_BODY_BYTES
    )
    past = H3Request("x" * (2 + room), references=[first, second])
    assert "64 MB" in problems_of(past)["request"]


def test_counts_at_and_past_their_limits(tmp_path: Path) -> None:
    """9 reference images, 3 videos, 3 audios, 12 files in all; one more of each is refused."""
    face = write(tmp_path, "f.png", png(300, 300))
    video = write(tmp_path, "v.mp4", clip(2))
    audio = write(tmp_path, "a.wav", wav(2))
    assert passes(H3Request("p", references=[face] * 9))
    assert "at most 9" in problems_of(H3Request("p", references=[face] * 10))["references"]
    assert (
        "at most 3" in problems_of(H3Request("p", reference_videos=[video] * 4))["reference_videos"]
    )
    assert (
        "at most 3" in problems_of(H3Request("p", reference_audios=[audio] * 4))["reference_audios"]
    )
    # 12 in all passes only within each kind's limit: 9 + 3 = 12 with room for none more.
    assert passes(
        H3Request("p", references=[face] * 9, reference_videos=[FACE.replace("jpg", "mp4")] * 3)
    )
    found = problems_of(
        H3Request(
            "p", references=[face] * 9, reference_videos=[video] * 2, reference_audios=[audio] * 2
        )
    )
    assert "13 media files" in found["content"]


def test_frames_and_references_never_mixed(tmp_path: Path) -> None:
    """first/last frames and reference inputs are two modes."""
    face = write(tmp_path, "f.png", png(300, 300))
    assert passes(H3Request("p", first_frame=face, last_frame=face))
    assert passes(H3Request("p", last_frame=face))
    assert "mixed" in problems_of(H3Request("p", first_frame=face, references=[face]))["content"]
    assert (
        "mixed" in problems_of(H3Request("p", last_frame=face, reference_audios=[FACE]))["content"]
    )


@pytest.mark.parametrize(
    ("model", "resolution", "ok"),
    [
        ("MiniMax-H3", "768P", True),
        ("MiniMax-H3", "2K", True),
        ("MiniMax-H3", "480P", False),
        ("MiniMax-H3-Max", "480P", True),
        ("MiniMax-H3-Max", "768P", True),
        ("MiniMax-H3-Max", "2K", False),
    ],
)
def test_resolution_per_model(model: str, resolution: str, ok: bool) -> None:
    """H3: 768P or 2K; H3-Max: 480P or 768P."""
    assert passes(H3Request("p", references=[FACE], model=model, resolution=resolution)) is ok


@pytest.mark.parametrize(
    ("model", "duration", "ok"),
    [
        ("MiniMax-H3", 4, True),
        ("MiniMax-H3", 3, False),
        ("MiniMax-H3", 15, True),
        ("MiniMax-H3", 16, False),
        ("MiniMax-H3-Max", 5, True),
        ("MiniMax-H3-Max", 4, False),
        ("MiniMax-H3-Max", 15, True),
        ("MiniMax-H3-Max", 16, False),
    ],
)
def test_duration_per_model(model: str, duration: int, ok: bool) -> None:
    """H3: 4-15 s; H3-Max: 5-15 s, both ends included."""
    assert passes(H3Request("p", references=[FACE], model=model, duration=duration)) is ok


def test_h3_max_with_references_is_not_refused() -> None:
    """MiniMax's pages disagree on H3-Max with references: the SDK leaves it to the API."""
    assert passes(H3Request("p", model="MiniMax-H3-Max", references=[FACE]))


def test_text_only_needs_a_concrete_ratio() -> None:
    """Text only: ratio required and not adaptive; with media, none is needed."""
    assert "ratio" in problems_of(H3Request("a teaser"))
    assert "ratio" in problems_of(H3Request("a teaser", ratio="adaptive"))
    assert passes(H3Request("a teaser", ratio="16:9"))
    assert passes(H3Request("p", references=[FACE]))
    assert "ratio" in problems_of(H3Request("p", references=[FACE], ratio="2:1"))


def test_prompt_at_and_past_7000() -> None:
    """7000 characters pass, 7001 do not; an empty prompt is refused."""
    assert passes(H3Request("é" * 7000, references=[FACE]))
    assert "7001" in problems_of(H3Request("é" * 7001, references=[FACE]))["prompt"]
    assert "prompt" in problems_of(H3Request("   ", references=[FACE]))


def test_every_problem_at_once(tmp_path: Path) -> None:
    """One error lists every problem, each naming its field; nothing was changed."""
    small = write(tmp_path, "s.png", png(200, 200))
    found = problems_of(
        H3Request(
            "",
            model="MiniMax-H3-Max",
            resolution="2K",
            duration=3,
            first_frame=small,
            references=["ftp://x/y.png", "mm_file://abc"],
            callback_url="not a url",
            prompt_expansion_mode="loud",
        )
    )
    assert set(found) >= {
        "prompt",
        "resolution",
        "duration",
        "content",
        "first_frame",
        "references[0]",
        "references[1]",
        "callback_url",
        "prompt_expansion_mode",
    }


def test_data_urls_are_checked_like_files() -> None:
    """A data URL's type, encoding and content are checked from its bytes."""
    face = base64.b64encode(png(300, 300)).decode()
    assert passes(H3Request("p", references=[f"data:image/png;base64,{face}"]))
    found = problems_of(
        H3Request(
            "p",
            references=[
                f"data:image/PNG;base64,{face}",
                "data:image/png;base64,@@",
                f"data:text/plain;base64,{face}",
            ],
            reference_videos=[f"data:video/mp4;base64,{base64.b64encode(clip(1)).decode()}"],
        )
    )
    assert "lowercase" in found["references[0]"]
    assert "base64" in found["references[1]"]
    assert "text/plain" in found["references[2]"]
    assert "lasts" in found["reference_videos[0]"]


def test_uploaded_files_and_urls_pass_unread() -> None:
    """mm_file:// ids and URLs are not fetched: they pass as written."""
    request = H3Request("p", references=["mm_file://123456", FACE])
    assert check_h3_request(request) is request
