"""Frozen models of the video APIs (S2V-01 on V1, MiniMax-H3 on V2). No I/O, no JSON logic.

The wire, both dialects of it, lives in ``_wire``.
"""

from __future__ import annotations

import enum
import os
import warnings
from collections.abc import Iterable
from datetime import datetime
from typing import Union

import attrs
from yarl import URL

__all__ = [
    "H3_MODELS",
    "MODEL_H3",
    "MODEL_H3_MAX",
    "MODEL_S2V_01",
    "AnyRequest",
    "CallbackChallenge",
    "Dialect",
    "EventSource",
    "H3Request",
    "H3Task",
    "StatusEvent",
    "SubjectReference",
    "TaskSnapshot",
    "TaskStatus",
    "UnknownStatusWarning",
    "VideoFile",
    "VideoRequest",
]

MODEL_S2V_01 = "S2V-01"
MODEL_H3 = "MiniMax-H3"
MODEL_H3_MAX = "MiniMax-H3-Max"
#: The models of the V2 video API.
H3_MODELS = (MODEL_H3, MODEL_H3_MAX)
#: The resolution sent when a request names none: H3's examples use 2K; H3-Max has no 2K.
DEFAULT_RESOLUTION = {MODEL_H3: "2K", MODEL_H3_MAX: "768P"}
DEFAULT_DURATION = 5


class Dialect(enum.Enum):
    """Which video API a task lives on: V1 (``/v1/video_generation``) or V2 (MiniMax-H3)."""

    V1 = "v1"
    V2 = "v2"

    @classmethod
    def of_model(cls, model: str | None) -> Dialect:
        """The API a model is served by (anything but a V2 model is V1's)."""
        return cls.V2 if model in H3_MODELS else cls.V1


ImageSource = Union[str, "os.PathLike[str]"]


class UnknownStatusWarning(UserWarning):
    """MiniMax reported a task status this SDK does not know; it is treated as unfinished."""


class TaskStatus(enum.Enum):
    """The life cycle of a task: Preparing < Queueing < Processing < Success | Fail | Cancelled.

    V2 spells them ``queued``, ``running``, ``succeeded``, ``failed`` and ``cancelled``;
    ``expired`` (seen in third-party schemas, not in MiniMax's enum) is read as ``Fail``.
    """

    PREPARING = "Preparing"
    QUEUEING = "Queueing"
    PROCESSING = "Processing"
    SUCCESS = "Success"
    FAIL = "Fail"
    #: Cancelled before it ran (V2's ``DELETE`` of a queued task, at no charge).
    CANCELLED = "Cancelled"
    #: A status string this SDK does not know; never terminal, so waiting goes on.
    UNKNOWN = "Unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether the task can change no more (``SUCCESS``, ``FAIL`` or ``CANCELLED``)."""
        return self._value_ in _TERMINAL  # by value: str hashes are cached, Enum's are not

    @property
    def rank(self) -> int:
        """Position in the life cycle; a lower rank never replaces a higher one."""
        return _RANKS[self._value_]

    @classmethod
    def parse(cls, value: str) -> TaskStatus:
        """Read a status string in any casing or synonym MiniMax has been seen to send.

        ``Fail``, ``fail``, ``failed`` and ``Failed`` are one status; so are ``Success`` and
        ``success``. An unknown value gives :attr:`UNKNOWN` and an :class:`UnknownStatusWarning`
        instead of an exception, so that a new status never stops a wait.
        """
        status = STATUS_SPELLINGS.get(value.strip().lower())
        if status is None:
            warnings.warn(
                f"unknown task status {value[:40]!r}; treating it as unfinished",
                UnknownStatusWarning,
                stacklevel=2,
            )
            return cls.UNKNOWN
        return status


_TERMINAL = frozenset({TaskStatus.SUCCESS.value, TaskStatus.FAIL.value, TaskStatus.CANCELLED.value})

_RANKS = {
    status.value: rank
    for status, rank in (
        (TaskStatus.UNKNOWN, -1),
        (TaskStatus.PREPARING, 0),
        (TaskStatus.QUEUEING, 1),
        (TaskStatus.PROCESSING, 2),
        (TaskStatus.SUCCESS, 3),
        (TaskStatus.FAIL, 3),
        (TaskStatus.CANCELLED, 3),
    )
}

#: Every status spelling MiniMax has been seen to send, lower-cased.
STATUS_SPELLINGS = {
    "preparing": TaskStatus.PREPARING,
    "queueing": TaskStatus.QUEUEING,
    "queuing": TaskStatus.QUEUEING,
    "queued": TaskStatus.QUEUEING,
    "processing": TaskStatus.PROCESSING,
    "running": TaskStatus.PROCESSING,
    "success": TaskStatus.SUCCESS,
    "succeeded": TaskStatus.SUCCESS,
    "fail": TaskStatus.FAIL,
    "failed": TaskStatus.FAIL,
    "failure": TaskStatus.FAIL,
    # Not in MiniMax's V2 enum, but in third-party schemas that treat it as terminal.
    "expired": TaskStatus.FAIL,
    "cancelled": TaskStatus.CANCELLED,
    "canceled": TaskStatus.CANCELLED,
}


def _plain(text: str) -> str:
    """``text`` as an exact ``str``.

    A ``str`` subclass can override the methods the checks call (``lower``, ``startswith``,
    slicing, ``__str__``) to tell them one text while ``json.dumps`` sends its real one: a
    request keeps only real text, so that what is checked is what is sent.
    """
    return text if type(text) is str else str.__str__(text)


def _plain_fields(instance: attrs.AttrsInstance) -> None:
    """Replace every ``str``- or ``int``-subclass value of an attrs instance by its real value.

    Frozen instances too. An ``int`` subclass can lie to the range checks (``__le__``) while
    ``json.dumps`` sends its real number, as a ``str`` subclass can about its text.
    """
    for field in attrs.fields(type(instance)):
        value = getattr(instance, field.name)
        if isinstance(value, str) and type(value) is not str:
            object.__setattr__(instance, field.name, _plain(value))
        elif isinstance(value, int) and type(value) not in (int, bool):
            object.__setattr__(instance, field.name, int.__int__(value))


def _source(value: ImageSource) -> str:
    path = os.fspath(value)
    return _plain(path) if isinstance(path, str) else path  # bytes: refused by the checks


def _image_tuple(value: ImageSource | Iterable[ImageSource]) -> tuple[str, ...]:
    if isinstance(value, str | os.PathLike):
        return (_source(value),)
    return tuple(_source(v) for v in value)


@attrs.frozen
class SubjectReference:
    """The subject to keep in the video: a human face.

    Args:
        image: the face image, as an http(s) URL, a ``data:image/...;base64,`` URL or a local
            file path (read and sent as a data URL). The API takes exactly one image.
        type: ``"character"``, the only type S2V-01 accepts.

    """

    image: tuple[str, ...] = attrs.field(converter=_image_tuple)
    type: str = "character"

    def __attrs_post_init__(self) -> None:
        _plain_fields(self)


def _subject_tuple(
    value: SubjectReference | ImageSource | Iterable[SubjectReference],
) -> tuple[SubjectReference, ...]:
    if isinstance(value, str | os.PathLike):
        return (SubjectReference(value),)
    subjects = (value,) if isinstance(value, SubjectReference) else tuple(value)
    return tuple(_plain_subject(subject) for subject in subjects)


def _plain_subject(subject: SubjectReference) -> SubjectReference:
    """A subclass read once, into a plain :class:`SubjectReference`.

    Its ``image`` could answer each read differently: a URL to the check, a local path to
    the sender.
    """
    if isinstance(subject, SubjectReference) and type(subject) is not SubjectReference:
        return SubjectReference(subject.image, subject.type)
    return subject  # a plain one, or something the checks refuse


@attrs.frozen
class VideoRequest:
    """One S2V-01 generation: a face and a prompt.

    Args:
        subject: the face, as a :class:`SubjectReference` or simply an image URL or path.
        prompt: what happens in the video, at most 2000 characters.
        prompt_optimizer: let MiniMax rewrite the prompt (the API's default is on).
        callback_url: where MiniMax POSTs status updates (the receiver sets this for you).
        aigc_watermark: China-region only: add the AIGC watermark.
        model: ``"S2V-01"``.

    """

    subject: tuple[SubjectReference, ...] = attrs.field(converter=_subject_tuple)
    prompt: str | None = None
    prompt_optimizer: bool | None = None
    callback_url: str | None = None
    aigc_watermark: bool | None = None
    model: str = MODEL_S2V_01

    def __attrs_post_init__(self) -> None:
        _plain_fields(self)


def _sources(value: ImageSource | Iterable[ImageSource] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return _image_tuple(value)


def _optional_source(value: ImageSource | None) -> str | None:
    return None if value is None else _source(value)


@attrs.frozen
class H3Request:
    """One MiniMax-H3 generation on the V2 API: a prompt, with the subject as reference images.

    Every media input is an http(s) URL, a ``data:`` URL, an uploaded file
    (``mm_file://<file_id>``) or a local path (read and sent as a data URL). Reference inputs
    and first/last frames are two modes: a request uses one kind or the other, never both.

    Args:
        prompt: what happens in the video, at most 7000 characters (required).
        references: the subject to keep: up to 9 reference images.
        reference_videos: up to 3 reference clips (MP4/MOV, 2-15 s, 15 s in all).
        reference_audios: up to 3 reference audios (WAV/MP3, 2-15 s, 15 s in all).
        first_frame, last_frame: start (and/or end) the video on these images instead.
        model: ``"MiniMax-H3"`` (the default) or ``"MiniMax-H3-Max"``.
        resolution: ``"768P"`` or ``"2K"`` for H3 (default 2K), ``"480P"`` or ``"768P"`` for
            H3-Max (default 768P).
        duration: seconds, 4-15 for H3 and 5-15 for H3-Max (default 5).
        ratio: ``adaptive`` (the API's default), ``21:9``, ``16:9``, ``4:3``, ``1:1``,
            ``3:4`` or ``9:16``; a text-only request needs a concrete one.
        callback_url: where MiniMax POSTs status updates (the receiver sets this for you).
        aigc_watermark: add the AIGC watermark (documented on the China-region page only).
        prompt_expansion_mode: H3-Max only: ``disabled``, ``balanced`` or ``quality``.

    """

    prompt: str
    references: tuple[str, ...] = attrs.field(default=(), converter=_sources)
    reference_videos: tuple[str, ...] = attrs.field(default=(), converter=_sources)
    reference_audios: tuple[str, ...] = attrs.field(default=(), converter=_sources)
    first_frame: str | None = attrs.field(default=None, converter=_optional_source)
    last_frame: str | None = attrs.field(default=None, converter=_optional_source)
    model: str = MODEL_H3
    resolution: str = attrs.field(
        default=attrs.Factory(lambda s: DEFAULT_RESOLUTION.get(s.model, "2K"), takes_self=True)
    )
    duration: int = DEFAULT_DURATION
    ratio: str | None = None
    callback_url: str | None = None
    aigc_watermark: bool | None = None
    prompt_expansion_mode: str | None = None

    def __attrs_post_init__(self) -> None:
        _plain_fields(self)


#: A request of either API.
AnyRequest = VideoRequest | H3Request


@attrs.frozen
class H3Task:
    """A V2 task as ``GET /v2/query/video_generation/{task_id}`` describes it (``task``).

    Attributes:
        id: the task id, a string of digits.
        status: the parsed status; ``status_text`` is the string as received.
        model, resolution, duration, ratio, task_type, modality: as MiniMax reports them.
        created_at, updated_at: Unix seconds.
        video_url: ``content.url`` of a succeeded task, time-limited.
        error_code, error_message: why it failed (``error``, absent on success).
        usage: the ``usage`` counters (``{}`` while unfinished).

    """

    id: str
    status: TaskStatus
    status_text: str
    model: str | None = None
    created_at: int | None = None
    updated_at: int | None = None
    video_url: str | None = None
    resolution: str | None = None
    duration: int | None = None
    ratio: str | None = None
    task_type: str | None = None
    modality: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    usage: tuple[tuple[str, int | float], ...] | None = None

    @property
    def snapshot(self) -> TaskSnapshot:
        """The task as the dialect-free :class:`TaskSnapshot` the tracker follows."""
        code = self.error_code
        return TaskSnapshot(
            self.id,
            self.status,
            error_code=int(code)
            if code is not None and code.isascii() and code.isdigit()
            else None,
            error_message=self.error_message,
            status_text=self.status_text,
            video_url=self.video_url,
        )


@attrs.frozen
class TaskSnapshot:
    """What MiniMax last said about a task (a query response or a status callback).

    Attributes:
        task_id: the task, a string of digits.
        status: the parsed status.
        file_id: the output file once the task succeeded, else ``None``.
        width, height: the video size once known, else ``None``.
        error_code, error_message: why a task failed, when MiniMax said so.
        status_text: the status string exactly as received.
        video_url: V2 only: the time-limited download URL of a succeeded task
            (``task.content.url``; query again for a fresh one).

    """

    task_id: str
    status: TaskStatus
    file_id: str | None = None
    width: int | None = None
    height: int | None = None
    error_code: int | None = None
    error_message: str | None = None
    status_text: str = attrs.field(default=attrs.Factory(lambda s: s.status.value, takes_self=True))
    video_url: str | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether this snapshot is final."""
        return self.status.is_terminal


#: A :class:`TaskSnapshot` kept as a tuple of its fields, the status by its value: strings,
#: numbers and ``None`` only, so the garbage collector stops tracking it. A service holds one
#: per task it follows (and a store one per update it journals): as objects, each would be
#: walked by every full collection, and promoted ones would bring the next one closer.
SnapshotState = tuple[
    str, str, str | None, int | None, int | None, int | None, str | None, str, str | None
]

_STATUS_OF_VALUE = {status.value: status for status in TaskStatus}


def freeze_snapshot(snapshot: TaskSnapshot) -> SnapshotState:
    """``snapshot`` as a :data:`SnapshotState` (see :func:`thaw_snapshot`)."""
    return (
        snapshot.task_id,
        snapshot.status._value_,  # a plain attribute, where .value is a descriptor call
        snapshot.file_id,
        snapshot.width,
        snapshot.height,
        snapshot.error_code,
        snapshot.error_message,
        snapshot.status_text,
        snapshot.video_url,
    )


def thaw_snapshot(state: SnapshotState) -> TaskSnapshot:
    """The :class:`TaskSnapshot` that :func:`freeze_snapshot` made ``state`` of (an equal one)."""
    task_id, status, file_id, width, height, code, message, text, video_url = state
    return TaskSnapshot(
        task_id, _STATUS_OF_VALUE[status], file_id, width, height, code, message, text, video_url
    )


def state_status(state: SnapshotState) -> TaskStatus:
    """The status of a :data:`SnapshotState`, without making the snapshot."""
    return _STATUS_OF_VALUE[state[1]]


def state_is_terminal(state: SnapshotState) -> bool:
    """Whether a :data:`SnapshotState` is final, without making the snapshot."""
    return state[1] in _TERMINAL


@attrs.frozen
class VideoFile:
    """A generated video as ``/v1/files/retrieve`` describes it.

    Attributes:
        file_id: the file, as an integer (the query response spells it as a string).
        bytes: the size MiniMax reports; it can be 0.
        created_at: when the file was created (UTC).
        download_url: valid until ``expires_at`` (one hour); retrieve again for a fresh one.
        backup_download_url: a second URL some responses carry.
        expires_at: when ``download_url`` stops working, counted from retrieval.

    """

    file_id: int
    bytes: int
    created_at: datetime
    filename: str
    purpose: str
    download_url: URL
    expires_at: datetime
    backup_download_url: URL | None = None


@attrs.frozen
class CallbackChallenge:
    """MiniMax's validation of a callback URL: echo ``challenge`` back within 3 seconds."""

    challenge: str


class EventSource(enum.Enum):
    """Where a status update came from."""

    CALLBACK = "callback"
    POLL = "poll"
    STORE = "store"


@attrs.frozen
class StatusEvent:
    """A status update as the SDK received it: the snapshot, its source and arrival time."""

    snapshot: TaskSnapshot
    source: EventSource
    received_at: datetime
