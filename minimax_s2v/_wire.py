"""The one cattrs converter: every rename, quirk and type rule of the MiniMax wire format.

Quirks handled here and nowhere else:

- ``file_id`` is a string in query responses and callbacks but an integer in
  ``/v1/files/retrieve``; either spelling is accepted everywhere.
- An unfinished task reports ``file_id: ""`` and ``video_width``/``video_height`` ``0``:
  those placeholders are read as ``None``.
- Status strings come in any casing (``Success``/``success``, ``Fail``/``failed``).
- Errors are in-band: ``base_resp.status_code != 0`` on an HTTP 200.
- Unknown keys are ignored; unset optional request fields are omitted.

Parsing functions raise only :class:`ResponseValidationError`, whatever the input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeGuard, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import format_exception
from yarl import URL

from ._errors import (
    APIError,
    AuthenticationError,
    InsufficientBalanceError,
    InvalidRequestError,
    MismatchedAnswerError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    error_for_code,
    error_for_http_status,
    shown_id,
    terminal_safe,
)
from ._models import (
    STATUS_SPELLINGS,
    CallbackChallenge,
    H3Request,
    H3Task,
    SubjectReference,
    TaskSnapshot,
    TaskStatus,
    VideoFile,
    VideoRequest,
)

__all__ = [
    "DOWNLOAD_URL_LIFETIME",
    "MAX_ID_DIGITS",
    "CancelAnswer",
    "SourceKind",
    "api_error_in",
    "callback_ack",
    "check_names",
    "check_video_named",
    "checked_id",
    "compact_json",
    "h3_cancel_payload",
    "h3_list_payload",
    "h3_request_payload",
    "h3_task_payload",
    "is_http_url",
    "is_id",
    "is_mapping",
    "named_task",
    "parse_callback",
    "parse_file",
    "parse_h3_cancel",
    "parse_h3_list",
    "parse_h3_request",
    "parse_h3_snapshot",
    "parse_h3_task",
    "parse_request",
    "parse_snapshot",
    "parse_submit",
    "request_payload",
    "snapshot_payload",
    "source_kind",
    "v2_error_in",
    "v2_error_payload",
    "with_media_urls",
]

#: How long a ``download_url`` stays valid after retrieval (documented: one hour).
DOWNLOAD_URL_LIFETIME = timedelta(hours=1)

_EXCERPT = 500
#: Ids are 15 to 18 digits in practice; more than this is no id of MiniMax's.
MAX_ID_DIGITS = 40
_ID_LIMIT = 10**MAX_ID_DIGITS
T = TypeVar("T")

#: ``json.dumps(value, separators=(",", ":"))`` with its encoder made once, not per call.
compact_json: Callable[[object], str] = json.JSONEncoder(separators=(",", ":")).encode


def _strict_str(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return _unicode(value)


def _unicode(text: str) -> str:
    """``text`` if it is valid Unicode: JSON escapes can smuggle in lone surrogates."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a string holds a lone surrogate (not valid Unicode)") from None
    return text


def _strict_int(value: object, _: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _strict_bool(value: object, _: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _strict_str_tuple(value: object, _: object) -> tuple[str, ...]:
    # A bare string would otherwise be split into characters.
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list of strings, got {type(value).__name__}")
    return tuple(_strict_str(v, None) for v in value)


def _digits(value: object, what: str) -> str:
    """An id spelled as a string of digits or as a non-negative integer; else ``ValueError``.

    Ids name files on disk (``<task id>.mp4``), so nothing but ASCII digits of a bounded
    length gets past here: no path separator, dot or surrogate can reach a file name.
    """
    if isinstance(value, bool):
        raise TypeError(f"expected a {what} (string or integer), got bool")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{what} must not be negative")
        if value >= _ID_LIMIT:
            raise ValueError(f"{what} has more than {MAX_ID_DIGITS} digits")
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"expected a {what} (string or integer), got {type(value).__name__}")
    if not is_id(value):
        shown = value[:40].encode("ascii", "backslashreplace").decode()
        raise ValueError(f"{what} {shown!r} is not a string of at most {MAX_ID_DIGITS} digits")
    return value


def is_id(text: str) -> bool:
    """Whether ``text`` is a task or file id as MiniMax spells them: 1 to 40 ASCII digits."""
    return 0 < len(text) <= MAX_ID_DIGITS and text.isascii() and text.isdigit()


def checked_id(value: object) -> str:
    """``value`` as the task or file id it must be, else ``ValueError``.

    An id is sent in a query string or, on V2, as a path segment, and names downloaded
    files: a ``/`` or ``..`` in it would walk to another endpoint with the key, or out of
    the directory, so nothing but digits is taken.
    """
    # Read as what it holds, never through a subclass's own methods (its __str__ or
    # isdigit could show digits while the real text walks elsewhere).
    if isinstance(value, str):
        text = str.__str__(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        text = int.__repr__(value)
    else:
        text = ""  # no other type is an id
    if not is_id(text):
        shown = (text or type(value).__name__)[:40].encode("ascii", "backslashreplace").decode()
        raise ValueError(f"{shown!r} is not a task or file id (1 to {MAX_ID_DIGITS} digits)")
    return text


def _task_id(value: object, _: object) -> str:
    return _digits(value, "task id")


def _optional_file_id(value: object, _: object) -> str | None:
    if value is None or (type(value) in (str, int) and value in ("", "0", 0)):
        return None  # the placeholders of an unfinished task
    return _digits(value, "file id")


def _file_id_int(value: object, _: object) -> int:
    return int(_digits(value, "file id"))


def _optional_dimension(value: object, _: object) -> int | None:
    if value is None:
        return None
    number = _strict_int(value, None)
    if number < 0:
        raise ValueError("a video dimension must not be negative")
    return number or None


def _status(value: object, _: object) -> TaskStatus:
    return TaskStatus.parse(_strict_str(value, None))


def is_http_url(value: object) -> bool:
    """Whether ``value`` is an absolute http(s) URL with a host (the one URL rule)."""
    if not isinstance(value, str):
        return False
    try:
        url = URL(value)
        return url.scheme in ("http", "https") and bool(url.host)  # .host decodes IDNA
    except ValueError:  # UnicodeError included: a host that is not valid IDNA
        return False


#: What a media source names: an http(s) URL, a data URL, a file uploaded to MiniMax
#: (``mm_file://<file id>``, V2 only) or, for anything else, a local path.
SourceKind = Literal["url", "data", "upload", "path"]


def source_kind(source: str) -> SourceKind:
    """What ``source`` names, by its prefix in any casing (the one such rule).

    ``"url"`` says only that it starts like one: whether it is a valid URL is
    :func:`is_http_url`'s to say.
    """
    head = source[:10].lower()
    if head.startswith(("http://", "https://")):
        return "url"
    if head.startswith("data:"):
        return "data"
    if head.startswith("mm_file://"):
        return "upload"
    return "path"


def _url(value: object, _: object) -> URL:
    text = _strict_str(value, None)
    if not is_http_url(text):
        raise ValueError(f"expected an absolute http(s) URL, got {text[:80]!r}")
    return URL(text)


def _optional_url(value: object, _: object) -> URL | None:
    if value is None or value == "":
        return None
    return _url(value, None)


def _datetime(value: object, _: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a Unix timestamp, got {type(value).__name__}")
    return datetime.fromtimestamp(value, tz=UTC)


_converter = cattrs.Converter(forbid_extra_keys=False)
_converter.register_structure_hook(str, _strict_str)
_converter.register_structure_hook(int, _strict_int)
_converter.register_structure_hook(bool, _strict_bool)
_converter.register_structure_hook(TaskStatus, _status)
_converter.register_structure_hook(URL, _url)
_converter.register_structure_hook(datetime, _datetime)
_converter.register_unstructure_hook(URL, str)
_converter.register_unstructure_hook(datetime, lambda d: int(d.timestamp()))
_converter.register_unstructure_hook(
    SubjectReference, lambda s: {"type": s.type, "image": list(s.image)}
)

_converter.register_structure_hook(
    SubjectReference,
    make_dict_structure_fn(
        SubjectReference, _converter, image=override(struct_hook=_strict_str_tuple)
    ),
)
_converter.register_structure_hook(
    VideoRequest,
    make_dict_structure_fn(VideoRequest, _converter, subject=override(rename="subject_reference")),
)
_converter.register_unstructure_hook(
    VideoRequest,
    make_dict_unstructure_fn(
        VideoRequest,
        _converter,
        _cattrs_omit_if_default=True,
        subject=override(rename="subject_reference"),
        model=override(omit_if_default=False),
    ),
)


def _snapshot_structurer(detailed: bool) -> Callable[[Mapping[str, Any], Any], TaskSnapshot]:
    return make_dict_structure_fn(
        TaskSnapshot,
        _converter,
        _cattrs_detailed_validation=detailed,
        task_id=override(struct_hook=_task_id),
        file_id=override(struct_hook=_optional_file_id),
        width=override(rename="video_width", struct_hook=_optional_dimension),
        height=override(rename="video_height", struct_hook=_optional_dimension),
    )


# The same hooks twice: a quick pass for the bodies that fit, and a detailed one that names
# every field that does not, run only when the quick one fails. (Bodies in MiniMax's usual
# spelling skip both: _direct_snapshot builds them.)
_structure_snapshot_quick = _snapshot_structurer(detailed=False)
_structure_snapshot_fields = _snapshot_structurer(detailed=True)
_structure_file_fields = make_dict_structure_fn(
    VideoFile,
    _converter,
    file_id=override(struct_hook=_file_id_int),
    backup_download_url=override(struct_hook=_optional_url),
)


def is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, quick for the dicts JSON decodes to."""
    return type(value) is dict or isinstance(value, Mapping)


def _excerpt(data: object) -> str:
    try:
        text = json.dumps(data, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(data)
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"


def _reason(exc: BaseException, type_: type | None) -> str:
    """Cattrs' description of a failure, with the reason our own hooks gave for a bad value."""
    text = format_exception(exc, type_)
    if isinstance(exc, ValueError) and str(exc):
        text += f" ({exc})"
    return text


def _structure(what: str, data: object, build: Callable[[Any], T]) -> T:
    """Run ``build`` and turn anything it raises into a readable ResponseValidationError."""
    try:
        return build(data)
    except ResponseValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure to fit becomes one typed error
        try:
            errors = cattrs.transform_error(exc, path="$", format_exception=_reason)
        except Exception:  # noqa: BLE001 - a formatter failure must not hide the real one
            errors = [f"{type(exc).__name__}: {exc}"]
        raise ResponseValidationError(what, errors, _excerpt(data)) from None


def check_names(what: str, asked: object, named: object, data: object) -> None:
    """Refuse an answer naming another task or file than the one asked about.

    A broken cache or gateway on the way may give one request another's answer; taken as
    it came, it would report (and download) another task's video under this one's name.

    Raises:
        MismatchedAnswerError: ``named`` (the answer's id) is not ``asked``.
    """
    asked_text, named_text = str(asked), str(named)
    if asked_text == named_text or (
        is_id(asked_text) and is_id(named_text) and int(asked_text) == int(named_text)
    ):
        return
    raise MismatchedAnswerError(
        what,
        [f"it names {named_text[:40]!r}, not {asked_text[:40]!r}, the one asked about"],
        _excerpt(data),
    )


def check_video_named(what: str, snapshot: TaskSnapshot, data: object) -> None:
    """Refuse an answer saying a task succeeded without naming its video.

    A V1 ``Success`` names its file id, a V2 ``succeeded`` its ``content.url``; one that
    names neither leaves nothing to retrieve or download.

    Raises:
        MismatchedAnswerError: ``snapshot`` is a success with no file id and no URL.
    """
    if snapshot.status is TaskStatus.SUCCESS and not (snapshot.file_id or snapshot.video_url):
        raise MismatchedAnswerError(
            what,
            ["the task succeeded, yet the answer names no video (no file id, no URL)"],
            _excerpt(data),
        )


def _mapping(data: object, what: str) -> Mapping[str, Any]:
    if not is_mapping(data):
        raise ResponseValidationError(
            what, [f"expected a JSON object @ $, got {type(data).__name__}"], _excerpt(data)
        )
    return data


def _base_resp(data: Mapping[str, Any]) -> tuple[int, str] | None:
    base = data.get("base_resp")
    if not is_mapping(base):
        return None
    code = base.get("status_code")
    if isinstance(code, bool) or not isinstance(code, int):
        return None
    message = base.get("status_msg")
    return code, message if isinstance(message, str) else ""


def named_task(data: object) -> str | None:
    """The task id an answer names, else ``None`` (absent, ``""``, the number 0).

    Shown in messages: a value that is not an id is kept printable and cut to 40 characters.
    """
    value = data.get("task_id") if is_mapping(data) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value) if value else None
    if not isinstance(value, str) or not value.strip():
        return None
    return value if is_id(value) else terminal_safe(value, MAX_ID_DIGITS)


def api_error_in(
    data: object,
    *,
    http_status: int = 200,
    trace_id: str | None = None,
    retry_after: float | None = None,
) -> APIError | None:
    """Return the typed error a body's non-zero ``base_resp`` reports, else ``None``.

    A query response whose task is ``Fail`` carries the failure code in ``base_resp``:
    that is the task's outcome, not an error of the call, so ``None`` is returned.
    """
    if not is_mapping(data):
        return None
    base = _base_resp(data)
    if base is None or base[0] == 0:
        return None
    status = data.get("status")
    if isinstance(status, str) and STATUS_SPELLINGS.get(status.strip().lower()) is TaskStatus.FAIL:
        return None
    code, message = base
    return error_for_code(
        code, message, trace_id=trace_id, http_status=http_status, retry_after=retry_after
    )


def parse_submit(data: object) -> str:
    """Read the task id of a ``POST /v1/video_generation`` answer."""
    what = "submit response"
    body = _mapping(data, what)
    return _structure(what, body.get("task_id"), lambda v: _task_id(v, None))


def _ascii_id(value: object) -> str | None:
    """An id already in its usual spelling (an ASCII string), else ``None``."""
    return value if type(value) is str and value.isascii() else None


def _plain_dimension(value: object) -> int | None:
    """A video size in its usual spelling (absent, ``null`` or an int >= 0), else ``-1``."""
    if value is None:
        return None
    if type(value) is int and value >= 0:
        return value or None
    return -1


def _usual_status(task_id: object, status_text: object) -> tuple[str, TaskStatus, str] | None:
    """A task id, its status and the status text, all in their usual spelling; else ``None``.

    The checks of :func:`_ascii_id` and :func:`is_id` written out: this runs for every
    update, V1 and V2.
    """
    if not (
        type(task_id) is str
        and 0 < len(task_id) <= MAX_ID_DIGITS
        and task_id.isascii()
        and task_id.isdigit()
        and type(status_text) is str
        and status_text.isascii()
    ):
        return None
    status = STATUS_SPELLINGS.get(status_text) or STATUS_SPELLINGS.get(status_text.strip().lower())
    return None if status is None else (task_id, status, status_text)


def _direct_snapshot(
    data: Mapping[str, Any], code: int, message: str | None
) -> TaskSnapshot | None:
    """The snapshot of a body in the shape MiniMax sends, built directly; else ``None``.

    Anything unusual (ids as integers, non-ASCII text, odd types) returns ``None`` and goes
    through the cattrs structurers, which give the same result or name what is wrong.
    """
    usual = _usual_status(data.get("task_id"), data.get("status"))
    if usual is None:
        return None
    task_id, status, status_text = usual
    file_id = data.get("file_id")
    if file_id is not None:
        file_id = _ascii_id(file_id)
        if file_id is None:
            return None
        if file_id in ("", "0"):
            file_id = None
        elif not is_id(file_id):
            return None
    width = _plain_dimension(data.get("video_width"))
    height = _plain_dimension(data.get("video_height"))
    if width == -1 or height == -1:
        return None
    if message is not None and not message.isascii():
        return None
    return TaskSnapshot(task_id, status, file_id, width, height, code or None, message, status_text)


def _code_and_message(data: Mapping[str, Any]) -> tuple[int, str | None]:
    """A status body's error code (0 for none) and the message that goes with it."""
    code, status_msg = _base_resp(data) or (0, "")
    extra = data.get("error_message")
    return code, extra if isinstance(extra, str) and extra else (status_msg if code else None)


def _snapshot(data: Mapping[str, Any]) -> TaskSnapshot:
    code, message = _code_and_message(data)
    return _direct_snapshot(data, code, message) or _cattrs_snapshot(data, code, message)


def _cattrs_snapshot(data: Mapping[str, Any], code: int, message: str | None) -> TaskSnapshot:
    fields = dict(data)
    fields["error_code"] = code or None
    fields["error_message"] = message
    fields["status_text"] = data.get("status")
    try:
        return _structure_snapshot_quick(fields, TaskSnapshot)
    except Exception:  # noqa: BLE001 - structured again below, to report every problem
        return _structure_snapshot_fields(fields, TaskSnapshot)


def parse_snapshot(data: object) -> TaskSnapshot:
    """Read a ``GET /v1/query/video_generation`` answer (or a status callback body)."""
    what = "task status"
    return _structure(what, _mapping(data, what), _snapshot)


def parse_file(data: object, retrieved_at: datetime) -> VideoFile:
    """Read a ``GET /v1/files/retrieve`` answer; ``expires_at`` counts from ``retrieved_at``."""
    what = "file response"
    body = _mapping(data, what)
    info = body.get("file")
    if not is_mapping(info):
        raise ResponseValidationError(what, ["expected a JSON object @ $.file"], _excerpt(data))
    fields = {"bytes": 0, "filename": "", "purpose": "", "created_at": retrieved_at, **info}
    fields["expires_at"] = retrieved_at + DOWNLOAD_URL_LIFETIME
    return _structure(what, fields, lambda f: _structure_file_fields(f, VideoFile))


def parse_callback(data: object) -> CallbackChallenge | TaskSnapshot:
    """Read a callback body: the URL validation challenge or a status update."""
    what = "callback body"
    body = _mapping(data, what)
    if "challenge" in body:
        return CallbackChallenge(
            _structure(what, body["challenge"], lambda v: _strict_str(v, None))
        )
    if "task" in body and "task_id" not in body:
        # A V2 push "has the same structure as the query": {"task": {...}} (undocumented).
        return _structure(
            what, body, lambda b: _unheeded(b["task"], lambda t: _h3_task(t).snapshot)
        )
    return _structure(what, body, _callback_snapshot)


def _callback_snapshot(data: Mapping[str, Any]) -> TaskSnapshot:
    code, message = _code_and_message(data)
    return _direct_snapshot(data, code, message) or _unheeded(
        data, lambda fields: _cattrs_snapshot(fields, code, message)
    )


def _unheeded(data: object, read: Callable[[Any], TaskSnapshot]) -> TaskSnapshot:
    """``read(data)``, a status no spelling knows read as UNKNOWN without a warning.

    Anyone holding a callback URL can name any status (a callback is only a hint): a warning
    naming each would print a line per callback and grow the warnings registry without bound.
    A status the API's own answer names is still warned about.
    """
    if not is_mapping(data):
        return read(data)
    status = data.get("status")
    if not isinstance(status, str) or status.strip().lower() in STATUS_SPELLINGS:
        return read(data)
    known = read({**data, "status": TaskStatus.PREPARING.value})  # every other field checked
    return attrs.evolve(known, status=TaskStatus.UNKNOWN, status_text=status)


def parse_request(data: object) -> VideoRequest:
    """Read a request body in the documented wire shape (for journals and batch files)."""
    what = "video request"
    return _structure(what, _mapping(data, what), lambda d: _converter.structure(d, VideoRequest))


def request_payload(request: VideoRequest) -> dict[str, Any]:
    """The JSON body of ``POST /v1/video_generation``; unset optional fields are left out."""
    payload: dict[str, Any] = _converter.unstructure(request)
    return payload


def with_media_urls(payload: dict[str, Any], replace: Callable[[str], str]) -> dict[str, Any]:
    """A request body (V1 or V2) with each media URL ``url`` replaced by ``replace(url)``.

    Only the media lists (V1's subject images, V2's media items of ``content``) are new:
    the rest is shared with ``payload``, which is left as it is.
    """
    if "content" in payload:
        content = []
        for item in payload["content"]:
            kind = item.get("type")
            if kind != "text":
                item = {**item, kind: {"url": replace(item[kind]["url"])}}  # noqa: PLW2901
            content.append(item)
        return {**payload, "content": content}
    subjects = [
        {**subject, "image": [replace(image) for image in subject.get("image", [])]}
        for subject in payload.get("subject_reference", [])
    ]
    return {**payload, "subject_reference": subjects}


def _base_payload(code: int | None, message: str | None) -> dict[str, Any]:
    if code is None:
        return {"status_code": 0, "status_msg": "success"}
    return {"status_code": code, "status_msg": message or ""}


def snapshot_payload(snapshot: TaskSnapshot, *, callback: bool = False) -> dict[str, Any]:
    """The wire body for a snapshot: a query response, or a callback when ``callback``.

    A query response always carries the unfinished-task placeholders (``""``, ``0``); a
    callback carries the size only when known.
    """
    body: dict[str, Any] = {
        "task_id": snapshot.task_id,
        "status": snapshot.status_text,
        "file_id": snapshot.file_id or "",
    }
    if not callback or snapshot.width is not None:
        body["video_width"] = snapshot.width or 0
    if not callback or snapshot.height is not None:
        body["video_height"] = snapshot.height or 0
    body["base_resp"] = _base_payload(snapshot.error_code, snapshot.error_message)
    return body


def callback_ack() -> dict[str, str]:
    """The answer to a status callback, as MiniMax's sample receiver gives it."""
    return {"status": "success"}


# -- the V2 dialect (MiniMax-H3) ----------------------------------------------------------
#
# Quirks of V2, handled here and nowhere else:
#
# - The request is ``content[]``: one ``text`` item (the prompt) and media items, each
#   ``{"type": "image_url", "image_url": {"url": ...}, "role": ...}``; a lone image without
#   a role is a ``first_frame``.
# - Create answers ``{"task_id"}`` only (no ``base_resp``): :func:`parse_submit` reads it.
# - The query answers ``{"task": {...}}``: the id is ``id``, the video ``content.url``,
#   the failure ``error{code, message}`` with ``code`` a string; ``expired`` is a failure.
# - Errors are real HTTP statuses with ``{"type": "error", "error": {"type", "message",
#   "http_code"}, "request_id"}``; MiniMax's code sits only inside the message, "(2013)",
#   and ``http_code`` is a string.

_ROLE_OF_TYPE = {
    "image_url": ("first_frame", "last_frame", "reference_image"),
    "video_url": ("reference_video",),
    "audio_url": ("reference_audio",),
}
_CODE_IN_MESSAGE = re.compile(r"\((\d{1,9})\)\s*$")


def _media_item(kind: str, role: str, url: str) -> dict[str, Any]:
    return {"type": kind, kind: {"url": url}, "role": role}


def h3_request_payload(request: H3Request) -> dict[str, Any]:
    """The JSON body of ``POST /v2/video_generation``; unset optional fields are left out."""
    content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
    if request.first_frame is not None:
        content.append(_media_item("image_url", "first_frame", request.first_frame))
    if request.last_frame is not None:
        content.append(_media_item("image_url", "last_frame", request.last_frame))
    content += [_media_item("image_url", "reference_image", url) for url in request.references]
    content += [
        _media_item("video_url", "reference_video", url) for url in request.reference_videos
    ]
    content += [
        _media_item("audio_url", "reference_audio", url) for url in request.reference_audios
    ]
    payload: dict[str, Any] = {
        "model": request.model,
        "content": content,
        "resolution": request.resolution,
        "duration": request.duration,
    }
    if request.ratio is not None:
        payload["ratio"] = request.ratio
    if request.callback_url is not None:
        payload["callback_url"] = request.callback_url
    if request.aigc_watermark is not None:
        payload["aigc_watermark"] = request.aigc_watermark
    if request.prompt_expansion_mode is not None:
        payload["extra"] = {"prompt_expansion_mode": request.prompt_expansion_mode}
    return payload


def _h3_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an :class:`H3Request` that a V2 body spells (``ValueError`` if it cannot)."""
    content = data.get("content")
    if not isinstance(content, list):
        raise TypeError("content must be a list of items")
    fields: dict[str, Any] = {"references": [], "reference_videos": [], "reference_audios": []}
    texts = []
    images = [item for item in content if is_mapping(item) and item.get("type") == "image_url"]
    for index, item in enumerate(content):
        if not is_mapping(item):
            raise TypeError(f"content[{index}] must be an object")
        kind = item.get("type")
        if kind == "text":
            texts.append(_strict_str(item.get("text"), None))
            continue
        if kind not in _ROLE_OF_TYPE:
            raise ValueError(f"content[{index}].type {str(kind)[:30]!r} is not a known type")
        media = item.get(kind)
        url = _strict_str(media.get("url") if is_mapping(media) else None, None)
        role = item.get("role")
        if role is None and kind == "image_url" and len(images) == 1:
            role = "first_frame"  # documented: a single image without a role
        if role not in _ROLE_OF_TYPE[kind]:
            raise ValueError(f"content[{index}].role {str(role)[:30]!r} does not fit {kind}")
        if role in ("first_frame", "last_frame"):
            if role in fields:
                raise ValueError(f"content[{index}]: a second {role}")
            fields[role] = url
        else:
            fields[{"reference_image": "references"}.get(role, f"{role}s")].append(url)
    if len(texts) != 1:
        raise ValueError(f"content must hold exactly one text item, it holds {len(texts)}")
    fields["prompt"] = texts[0]
    for name in ("model", "resolution", "ratio", "callback_url"):
        if name in data:
            fields[name] = _strict_str(data[name], None)
    if "duration" in data:
        fields["duration"] = _strict_int(data["duration"], None)
    if "aigc_watermark" in data:
        fields["aigc_watermark"] = _strict_bool(data["aigc_watermark"], None)
    extra = data.get("extra")
    if is_mapping(extra) and "prompt_expansion_mode" in extra:
        fields["prompt_expansion_mode"] = _strict_str(extra["prompt_expansion_mode"], None)
    return fields


def parse_h3_request(data: object) -> H3Request:
    """Read a V2 request body in the documented wire shape (for journals and batch files)."""
    what = "V2 video request"
    return _structure(
        what, _mapping(data, what), lambda d: _converter.structure(_h3_fields(d), H3Request)
    )


def _optional_str(value: object, _: object) -> str | None:
    return None if value is None else _strict_str(value, None)


def _optional_int(value: object, _: object) -> int | None:
    return None if value is None else _strict_int(value, None)


def _usage(value: object, _: object) -> tuple[tuple[str, int | float], ...] | None:
    if value is None:
        return None
    if not is_mapping(value):
        raise TypeError(f"expected an object of counters, got {type(value).__name__}")
    pairs = []
    for key, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise TypeError(f"usage.{str(key)[:30]} must be a number")
        pairs.append((_strict_str(key, None), number))
    return tuple(pairs)


def _error_code(value: object, _: object) -> str | None:
    # A string in MiniMax's schema; some clients type it as a number: both are read.
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return _digits(value, "error code")
    return _strict_str(value, None)


_structure_h3_task = make_dict_structure_fn(
    H3Task,
    _converter,
    _cattrs_detailed_validation=True,
    id=override(struct_hook=_task_id),
    status=override(struct_hook=_status),
    model=override(struct_hook=_optional_str),
    created_at=override(struct_hook=_optional_int),
    updated_at=override(struct_hook=_optional_int),
    video_url=override(struct_hook=_optional_str),
    resolution=override(struct_hook=_optional_str),
    duration=override(struct_hook=_optional_int),
    ratio=override(struct_hook=_optional_str),
    task_type=override(struct_hook=_optional_str),
    modality=override(struct_hook=_optional_str),
    error_code=override(struct_hook=_error_code),
    error_message=override(struct_hook=_optional_str),
    usage=override(struct_hook=_usage),
)


def _flat_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """A ``VideoTask`` with its nested ``content`` and ``error`` lifted to fields."""
    fields = dict(task)
    fields["status_text"] = task.get("status")
    content = task.get("content")
    if content is not None:
        if not is_mapping(content):
            raise TypeError("content must be an object")
        url = content.get("url")
        if url is not None and url != "" and not is_http_url(url):
            raise ValueError("content.url must be an absolute http(s) URL")
        fields["video_url"] = url or None
    error = task.get("error")
    if error is not None:
        if not is_mapping(error):
            raise TypeError("error must be an object")
        fields["error_code"] = error.get("code")
        fields["error_message"] = error.get("message")
    return fields


def _h3_task(task: object) -> H3Task:
    if not is_mapping(task):
        raise TypeError(f"expected a task object, got {type(task).__name__}")
    return _direct_h3_task(task) or _structure_h3_task(_flat_task(task), H3Task)


def _plain_text(value: object) -> bool:
    """Absent, ``null`` or a string of valid Unicode: what :func:`_optional_str` takes."""
    if type(value) is not str:
        return value is None
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the structurer names it
            return False
    return True


def _direct_h3_task(task: Mapping[str, Any]) -> H3Task | None:
    """The :class:`H3Task` of a task object in the shape MiniMax sends, built directly.

    Anything unusual (ids as integers, non-ASCII text, odd types, an unknown status)
    returns ``None`` and goes through the cattrs structurer, which gives the same result or
    names what is wrong (as :func:`_direct_snapshot` does for V1).
    """
    usual = _usual_status(task.get("id"), task.get("status"))
    if usual is None:
        return None
    task_id, status, status_text = usual
    texts = [task.get(name) for name in _H3_TEXTS]
    numbers = [task.get(name) for name in _H3_NUMBERS]
    if (
        "video_url" in task  # fields that the structurer would read from the top level
        or "error_code" in task
        or "error_message" in task
        or not all(_plain_text(text) for text in texts)
        or not all(number is None or type(number) is int for number in numbers)
    ):
        return None
    video_url = error_code = error_message = None
    content = task.get("content")
    if content is not None:
        if type(content) is not dict:
            return None
        url = content.get("url")
        if not _plain_text(url) or (url and not is_http_url(url)):
            return None
        video_url = url or None
    error = task.get("error")
    if error is not None:
        if type(error) is not dict:
            return None
        error_code, error_message = error.get("code"), error.get("message")
        if not (_plain_text(error_code) and _plain_text(error_message)):
            return None
    usage = task.get("usage")
    if usage is not None:
        if type(usage) is not dict:
            return None
        for key, number in usage.items():
            if not (key.isascii() and type(number) in (int, float)):
                return None
        usage = tuple(usage.items())
    model, resolution, ratio, task_type, modality = texts
    created_at, updated_at, duration = numbers
    return H3Task(
        task_id,
        status,
        status_text,
        model=model,
        created_at=created_at,
        updated_at=updated_at,
        video_url=video_url,
        resolution=resolution,
        duration=duration,
        ratio=ratio,
        task_type=task_type,
        modality=modality,
        error_code=error_code,
        error_message=error_message,
        usage=usage,
    )


_H3_TEXTS = ("model", "resolution", "ratio", "task_type", "modality")
_H3_NUMBERS = ("created_at", "updated_at", "duration")


def parse_h3_task(data: object) -> H3Task:
    """Read a ``GET /v2/query/video_generation/{task_id}`` answer (``{"task": {...}}``)."""
    what = "V2 task status"
    body = _mapping(data, what)
    return _structure(what, body, lambda b: _h3_task(b.get("task")))


def parse_h3_snapshot(data: object) -> TaskSnapshot:
    """A V2 query answer as the :class:`TaskSnapshot` the tracker follows."""
    return parse_h3_task(data).snapshot


def parse_h3_list(data: object) -> tuple[list[H3Task], int]:
    """Read a ``GET /v2/query/video_generation`` answer: the tasks and the ``total``."""
    what = "V2 task list"
    body = _mapping(data, what)

    def build(b: Mapping[str, Any]) -> tuple[list[H3Task], int]:
        items = b.get("items")
        if items is None:
            items = []
        if not isinstance(items, list):
            raise TypeError("items must be a list")
        total = b.get("total", len(items))
        return [_h3_task(item) for item in items], _strict_int(total, None)

    return _structure(what, body, build)


def h3_task_payload(task: H3Task) -> dict[str, Any]:
    """The wire body of a V2 query for ``task``: ``{"task": {...}}`` (absent fields left out)."""
    body: dict[str, Any] = {"id": task.id}
    if task.model is not None:
        body["model"] = task.model
    body["status"] = task.status_text
    if task.error_code is not None or task.error_message is not None:
        body["error"] = {"code": task.error_code, "message": task.error_message}
    for name in ("created_at", "updated_at"):
        if getattr(task, name) is not None:
            body[name] = getattr(task, name)
    if task.video_url is not None:
        body["content"] = {"url": task.video_url}
    for name in ("resolution", "duration"):
        if getattr(task, name) is not None:
            body[name] = getattr(task, name)
    if task.usage is not None:
        body["usage"] = dict(task.usage)
    for name in ("ratio", "task_type", "modality"):
        if getattr(task, name) is not None:
            body[name] = getattr(task, name)
    return {"task": body}


def h3_list_payload(tasks: list[H3Task], total: int) -> dict[str, Any]:
    """The wire body of ``GET /v2/query/video_generation``."""
    return {"items": [h3_task_payload(task)["task"] for task in tasks], "total": total}


@attrs.frozen
class CancelAnswer:
    """What ``DELETE /v2/video_generation/{task_id}`` answered."""

    task_id: str
    action: str  # "cancelled" (a queued task, no charge) or "deleted" (a finished one)
    status: TaskStatus | None


def parse_h3_cancel(data: object) -> CancelAnswer:
    """Read a ``DELETE /v2/video_generation/{task_id}`` answer."""
    what = "V2 cancel answer"
    body = _mapping(data, what)

    def build(b: Mapping[str, Any]) -> CancelAnswer:
        status = b.get("status")
        return CancelAnswer(
            _task_id(b.get("task_id"), None),
            _strict_str(b.get("action"), None),
            None if status is None else _status(status, None),
        )

    return _structure(what, body, build)


def h3_cancel_payload(task_id: str, action: str, status: str) -> dict[str, Any]:
    """The wire body of a cancel (or delete) answer."""
    return {"task_id": task_id, "action": action, "status": status}


def _v2_code(message: str) -> int | None:
    match = _CODE_IN_MESSAGE.search(message)
    return int(match.group(1)) if match else None


_V2_TYPE_CLASSES: dict[str, type[APIError]] = {
    "bad_request_error": InvalidRequestError,
    "authorized_error": AuthenticationError,
    "insufficient_balance_error": InsufficientBalanceError,
    "unprocessable_entity_error": InvalidRequestError,
    "rate_limit_error": RateLimitError,
    "server_error": ServerError,
    "overloaded_error": ServerError,
}


def v2_error_in(
    data: object,
    *,
    http_status: int,
    trace_id: str | None = None,
    retry_after: float | None = None,
) -> APIError | None:
    """The typed error of a V2 error envelope, else ``None`` (not that shape).

    The code is read from the message's trailing ``(NNNN)`` and mapped as V1's codes are;
    without one, ``error.type`` decides (then the HTTP status). ``request_id`` is kept on
    the error and stands in for the trace id when no ``Trace-Id`` header came.
    """
    if not is_mapping(data) or data.get("type") != "error":
        return None
    error = data.get("error")
    if not is_mapping(error):
        return None
    raw_message = error.get("message")
    message = raw_message if isinstance(raw_message, str) else ""
    request_id = data.get("request_id")
    request_id = shown_id(request_id) if isinstance(request_id, str) and request_id else None
    code = _v2_code(message)
    text = _CODE_IN_MESSAGE.sub("", message).rstrip() or message
    trace = trace_id or request_id
    api_error: APIError
    if code is not None:
        api_error = error_for_code(
            code, text, trace_id=trace, http_status=http_status, retry_after=retry_after
        )
    else:
        kind = error.get("type")
        cls = _V2_TYPE_CLASSES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            api_error = error_for_http_status(
                http_status, text or "error", trace_id=trace, retry_after=retry_after
            )
        elif cls is RateLimitError:
            api_error = RateLimitError(
                text, trace_id=trace, http_status=http_status, retry_after=retry_after
            )
        else:
            api_error = cls(text, trace_id=trace, http_status=http_status)
    api_error.request_id = request_id
    return api_error


_V2_ERROR_TYPES = {
    400: "bad_request_error",
    401: "authorized_error",
    402: "insufficient_balance_error",
    404: "bad_request_error",
    422: "unprocessable_entity_error",
    429: "rate_limit_error",
    500: "server_error",
    529: "overloaded_error",
}


def v2_error_payload(
    http_status: int, message: str, code: int | None, request_id: str
) -> dict[str, Any]:
    """A V2 error envelope (the emulator's answers): the code goes inside the message."""
    text = message if code is None else f"{message} ({code})"
    return {
        "type": "error",
        "error": {
            "type": _V2_ERROR_TYPES.get(http_status, "server_error"),
            "message": text,
            "http_code": str(http_status),
        },
        "request_id": request_id,
    }
