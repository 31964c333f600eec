"""Frozen models of the S2V-01 API. No I/O and no JSON logic: the wire lives in ``_wire``."""

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
    "MODEL_S2V_01",
    "CallbackChallenge",
    "EventSource",
    "StatusEvent",
    "SubjectReference",
    "TaskSnapshot",
    "TaskStatus",
    "UnknownStatusWarning",
    "VideoFile",
    "VideoRequest",
]

MODEL_S2V_01 = "S2V-01"

ImageSource = Union[str, "os.PathLike[str]"]


class UnknownStatusWarning(UserWarning):
    """MiniMax reported a task status this SDK does not know; it is treated as unfinished."""


class TaskStatus(enum.Enum):
    """The life cycle of a task: Preparing < Queueing < Processing < Success | Fail."""

    PREPARING = "Preparing"
    QUEUEING = "Queueing"
    PROCESSING = "Processing"
    SUCCESS = "Success"
    FAIL = "Fail"
    #: A status string this SDK does not know; never terminal, so waiting goes on.
    UNKNOWN = "Unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether the task can change no more (``SUCCESS`` or ``FAIL``)."""
        return self in _TERMINAL

    @property
    def rank(self) -> int:
        """Position in the life cycle; a lower rank never replaces a higher one."""
        return _RANKS[self]

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


_TERMINAL = frozenset({TaskStatus.SUCCESS, TaskStatus.FAIL})

_RANKS = {
    TaskStatus.UNKNOWN: -1,
    TaskStatus.PREPARING: 0,
    TaskStatus.QUEUEING: 1,
    TaskStatus.PROCESSING: 2,
    TaskStatus.SUCCESS: 3,
    TaskStatus.FAIL: 3,
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
}


def _image_tuple(value: ImageSource | Iterable[ImageSource]) -> tuple[str, ...]:
    if isinstance(value, str | os.PathLike):
        return (os.fspath(value),)
    return tuple(os.fspath(v) for v in value)


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


def _subject_tuple(
    value: SubjectReference | ImageSource | Iterable[SubjectReference],
) -> tuple[SubjectReference, ...]:
    if isinstance(value, SubjectReference):
        return (value,)
    if isinstance(value, str | os.PathLike):
        return (SubjectReference(value),)
    return tuple(value)


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

    """

    task_id: str
    status: TaskStatus
    file_id: str | None = None
    width: int | None = None
    height: int | None = None
    error_code: int | None = None
    error_message: str | None = None
    status_text: str = attrs.field(default=attrs.Factory(lambda s: s.status.value, takes_self=True))

    @property
    def is_terminal(self) -> bool:
        """Whether this snapshot is final."""
        return self.status.is_terminal


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
