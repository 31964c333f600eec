"""minimax_s2v: an asyncio-first SDK for MiniMax subject-reference video (S2V-01, MiniMax-H3)."""

from __future__ import annotations

import logging as _logging

from ._client import Client, Generation, GenerationOutcome, Resumed
from ._download import ProgressCallback
from ._errors import (
    APIError,
    AuthenticationError,
    CallbackUnreachableError,
    CancelRefusedError,
    ConfigurationError,
    ConnectError,
    ContentPolicyError,
    DownloadError,
    InsufficientBalanceError,
    InvalidRequestError,
    MiniMaxError,
    MismatchedAnswerError,
    Problem,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    ResponseValidationError,
    ServerError,
    StoreError,
    SubmissionConflictError,
    SubmissionUncertainError,
    TaskCancelledError,
    TaskExpiredError,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
    UnknownAPIError,
)
from ._models import (
    MODEL_H3,
    MODEL_H3_MAX,
    MODEL_S2V_01,
    AnyRequest,
    CallbackChallenge,
    Dialect,
    EventSource,
    H3Request,
    StatusEvent,
    SubjectReference,
    TaskSnapshot,
    TaskStatus,
    UnknownStatusWarning,
    VideoFile,
    VideoRequest,
)
from ._polling import PollPolicy
from ._preflight import validate_request
from ._ratelimit import RateLimit
from ._retry import RetryPolicy, is_testing, set_testing
from ._stats import (
    CallbackStats,
    ClientStats,
    Histogram,
    ReceiverStats,
    RetryStats,
    SubmissionStats,
)
from ._tasks import Task
from ._transport import Timeouts
from .receiver import CallbackReceiver, SelfCheckResult

__all__ = [
    "MODEL_H3",
    "MODEL_H3_MAX",
    "MODEL_S2V_01",
    "APIError",
    "AnyRequest",
    "AuthenticationError",
    "CallbackChallenge",
    "CallbackReceiver",
    "CallbackStats",
    "CallbackUnreachableError",
    "CancelRefusedError",
    "Client",
    "ClientStats",
    "ConfigurationError",
    "ConnectError",
    "ContentPolicyError",
    "Dialect",
    "DownloadError",
    "EventSource",
    "Generation",
    "GenerationOutcome",
    "H3Request",
    "Histogram",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "MiniMaxError",
    "MismatchedAnswerError",
    "PollPolicy",
    "Problem",
    "ProgressCallback",
    "QuotaExceededError",
    "RateLimit",
    "RateLimitError",
    "ReceiverStats",
    "RequestTimeoutError",
    "ResponseValidationError",
    "Resumed",
    "RetryPolicy",
    "RetryStats",
    "SelfCheckResult",
    "ServerError",
    "StatusEvent",
    "StoreError",
    "SubjectReference",
    "SubmissionConflictError",
    "SubmissionStats",
    "SubmissionUncertainError",
    "Task",
    "TaskCancelledError",
    "TaskExpiredError",
    "TaskFailedError",
    "TaskSnapshot",
    "TaskStatus",
    "TaskTimeoutError",
    "Timeouts",
    "TransportError",
    "UnknownAPIError",
    "UnknownStatusWarning",
    "VideoFile",
    "VideoRequest",
    "is_testing",
    "set_testing",
    "validate_request",
]


# A library logs, the application decides where logs go (and Python's last-resort handler
# must not print retry warnings to stderr of programs that configured nothing).
_logging.getLogger("minimax_s2v").addHandler(_logging.NullHandler())


def __getattr__(name: str) -> str:
    # The version is read lazily from the installed metadata, so importing stays cheap.
    if name == "__version__":
        from importlib.metadata import version

        return version("minimax-s2v")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
