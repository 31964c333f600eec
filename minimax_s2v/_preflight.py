"""Preflight validation: find every problem in a request before a paid call is spent."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import attrs
from yarl import URL

from ._errors import InvalidRequestError, Problem
from ._images import MIME_TYPES, ImageInfo, read_image_info
from ._models import MODEL_S2V_01, SubjectReference, VideoRequest
from ._wire import is_http_url

T = TypeVar("T")

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_PROMPT_CHARS",
    "MIN_SHORT_SIDE",
    "Inline",
    "check_request",
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


def validate_request(request: VideoRequest) -> VideoRequest:
    """Check ``request`` against every documented rule and return it ready to send.

    A local image path is read, checked and replaced by a ``data:`` URL; URLs are left as
    they are (a remote image is not fetched). Nothing is sent anywhere.

    Raises:
        InvalidRequestError: listing every problem found, each naming its field.

    """
    return check_request(request, _data_url)


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
    if request.prompt is not None and len(request.prompt) > MAX_PROMPT_CHARS:
        problems.append(
            Problem(
                "prompt",
                f"{len(request.prompt)} characters, at most {MAX_PROMPT_CHARS} are allowed",
            )
        )
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
    lowered = image[:8].lower()
    if lowered.startswith(("http://", "https://")):
        if not is_http_url(image):
            problems.append(Problem(field, "not a valid http(s) URL"))
        return image
    if lowered.startswith("data:"):
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
    if len(encoded) <= slice_chars:
        return base64.b64decode(encoded, validate=True)
    parts = []
    last = len(encoded) - slice_chars
    for start in range(0, len(encoded), slice_chars):
        chunk = encoded[start : start + slice_chars]
        if start < last and "=" in chunk:
            raise binascii.Error("Non-base64 digit found")  # padding before the end
        parts.append(base64.b64decode(chunk, validate=True))
    return b"".join(parts)


def _read_local_image(image: str, field: str, problems: list[Problem], inline: Inline) -> str:
    path = Path(URL(image).path if image[:7].lower() == "file://" else image).expanduser()
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
