"""The checks a create request meets, as MiniMax's pages describe them (both dialects)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Literal

from .._errors import ResponseValidationError
from .._images import ImageInfo, read_image_info
from .._models import H3_MODELS, MODEL_H3_MAX, H3Request
from .._wire import is_http_url, parse_h3_request, source_kind
from ._config import EmulatorConfig

__all__ = ["check_submission", "check_v2_submission", "parse_json"]

_MAX_PROMPT = 2000
_MAX_IMAGE = 20_000_000
_V2_RESOLUTIONS = {"MiniMax-H3": ("768P", "2K"), "MiniMax-H3-Max": ("480P", "768P")}
_V2_DURATIONS = {"MiniMax-H3": (4, 15), "MiniMax-H3-Max": (5, 15)}
_V2_RATIOS = frozenset({"adaptive", "21:9", "16:9", "4:3", "1:1", "3:4", "9:16"})
_V2_MAX_PROMPT = 7000
_V2_MAX_IMAGE = 30_000_000


def parse_json(raw: bytes) -> Any:
    """The JSON document ``raw``; ``ValueError`` for anything else (too deep included)."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def check_submission(body: object, config: EmulatorConfig) -> tuple[int, str]:
    """Return (0, "") for a valid S2V-01 request, else the code and message."""
    if not isinstance(body, Mapping):
        return 2013, "invalid params, body must be a JSON object"
    model = body.get("model")
    if model is None:
        return 2013, "invalid params, model is required"
    if model != "S2V-01":
        return 2013, f"invalid params, model {str(model)[:40]!r} is not supported here"
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        return 2013, "invalid params, prompt must be a string"
    if isinstance(prompt, str) and len(prompt) > _MAX_PROMPT:
        return 2013, f"invalid params, prompt exceeds {_MAX_PROMPT} characters"
    for flag in ("prompt_optimizer", "aigc_watermark"):
        if flag in body and not isinstance(body[flag], bool):
            return 2013, f"invalid params, {flag} must be a boolean"
    callback = body.get("callback_url")
    if callback is not None and not is_http_url(callback):
        return 2013, "invalid params, callback_url must be an http(s) URL"
    subjects = body.get("subject_reference")
    if not isinstance(subjects, list) or len(subjects) != 1:
        return 2013, "invalid params, subject_reference must be a list of exactly one subject"
    subject = subjects[0]
    if not isinstance(subject, Mapping) or subject.get("type") != "character":
        return 2013, "invalid params, subject_reference[0].type must be 'character'"
    images = subject.get("image")
    if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str):
        return 2013, "invalid params, subject_reference[0].image must be a list of one URL"
    image = images[0]
    if source_kind(image) == "data":
        if config.data_urls == "reject":
            return 1000, "disallowed image url"
        return _check_data_url(image)
    if not is_http_url(image):
        return 2013, "invalid params, image must be a public http(s) URL"
    return 0, ""


def _check_data_url(image: str) -> tuple[int, str]:
    info = _data_image(image, _MAX_IMAGE - 1, heif=False)  # documented: "< 20 MB"
    if isinstance(info, str):
        return 2013, f"invalid params, {_V1_PROBLEMS[info]}"
    if min(info.width, info.height) <= 300:
        return 2013, "invalid params, image short side must exceed 300px"
    if not 0.4 <= info.width / info.height <= 2.5:
        return 2013, "invalid params, image aspect ratio must be between 2:5 and 5:2"
    return 0, ""


_V1_PROBLEMS = {
    "not_base64": "data URL must be base64",
    "bad_base64": "data URL is not valid base64",
    "too_large": "image exceeds 20MB",
    "format": "image format must be JPG, JPEG, PNG or WebP",
}
_V2_PROBLEMS = {
    "not_base64": "data URI must be base64",
    "bad_base64": "data URI is not valid base64",
    "too_large": "image exceeds 30MB",
    "format": "image format must be JPG, JPEG, PNG, WEBP, HEIC or HEIF",
}
_DataProblem = Literal["not_base64", "bad_base64", "too_large", "format"]


def _data_image(image: str, max_bytes: int, *, heif: bool) -> ImageInfo | _DataProblem:
    """The format and size of a data URL's image, else what keeps it from being read."""
    header, _, encoded = image.partition(",")
    if ";base64" not in header.lower():
        return "not_base64"
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return "bad_base64"
    if len(data) > max_bytes:
        return "too_large"
    try:
        return read_image_info(data, heif=heif)
    except ValueError:
        return "format"


def check_v2_submission(body: object, config: EmulatorConfig) -> H3Request | str:
    """The request of a valid V2 create, else what is wrong with it."""
    try:
        parsed = parse_h3_request(body)
    except ResponseValidationError as error:
        return "; ".join(error.errors)[:200] or "content is malformed"
    required = ("model", "content", "resolution", "duration")
    missing = [f for f in required if not isinstance(body, Mapping) or f not in body]
    if missing:
        return f"{', '.join(missing)} required"
    problem = _v2_settings_problem(parsed, body, config)
    if problem:
        return problem
    for image in (parsed.first_frame, parsed.last_frame, *parsed.references):
        if image is None or source_kind(image) == "upload":
            continue
        if source_kind(image) == "data":
            problem = _check_v2_data_image(image)
        elif not is_http_url(image):
            problem = "image url must be a public URL, a data URI or mm_file://"
        if problem:
            return problem
    return parsed


def _v2_settings_problem(parsed: H3Request, body: object, config: EmulatorConfig) -> str:
    if parsed.model not in H3_MODELS:
        return f"model {parsed.model[:40]!r} is not supported"
    if not parsed.prompt.strip():
        return "content must include a non-empty text item (prompt is required)"
    if len(parsed.prompt) > _V2_MAX_PROMPT:
        return f"text exceeds {_V2_MAX_PROMPT} characters"
    if parsed.resolution not in _V2_RESOLUTIONS[parsed.model]:
        return f"resolution {parsed.resolution[:10]!r} is not supported by {parsed.model}"
    low, high = _V2_DURATIONS[parsed.model]
    if not low <= parsed.duration <= high:
        return f"duration must be {low}-{high} for {parsed.model}"
    frames = [f for f in (parsed.first_frame, parsed.last_frame) if f is not None]
    references = [*parsed.references, *parsed.reference_videos, *parsed.reference_audios]
    if parsed.ratio is not None and parsed.ratio not in _V2_RATIOS:
        return "ratio is not supported"
    if not frames and not references and parsed.ratio in (None, "adaptive"):
        return "ratio is required for text-to-video and cannot be adaptive"
    if frames and references:
        return "first_frame/last_frame cannot be mixed with reference roles"
    if (
        len(parsed.references) > 9
        or len(parsed.reference_videos) > 3
        or len(parsed.reference_audios) > 3
        or len(frames) + len(references) > 12
    ):
        return "too many media inputs"
    if references and parsed.model == MODEL_H3_MAX and config.h3_max_references == "reject":
        return f"reference-to-video is not supported by {MODEL_H3_MAX}"
    if (
        isinstance(body, Mapping)
        and "aigc_watermark" in body
        and config.v2_aigc_watermark == "reject"
    ):
        return "aigc_watermark is not a supported field"
    if parsed.callback_url is not None and not is_http_url(parsed.callback_url):
        return "callback_url must be an http(s) URL"
    return ""


def _check_v2_data_image(image: str) -> str:
    """What is wrong with a V2 data-URL image (``""`` when nothing is)."""
    info = _data_image(image, _V2_MAX_IMAGE, heif=True)
    if isinstance(info, str):
        return _V2_PROBLEMS[info]
    if not (256 <= info.width <= 5760 and 256 <= info.height <= 5760):
        return "image sides must be 256-5760px"
    if not 0.4 <= info.width / info.height <= 2.5:
        return "image aspect ratio must be between 0.4 and 2.5"
    return ""
