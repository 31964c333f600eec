"""Preflight validation: find every problem in a request before a paid call is spent."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, overload

import attrs
from yarl import URL

from ._errors import InvalidRequestError, Problem
from ._images import H3_MIME_TYPES, MIME_TYPES, ImageInfo, read_image_info
from ._media import read_audio_info, read_video_info
from ._models import (
    MODEL_H3,
    MODEL_H3_MAX,
    MODEL_S2V_01,
    AnyRequest,
    H3Request,
    SubjectReference,
    VideoRequest,
)
from ._wire import compact_json, h3_request_payload, is_http_url, source_kind

T = TypeVar("T")

__all__ = [
    "H3_MAX_BODY_BYTES",
    "MAX_IMAGE_BYTES",
    "MAX_PROMPT_CHARS",
    "MIN_SHORT_SIDE",
    "Inline",
    "check_any",
    "check_h3_request",
    "check_request",
    "expand_home",
    "validate_request",
]

#: What to send instead of a local image, given (the image as written, its MIME type, its
#: bytes); the checks call it once per local image that passed them.
Inline = Callable[[str, str, bytes], str]

#: The documented limits of S2V-01.
MAX_PROMPT_CHARS = 2000
MAX_IMAGE_BYTES = 20_000_000  # "< 20 MB"; the decimal reading is the safe one
MIN_SHORT_SIDE = 300  # the short side must be longer than this
MIN_ASPECT, MAX_ASPECT = 2 / 5, 5 / 2

_ACCEPTED_DATA_MIME = {"image/jpeg", "image/jpg", "image/png", "image/webp"}
_DECODE_SLICE = 1024 * 1024  # base64 characters decoded at a time (a multiple of 4)


@overload
def validate_request(request: VideoRequest) -> VideoRequest: ...
@overload
def validate_request(request: H3Request) -> H3Request: ...
def validate_request(request: AnyRequest) -> AnyRequest:
    """Check ``request`` (S2V-01 or MiniMax-H3) against every documented rule; return it ready.

    A local file is read, checked and replaced by a ``data:`` URL; URLs are left as they
    are (a remote file is not fetched). Nothing is sent anywhere.

    Raises:
        InvalidRequestError: listing every problem found, each naming its field.

    """
    return check_any(request, _data_url)


@overload
def check_any(request: VideoRequest, inline: Inline | None = None) -> VideoRequest: ...
@overload
def check_any(request: H3Request, inline: Inline | None = None) -> H3Request: ...
def check_any(request: AnyRequest, inline: Inline | None = None) -> AnyRequest:
    """:func:`check_request` or :func:`check_h3_request`, as the request's type says."""
    if isinstance(request, H3Request):
        return check_h3_request(request, inline or _as_given)
    return check_request(request, inline or _as_given)


def _data_url(_: str, mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _as_given(image: str, _: str, __: bytes) -> str:
    return image


def check_request(request: VideoRequest, inline: Inline = _as_given) -> VideoRequest:
    """Check ``request`` against every documented rule; local images go through ``inline``.

    Blocking (local images are read): call it in a worker thread when the request names one.
    By default a local image is checked and left as written, so that nothing large is built.

    Raises:
        InvalidRequestError: listing every problem found, each naming its field.

    """
    problems: list[Problem] = []
    if request.model != MODEL_S2V_01:
        problems.append(Problem("model", f"must be {MODEL_S2V_01!r}, got {request.model!r}"))
    prompt = request.prompt
    if prompt is not None and not isinstance(prompt, str):
        problems.append(Problem("prompt", f"must be text, got {type(prompt).__name__}"))
    elif prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        problems.append(
            Problem("prompt", f"{len(prompt)} characters, at most {MAX_PROMPT_CHARS} are allowed")
        )
    # Sent as given: a "no" would reach MiniMax as a string.
    if request.prompt_optimizer is not None and not isinstance(request.prompt_optimizer, bool):
        problems.append(Problem("prompt_optimizer", "must be True or False"))
    if request.aigc_watermark is not None and not isinstance(request.aigc_watermark, bool):
        problems.append(Problem("aigc_watermark", "must be True or False"))
    if len(request.subject) != 1:
        problems.append(
            Problem(
                "subject_reference", f"exactly one subject is allowed, got {len(request.subject)}"
            )
        )

    def check_image(image: str, field: str, problems: list[Problem]) -> str:
        return _check_image(image, field, problems, inline)

    def check_subject(
        subject: SubjectReference, field: str, problems: list[Problem]
    ) -> SubjectReference:
        return _check_subject(subject, field, problems, check_image)

    subjects = _check_each(request.subject, check_subject, "subject_reference", problems)
    if request.callback_url is not None and not is_http_url(request.callback_url):
        problems.append(Problem("callback_url", "must be an absolute http(s) URL"))
    if problems:
        raise InvalidRequestError.from_problems(problems)
    if subjects is None:
        return request  # nothing to send differently (no local file to inline)
    return attrs.evolve(request, subject=subjects)


def _check_each(
    items: tuple[T, ...],
    check: Callable[[T, str, list[Problem]], T],
    field: str,
    problems: list[Problem],
) -> tuple[T, ...] | None:
    """Check each of ``items``; the checked ones, or ``None`` when all came back unchanged.

    A plain loop: this runs for every submission, and generators cost more than the checks.
    """
    checked = []
    changed = False
    for i, item in enumerate(items):
        new = check(item, f"{field}[{i}]", problems)
        changed = changed or new is not item
        checked.append(new)
    return tuple(checked) if changed else None


def _check_subject(
    subject: SubjectReference,
    field: str,
    problems: list[Problem],
    check_image: Callable[[str, str, list[Problem]], str],
) -> SubjectReference:
    if not isinstance(subject, SubjectReference):
        shown = type(subject).__name__
        problems.append(
            Problem(field, f"must be a SubjectReference (or the image itself), got a {shown}")
        )
        return subject
    if subject.type != "character":
        problems.append(Problem(f"{field}.type", f"must be 'character', got {subject.type!r}"))
    if len(subject.image) != 1:
        problems.append(
            Problem(f"{field}.image", f"exactly one image is allowed, got {len(subject.image)}")
        )
    images = _check_each(subject.image, check_image, f"{field}.image", problems)
    return subject if images is None else attrs.evolve(subject, image=images)


def _check_image(image: str, field: str, problems: list[Problem], inline: Inline) -> str:
    """Check one image reference; returns what to send (a data URL for a local file)."""
    if not isinstance(image, str):
        problems.append(Problem(field, f"must be a URL or a path, got {type(image).__name__}"))
        return image
    kind = source_kind(image)
    if kind == "url":
        if not is_http_url(image):
            problems.append(Problem(field, "not a valid http(s) URL"))
        return image
    if kind == "data":
        _check_data_url(image, field, problems)
        return image
    return _read_local_image(image, field, problems, inline)


def _check_data_url(image: str, field: str, problems: list[Problem]) -> None:
    header, comma, encoded = image.partition(",")
    if not comma:
        problems.append(Problem(field, "data URL has no ',' before its data"))
        return
    params = header[5:].split(";")
    mime = params[0].strip().lower()
    if "base64" not in (p.strip().lower() for p in params[1:]):
        problems.append(Problem(field, "data URL must be base64-encoded (data:image/...;base64,)"))
        return
    if mime not in _ACCEPTED_DATA_MIME:
        problems.append(
            Problem(
                field,
                f"data URL type {mime or 'missing'!r}: use image/jpeg, image/png or image/webp",
            )
        )
        return
    try:
        data = decode_base64(encoded)
    except (binascii.Error, ValueError):
        problems.append(Problem(field, "data URL is not valid base64"))
        return
    _check_image_bytes(data, len(data), field, problems)


def decode_base64(encoded: str, slice_chars: int = _DECODE_SLICE) -> bytes:
    """``base64.b64decode(encoded, validate=True)``, a slice at a time.

    The decoder holds the GIL throughout: a 27 MB data URL in one call would hold it for
    about 30 ms, the event loop's thread waiting all along. Slices are a multiple of 4
    characters, and padding is refused anywhere but in the last one, so that the result and
    the errors are those of the one call.

    Raises:
        binascii.Error, ValueError: not valid base64.
    """
    if len(encoded) <= slice_chars or len(encoded) % 4:
        # One call for a short text, and for a length no encoder writes (then its leniency
        # with stray padding is the one call's own, e.g. "AAAA=").
        return base64.b64decode(encoded, validate=True)
    parts = []
    last = len(encoded) - slice_chars
    for start in range(0, len(encoded), slice_chars):
        chunk = encoded[start : start + slice_chars]
        if start < last and "=" in chunk:
            raise binascii.Error("Non-base64 digit found")  # padding before the end
        parts.append(base64.b64decode(chunk, validate=True))
    return b"".join(parts)


def expand_home(text: str) -> Path:
    """The path ``text`` spells, a leading ``~`` or ``~user`` expanded.

    Raises:
        ValueError: it can name no file (a NUL byte, the home of a user unknown here).
    """
    if "\0" in text:
        raise ValueError("a path cannot hold a NUL byte")
    try:
        return Path(text).expanduser()
    except RuntimeError:  # Path's word for "no such user", or no home at all
        raise ValueError(
            f"no home directory for {text.split('/', maxsplit=1)[0][:100]!r}"
        ) from None


def _local_path(source: str, field: str, problems: list[Problem]) -> Path | None:
    """The file a local source names (a path or a ``file://`` URL), else ``None`` and why."""
    try:
        return expand_home(URL(source).path if source[:7].lower() == "file://" else source)
    except ValueError as exc:
        problems.append(Problem(field, str(exc)))
        return None


def _read_local_image(image: str, field: str, problems: list[Problem], inline: Inline) -> str:
    path = _local_path(image, field, problems)
    if path is None:
        return image
    try:
        size = path.stat().st_size
        if not path.is_file():
            problems.append(Problem(field, f"{path} is not a file"))
            return image
        if size >= MAX_IMAGE_BYTES:
            problems.append(Problem(field, _size_message(size)))
            return image
        data = path.read_bytes()
    except FileNotFoundError:
        problems.append(
            Problem(
                field, f"no such file: {path} (images are http(s) URLs, data URLs or local paths)"
            )
        )
        return image
    except OSError as exc:
        problems.append(Problem(field, f"cannot read {path}: {exc.strerror or exc}"))
        return image
    info = _check_image_bytes(data, len(data), field, problems)
    if info is None:
        return image
    return inline(image, MIME_TYPES[info.format], data)


def _size_message(size: int) -> str:
    return f"image is {size / 1e6:.1f} MB, it must be under {MAX_IMAGE_BYTES / 1e6:.0f} MB"


def _check_image_bytes(
    data: bytes, size: int, field: str, problems: list[Problem]
) -> ImageInfo | None:
    if size >= MAX_IMAGE_BYTES:
        problems.append(Problem(field, _size_message(size)))
        return None
    try:
        info = read_image_info(data)
    except ValueError as exc:
        problems.append(Problem(field, str(exc)))
        return None
    short = min(info.width, info.height)
    dims = f"image is {info.width}x{info.height}"
    if short <= MIN_SHORT_SIDE:
        problems.append(Problem(field, f"{dims}: the short side must be over {MIN_SHORT_SIDE} px"))
    if short == 0 or not MIN_ASPECT <= info.width / info.height <= MAX_ASPECT:
        problems.append(Problem(field, f"{dims}: the aspect ratio must be between 2:5 and 5:2"))
    return info


# -- MiniMax-H3 (the V2 API) ----------------------------------------------------------------

#: The documented limits of MiniMax-H3 and MiniMax-H3-Max.
H3_MAX_PROMPT_CHARS = 7000
H3_MAX_BODY_BYTES = 64_000_000  # "≤ 64 MB"; the decimal reading is the safe one
H3_MIN_SIDE, H3_MAX_SIDE = 256, 5760
H3_MIN_ASPECT, H3_MAX_ASPECT = 0.4, 2.5
H3_MAX_REFERENCE_IMAGES = 9
H3_MAX_CLIPS = 3  # reference videos, and reference audios, each
H3_MAX_FILES = 12  # "Mixed input is capped at 12 files in total"
H3_CLIP_SECONDS = (2.0, 15.0)  # each clip; all clips of a kind together at most the upper
H3_RESOLUTIONS = {MODEL_H3: ("768P", "2K"), MODEL_H3_MAX: ("480P", "768P")}
H3_DURATIONS = {MODEL_H3: (4, 15), MODEL_H3_MAX: (5, 15)}
H3_RATIOS = ("adaptive", "21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
H3_EXPANSION_MODES = ("disabled", "balanced", "quality")
_MB = 1_000_000


@attrs.frozen
class _MediaKind:
    """The rules for one kind of media input."""

    name: str
    max_bytes: int
    data_mime: frozenset[str]  # the data: URL types accepted
    formats: str  # as the messages name them


_IMAGE = _MediaKind(
    "image",
    30 * _MB,
    frozenset(f"image/{f}" for f in ("jpeg", "jpg", "png", "webp", "heic", "heif")),
    "JPG, PNG, WebP, HEIC or HEIF",
)
_VIDEO = _MediaKind("video", 50 * _MB, frozenset({"video/mp4", "video/quicktime"}), "MP4 or MOV")
_AUDIO = _MediaKind(
    "audio",
    15 * _MB,
    frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/mpeg", "audio/mp3"}),
    "WAV or MP3",
)
_SEND_MIME = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
}


@attrs.define
class _Checked:
    """One media input after its checks: what to send, and what it adds to the body."""

    send: str
    inline_chars: int = 0  # characters of the data URL it becomes (0: sent as written)
    seconds: float | None = None


def check_h3_request(request: H3Request, inline: Inline = _as_given) -> H3Request:
    """Check a MiniMax-H3 request against every documented rule; local files go through ``inline``.

    Formats, sizes and durations are read from the files' headers (local files and data
    URLs); a remote URL or an uploaded file (``mm_file://``) is not fetched. H3-Max with
    reference inputs is not refused: MiniMax's pages disagree on whether it takes them.
    Blocking (local files are read): call it in a worker thread when the request names one.

    Raises:
        InvalidRequestError: listing every problem found, each naming its field.
    """
    problems: list[Problem] = []
    _check_h3_settings(request, problems)
    frames = [f for f in (request.first_frame, request.last_frame) if f is not None]
    references = (request.references, request.reference_videos, request.reference_audios)
    if frames and any(references):
        problems.append(
            Problem(
                "content",
                "first/last frames and reference inputs cannot be mixed: use one or the other",
            )
        )
    _count("references", request.references, H3_MAX_REFERENCE_IMAGES, problems)
    _count("reference_videos", request.reference_videos, H3_MAX_CLIPS, problems)
    _count("reference_audios", request.reference_audios, H3_MAX_CLIPS, problems)
    files = len(frames) + sum(len(r) for r in references)
    if files > H3_MAX_FILES:
        problems.append(
            Problem("content", f"{files} media files, at most {H3_MAX_FILES} are allowed in all")
        )
    if files == 0 and (request.ratio is None or request.ratio == "adaptive"):
        problems.append(
            Problem(
                "ratio", "a text-only request needs a concrete ratio (e.g. '16:9'), not adaptive"
            )
        )

    def each(field: str, sources: tuple[str, ...], kind: _MediaKind) -> list[_Checked]:
        return [
            _check_media(source, f"{field}[{i}]", kind, problems, inline)
            for i, source in enumerate(sources)
        ]

    first = (
        None
        if request.first_frame is None
        else _check_media(request.first_frame, "first_frame", _IMAGE, problems, inline)
    )
    last = (
        None
        if request.last_frame is None
        else _check_media(request.last_frame, "last_frame", _IMAGE, problems, inline)
    )
    images = each("references", request.references, _IMAGE)
    videos = each("reference_videos", request.reference_videos, _VIDEO)
    audios = each("reference_audios", request.reference_audios, _AUDIO)
    _check_total("reference_videos", videos, problems)
    _check_total("reference_audios", audios, problems)
    every = [c for c in (first, last, *images, *videos, *audios) if c is not None]
    if not any(c.inline_chars for c in every):
        checked = request  # nothing inline: sent as written
    else:
        checked = attrs.evolve(
            request,
            first_frame=None if first is None else first.send,
            last_frame=None if last is None else last.send,
            references=tuple(c.send for c in images),
            reference_videos=tuple(c.send for c in videos),
            reference_audios=tuple(c.send for c in audios),
        )
    size = _h3_body_size(checked, every)
    if size is not None and size > H3_MAX_BODY_BYTES:
        problems.append(
            Problem(
                "request",
                f"the body would be {size / _MB:.1f} MB, at most {H3_MAX_BODY_BYTES / _MB:.0f} MB "
                "are allowed: give large files as URLs or uploaded files (mm_file://)",
            )
        )
    if problems:
        raise InvalidRequestError.from_problems(problems)
    return checked if checked != request else request


def _check_h3_settings(request: H3Request, problems: list[Problem]) -> None:
    model = request.model
    if model not in H3_RESOLUTIONS:
        problems.append(
            Problem("model", f"must be {MODEL_H3!r} or {MODEL_H3_MAX!r}, got {str(model)[:40]!r}")
        )
    prompt = request.prompt
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append(Problem("prompt", "a non-empty prompt is required"))
    elif len(prompt) > H3_MAX_PROMPT_CHARS:
        problems.append(
            Problem(
                "prompt",
                f"{len(prompt)} characters, at most {H3_MAX_PROMPT_CHARS} are allowed",
            )
        )
    resolutions = H3_RESOLUTIONS.get(model)
    if resolutions is not None and request.resolution not in resolutions:
        problems.append(
            Problem(
                "resolution",
                f"{model} takes {' or '.join(resolutions)}, got {str(request.resolution)[:20]!r}",
            )
        )
    low, high = H3_DURATIONS.get(model, (4, 15))
    duration = request.duration
    if isinstance(duration, bool) or not isinstance(duration, int) or not low <= duration <= high:
        problems.append(
            Problem("duration", f"{model} takes {low} to {high} seconds, got {duration!r}")
        )
    if request.ratio is not None and request.ratio not in H3_RATIOS:
        problems.append(
            Problem(
                "ratio", f"must be one of {', '.join(H3_RATIOS)}, got {str(request.ratio)[:20]!r}"
            )
        )
    if request.callback_url is not None and not is_http_url(request.callback_url):
        problems.append(Problem("callback_url", "must be an absolute http(s) URL"))
    if request.aigc_watermark is not None and not isinstance(request.aigc_watermark, bool):
        problems.append(Problem("aigc_watermark", "must be True or False"))
    mode = request.prompt_expansion_mode
    if mode is not None:
        if mode not in H3_EXPANSION_MODES:
            problems.append(
                Problem(
                    "prompt_expansion_mode",
                    f"must be one of {', '.join(H3_EXPANSION_MODES)}, got {str(mode)[:20]!r}",
                )
            )
        elif model != MODEL_H3_MAX:
            problems.append(Problem("prompt_expansion_mode", f"only {MODEL_H3_MAX} takes it"))


def _count(field: str, items: tuple[str, ...], most: int, problems: list[Problem]) -> None:
    if len(items) > most:
        problems.append(Problem(field, f"{len(items)} given, at most {most} are allowed"))


def _check_total(field: str, clips: list[_Checked], problems: list[Problem]) -> None:
    total = sum(c.seconds for c in clips if c.seconds is not None)
    if total > H3_CLIP_SECONDS[1] + 1e-6:
        problems.append(
            Problem(field, f"{total:.1f} s in all, at most {H3_CLIP_SECONDS[1]:.0f} s are allowed")
        )


def _check_media(
    source: str, field: str, kind: _MediaKind, problems: list[Problem], inline: Inline
) -> _Checked:
    """Check one media input; what to send (a data URL for a local file) and its weight."""
    if not isinstance(source, str) or not source:
        problems.append(Problem(field, f"an {kind.name} URL, data URL or path is required"))
        return _Checked(str(source))
    source_is = source_kind(source)
    if source_is == "url":
        if not is_http_url(source):
            problems.append(Problem(field, "not a valid http(s) URL"))
        return _Checked(source)
    if source_is == "upload":
        file_id = source[len("mm_file://") :]
        if not (file_id.isascii() and file_id.isdigit() and len(file_id) <= 40):
            problems.append(Problem(field, "mm_file:// must be followed by a file id (digits)"))
        return _Checked(source)
    if source_is == "data":
        data = _data_url_bytes(source, field, kind, problems)
        if data is None:
            return _Checked(source)
        seconds = _check_media_bytes(data, len(data), field, kind, problems)
        return _Checked(source, len(json.dumps(source)) - 2, seconds)
    return _read_local_media(source, field, kind, problems, inline)


def _data_url_bytes(
    source: str, field: str, kind: _MediaKind, problems: list[Problem]
) -> bytes | None:
    header, comma, encoded = source.partition(",")
    if not comma:
        problems.append(Problem(field, "data URL has no ',' before its data"))
        return None
    params = header[5:].split(";")
    mime = params[0].strip()
    if "base64" not in (p.strip().lower() for p in params[1:]):
        problems.append(
            Problem(field, f"data URL must be base64-encoded (data:{kind.name}/...;base64,)")
        )
        return None
    if mime.lower() not in kind.data_mime:
        problems.append(
            Problem(
                field, f"data URL type {mime or 'missing'!r}: a {kind.name} must be {kind.formats}"
            )
        )
        return None
    if mime != mime.lower():
        problems.append(Problem(field, f"data URL type {mime!r} must be lowercase"))
        return None
    try:
        return decode_base64(encoded)
    except (binascii.Error, ValueError):
        problems.append(Problem(field, "data URL is not valid base64"))
        return None


def _read_local_media(
    source: str, field: str, kind: _MediaKind, problems: list[Problem], inline: Inline
) -> _Checked:
    path = _local_path(source, field, problems)
    if path is None:
        return _Checked(source)
    try:
        if not path.is_file():
            problems.append(
                Problem(
                    field,
                    f"no such file: {path} (inputs are http(s) URLs, data URLs, mm_file:// "
                    "ids or local paths)"
                    if not path.exists()
                    else f"{path} is not a file",
                )
            )
            return _Checked(source)
        size = path.stat().st_size
        if size > kind.max_bytes:
            problems.append(Problem(field, _media_size_message(kind, size)))
            return _Checked(source)
        data = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(field, f"cannot read {path}: {exc.strerror or exc}"))
        return _Checked(source)
    sniffed: list[str] = []
    seconds = _check_media_bytes(data, len(data), field, kind, problems, sniffed=sniffed)
    if not sniffed:
        return _Checked(source)
    mime = sniffed[0]
    return _Checked(
        inline(source, mime, data), len(f"data:{mime};base64,") + 4 * -(-len(data) // 3), seconds
    )


def _media_size_message(kind: _MediaKind, size: int) -> str:
    return f"{kind.name} is {size / _MB:.1f} MB, at most {kind.max_bytes / _MB:.0f} MB are allowed"


def _check_media_bytes(
    data: bytes,
    size: int,
    field: str,
    kind: _MediaKind,
    problems: list[Problem],
    *,
    sniffed: list[str] | None = None,
) -> float | None:
    """Check a file's bytes by its kind's rules: its seconds (clips); its MIME into ``sniffed``."""
    if size > kind.max_bytes:
        problems.append(Problem(field, _media_size_message(kind, size)))
        return None
    if kind is _IMAGE:
        try:
            info = read_image_info(data, heif=True)
        except ValueError as exc:
            problems.append(Problem(field, f"{exc} (a {kind.name} must be {kind.formats})"))
            return None
        _check_h3_image(info, field, problems)
        if sniffed is not None:
            sniffed.append(H3_MIME_TYPES[info.format])
        return None
    try:
        media = read_video_info(data) if kind is _VIDEO else read_audio_info(data, size)
    except ValueError as exc:
        problems.append(Problem(field, f"{exc} (a {kind.name} must be {kind.formats})"))
        return None
    low, high = H3_CLIP_SECONDS
    if media.duration is None:
        problems.append(
            Problem(field, f"the {kind.name}'s duration cannot be read from its header")
        )
    elif not low - 1e-6 <= media.duration <= high + 1e-6:
        problems.append(
            Problem(
                field,
                f"the {kind.name} lasts {media.duration:.2f} s, each clip must last "
                f"{low:.0f} to {high:.0f} s",
            )
        )
    if sniffed is not None:
        sniffed.append(_SEND_MIME[media.format])
    return media.duration


def _check_h3_image(info: ImageInfo, field: str, problems: list[Problem]) -> None:
    dims = f"image is {info.width}x{info.height}"
    if not (H3_MIN_SIDE <= info.width <= H3_MAX_SIDE and H3_MIN_SIDE <= info.height <= H3_MAX_SIDE):
        problems.append(
            Problem(field, f"{dims}: each side must be {H3_MIN_SIDE} to {H3_MAX_SIDE} px")
        )
    if info.height == 0 or not H3_MIN_ASPECT <= info.width / info.height <= H3_MAX_ASPECT:
        problems.append(
            Problem(
                field,
                f"{dims}: width/height must be between {H3_MIN_ASPECT} and {H3_MAX_ASPECT}",
            )
        )


def _h3_body_size(request: H3Request, checked: list[_Checked]) -> int | None:
    """The bytes of the body ``request`` becomes, inline files as the data URLs they become.

    ``None`` when it is certainly far below the limit: nothing inline, and even with every
    character JSON-escaped in six bytes the text could not come near it (submissions of URLs
    skip the dump).
    """
    inline = sum(c.inline_chars for c in checked)
    prompt = request.prompt if isinstance(request.prompt, str) else ""  # else reported
    chars = len(prompt) + sum(len(c.send) for c in checked)
    if inline == 0 and 6 * (chars + len(request.callback_url or "")) + 4096 < H3_MAX_BODY_BYTES:
        return None
    blank = {c.send: "" for c in checked if c.inline_chars}

    def plain(source: str | None) -> str | None:
        return None if source is None else blank.get(source, source)

    shell = attrs.evolve(
        request,
        first_frame=plain(request.first_frame),
        last_frame=plain(request.last_frame),
        references=tuple(plain(s) or "" for s in request.references),
        reference_videos=tuple(plain(s) or "" for s in request.reference_videos),
        reference_audios=tuple(plain(s) or "" for s in request.reference_audios),
    )
    text = compact_json(h3_request_payload(shell))
    return len(text.encode()) + sum(c.inline_chars for c in checked)
