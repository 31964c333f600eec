"""The error tree of minimax_s2v.

Every exception the SDK raises on purpose derives from :class:`MiniMaxError`::

    MiniMaxError
    ├── TransportError              the request did not complete (retryable)
    │   ├── ConnectError            no connection was made: the request certainly was not sent
    │   └── RequestTimeoutError     no complete answer in time: the request may have been served
    ├── APIError                    MiniMax answered with an error (in-band ``base_resp`` or HTTP)
    │   ├── AuthenticationError     1004, 2049, HTTP 401/403: wrong key, or key of the other region
    │   ├── RateLimitError          1002, 1039, 2045, HTTP 429: slow down (``retry_after`` if known)
    │   ├── InsufficientBalanceError 1008: top up the account
    │   ├── QuotaExceededError      2056: usage limit of the current window reached
    │   ├── ContentPolicyError      1026 (input) and 1027 (output): change the prompt or image
    │   ├── InvalidRequestError     2013, 1042, and the SDK's own preflight validation
    │   │   ├── CallbackUnreachableError 2013 "fail to check callback url": nothing was created
    │   │   └── CancelRefusedError  V2: the task cannot be cancelled (running or cancelled)
    │   ├── ServerError             1000, 1001, 1013, 1024, 1033, HTTP 5xx (retryable)
    │   └── UnknownAPIError         any other code, kept with its message
    ├── ResponseValidationError     a body that does not have the documented shape
    │   └── MismatchedAnswerError   an answer about another task or file, or no video (retryable)
    ├── TaskFailedError             the task ended with status ``Fail``
    │   └── TaskCancelledError      the task was cancelled (V2 ``DELETE`` of a queued task)
    ├── TaskExpiredError            a V2 task is past the 7 days in which it can be queried
    ├── TaskTimeoutError            a wait ended before the task did (the task may still finish)
    ├── SubmissionUncertainError    a submission may or may not have created a task
    ├── SubmissionConflictError     two tasks claim one uncertain submission; neither adopted
    ├── StoreError                  the journal could not be written (a task it names exists)
    ├── DownloadError               a video could not be saved (too large, not the MP4 reported,
    │                               answers that never fit, URL refused for good)
    └── ConfigurationError          the client was set up wrongly (no key, unknown region)

Each class says whether retrying the same call may succeed (``retryable``). No error ever
carries the API key, in its text or anywhere in its ``__cause__``/``__context__`` chain:
``_redaction`` scrubs server-echoed text and replaces foreign exceptions that keep request
headers (the trust rule is written down there).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ._models import TaskSnapshot, TaskStatus

__all__ = [
    "APIError",
    "AuthenticationError",
    "CallbackUnreachableError",
    "CancelRefusedError",
    "ConfigurationError",
    "ConnectError",
    "ContentPolicyError",
    "DownloadError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "MiniMaxError",
    "MismatchedAnswerError",
    "Problem",
    "QuotaExceededError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseValidationError",
    "ServerError",
    "StoreError",
    "SubmissionConflictError",
    "SubmissionUncertainError",
    "TaskCancelledError",
    "TaskExpiredError",
    "TaskFailedError",
    "TaskTimeoutError",
    "TransportError",
    "UnknownAPIError",
    "error_for_code",
    "error_for_http_status",
]

# MiniMax answers a mistyped key and a key of the other region alike (2049): the region is
# one possible cause, never the diagnosis.
_REGION_HINT = (
    "check the key; if it is from the other region, use that region's host: "
    "api.minimax.io (global) or api.minimaxi.com (mainland China)"
)


_LONGEST_LINE = 2000  # characters of one message shown at most
_LONGEST_ID = 128  # characters of a trace or request id kept (MiniMax's have 32)


def terminal_safe(text: str, limit: int = _LONGEST_LINE) -> str:
    """``text`` as one printable line: control characters escaped, cut to ``limit``.

    What a server says (a ``status_msg``, a request id) reaches logs and terminals through
    error messages; its escape sequences must not move the cursor, retitle the window or
    fake another log line.
    """
    if text.isprintable() and len(text) <= limit:
        return text
    shown = "".join(map(_shown_character, text[: limit + 1]))
    return shown if len(shown) <= limit else shown[:limit] + "…"


# Control and format characters (bidi overrides included), line and paragraph separators,
# lone surrogates: what could move a cursor, reorder a line or start another. Other text
# (a CJK message with its ideographic spaces, say) is kept as it is.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _shown_character(character: str) -> str:
    if unicodedata.category(character) not in _ESCAPED_CATEGORIES:
        return character
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def shown_id(value: str | None) -> str | None:
    """A trace or request id a server gave, as errors and logs keep it: printable, cut short."""
    return terminal_safe(value, _LONGEST_ID) if value else value


class MiniMaxError(Exception):
    """Base class of every error raised by minimax_s2v.

    Every error pickles with all its attributes and the same ``str()``, so that it can cross
    a process boundary (a process pool, a task queue): it is rebuilt without calling
    ``__init__`` again.
    """

    retryable: ClassVar[bool] = False

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, dict(vars(self))))


def _rebuild(
    cls: type[MiniMaxError], args: tuple[object, ...], state: dict[str, object]
) -> MiniMaxError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    vars(error).update(state)
    return error


class TransportError(MiniMaxError):
    """The HTTP exchange did not complete: connection lost, reset or unreadable."""

    retryable = True


class ConnectError(TransportError):
    """No connection could be made, so the request certainly did not reach the server."""


class RequestTimeoutError(TransportError):
    """No complete answer arrived in time; the server may still have acted on the request."""


class APIError(MiniMaxError):
    """MiniMax answered with an error: a non-zero ``base_resp.status_code`` or an HTTP error.

    Attributes:
        code: the ``base_resp.status_code`` (``None`` when only an HTTP status was given).
        message: the ``base_resp.status_msg`` or the HTTP reason.
        trace_id: the ``Trace-Id`` response header; quote it to MiniMax support.
        http_status: the HTTP status of the response (200 for in-band errors).
        request_id: V2 only: the envelope's ``request_id`` (it is the trace id when the
            answer had no ``Trace-Id`` header); quote it to MiniMax support.
        task_id: a task id the answer named beside the error (MiniMax's own refusals name
            none, or ``""``): a create call answered so may have created that task.

    """

    hint: ClassVar[str] = ""
    request_id: str | None = None
    task_id: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        trace_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        self.code = code
        # What a server says reaches logs and terminals through this error: kept printable.
        self.message = terminal_safe(message)
        self.trace_id = shown_id(trace_id)
        self.http_status = http_status
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = []
        if self.code is not None:
            parts.append(f"[{self.code}]")
        elif self.http_status is not None:
            parts.append(f"[HTTP {self.http_status}]")
        parts.append(self.message or "no message")
        text = " ".join(parts)
        if self.hint:
            text += f": {self.hint}"
        if self.trace_id:
            text += f" (trace id {self.trace_id})"
        return text


class AuthenticationError(APIError):
    """The API key was rejected (1004, 2049, HTTP 401/403)."""

    hint = _REGION_HINT


class RateLimitError(APIError):
    """Too many requests (1002 RPM, 1039 TPM, 2045 growth rate, HTTP 429).

    Attributes:
        retry_after: seconds the server asked to wait, when it said so.

    """

    retryable = True
    hint = "slow down; the SDK backs off and retries where that is safe"

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        trace_id: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, code=code, trace_id=trace_id, http_status=http_status)


class InsufficientBalanceError(APIError):
    """The account balance is too low (1008)."""

    hint = "top up the MiniMax account"


class QuotaExceededError(APIError):
    """The usage limit of the current window is reached (2056)."""

    hint = "wait for the next usage window"


class ContentPolicyError(APIError):
    """The input (1026) or the generated output (1027) was judged sensitive."""

    hint = "change the prompt or the face image; retrying the same input will not help"


class Problem:
    """One problem found in a request: the field it concerns and what is wrong."""

    __slots__ = ("field", "message")

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message

    def __repr__(self) -> str:
        return f"Problem(field={self.field!r}, message={self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Problem):
            return NotImplemented
        return (self.field, self.message) == (other.field, other.message)

    def __hash__(self) -> int:
        return hash((self.field, self.message))

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidRequestError(APIError):
    """The request is invalid (2013, 1042, or the SDK's preflight validation).

    Attributes:
        problems: every problem found, each naming its field (preflight fills this in;
            for an API rejection it holds one problem with the server's message).

    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        trace_id: str | None = None,
        http_status: int | None = None,
        problems: Sequence[Problem] = (),
    ) -> None:
        if not problems and code is not None:
            problems = (Problem("request", message),)
        self.problems = tuple(problems)
        super().__init__(message, code=code, trace_id=trace_id, http_status=http_status)

    @classmethod
    def from_problems(cls, problems: Sequence[Problem]) -> InvalidRequestError:
        """Build the preflight error that lists every problem at once."""
        count = len(problems)
        lines = "; ".join(str(p) for p in problems)
        noun = "problem" if count == 1 else "problems"
        return cls(f"request not sent, {count} {noun}: {lines}", problems=problems)


class CallbackUnreachableError(InvalidRequestError):
    """MiniMax could not verify the callback URL while creating the task (2013).

    MiniMax POSTs a ``challenge`` to the callback URL during the create call and answers
    only after the echo came back, within 3 s; without it the call fails with ``2013 invalid
    params, fail to check callback url`` and creates no task. Retrying cannot help until the
    URL works: it is never retried, and the submission's nonce is released.

    Attributes:
        public_url: where the callbacks were to go, as safe to show: the receiver's
            ``public_url`` (never a submission's own path, which holds its nonce and token),
            or the origin of a callback URL given in the request; ``None`` when unknown.

    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        trace_id: str | None = None,
        http_status: int | None = None,
        public_url: str | None = None,
    ) -> None:
        self.public_url = public_url
        super().__init__(message, code=code, trace_id=trace_id, http_status=http_status)

    def _describe(self) -> str:
        where = f" at {self.public_url}" if self.public_url else ""
        text = (
            f"[{self.code}] {self.message or 'callback URL not verified'}: MiniMax could not "
            f"verify the callback URL{where} while creating the task, so nothing was created. "
            "Check that it is reachable from the internet, that its TLS certificate is valid, "
            "that a proxy in front of the receiver forwards the mount path, and that the "
            "receiver answers the challenge within 3 s; receiver.self_check() or "
            "`minimax-s2v serve --check` tests the round trip"
        )
        if self.trace_id:
            text += f" (trace id {self.trace_id})"
        return text

    def naming(self, public_url: str | None) -> CallbackUnreachableError:
        """The same error, naming ``public_url`` as the place that could not be reached."""
        return CallbackUnreachableError(
            self.message,
            code=self.code,
            trace_id=self.trace_id,
            http_status=self.http_status,
            public_url=public_url,
        )


def _is_callback_check(message: str) -> bool:
    """Whether a 2013's message says the callback URL failed its check (as seen in the field)."""
    text = message.lower()
    return "callback" in text and ("check" in text or "verif" in text)


class CancelRefusedError(InvalidRequestError):
    """MiniMax refused to cancel a V2 task: only a queued task can be cancelled.

    A running task cannot be stopped (and is charged); a cancelled one is cancelled already.
    """

    hint = "only a queued task can be cancelled; a running one goes on to its end"


class ServerError(APIError):
    """A transient failure on MiniMax's side (1000, 1001, 1013, 1024, 1033, HTTP 5xx)."""

    retryable = True


class UnknownAPIError(APIError):
    """A ``base_resp`` code this SDK does not know; code and message are kept."""


class ResponseValidationError(MiniMaxError):
    """A response body did not have the documented shape.

    Attributes:
        errors: one readable line per problem, with its JSON path.
        payload: a truncated copy of the offending body.

    """

    def __init__(self, what: str, errors: Sequence[str], payload: str) -> None:
        self.errors = tuple(errors)
        self.payload = payload
        summary = "; ".join(self.errors) or "unexpected shape"
        super().__init__(f"unexpected {what}: {summary} (body: {payload})")


class MismatchedAnswerError(ResponseValidationError):
    """An answer about another task or file than the one asked about, or a success naming no video.

    A broken cache or gateway on the way may give one request another's answer: it is never
    taken for the one asked about, and asking again may get the right one (retryable: a
    wait goes on polling).
    """

    retryable = True


class TaskFailedError(MiniMaxError):
    """The task ended with status ``Fail``.

    Attributes:
        task_id: the failed task.
        snapshot: its final snapshot.
        api_error: the typed error for the failure code, when MiniMax gave one
            (e.g. :class:`ContentPolicyError` for 1026/1027).

    """

    def __init__(self, snapshot: TaskSnapshot) -> None:
        self.task_id = snapshot.task_id
        self.snapshot = snapshot
        self.api_error: APIError | None = None
        if snapshot.error_code is not None:
            self.api_error = error_for_code(snapshot.error_code, snapshot.error_message or "")
        reason = (
            str(self.api_error)
            if self.api_error
            else terminal_safe(snapshot.error_message or "no reason")
        )
        super().__init__(f"task {snapshot.task_id} failed: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.snapshot,))


class TaskCancelledError(TaskFailedError):
    """The task was cancelled (``DELETE /v2/video_generation/{id}`` while it was queued).

    A cancelled task is not charged and has no video.
    """

    def __init__(self, snapshot: TaskSnapshot) -> None:
        super().__init__(snapshot)
        self.args = (f"task {snapshot.task_id} was cancelled: it has no video",)


class TaskExpiredError(MiniMaxError):
    """A V2 task can no longer be queried: MiniMax keeps them for 7 days only.

    Its outcome cannot be learnt from the API any more; waiting on it ends with this error
    rather than polling forever. Look the task up in the MiniMax console.

    Attributes:
        task_id: the task.
        cause: the API's answer (``invalid task_id``), when one was seen.
    """

    def __init__(self, task_id: str, cause: APIError | None = None) -> None:
        self.task_id = task_id
        self.cause = cause
        seen = f" (the API answered: {cause})" if cause is not None else ""
        super().__init__(
            f"task {task_id} is past the 7-day window in which V2 tasks can be queried{seen}; "
            "its outcome is no longer available from the API: check the MiniMax console"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.task_id, self.cause))


class TaskTimeoutError(MiniMaxError):
    """A wait ran out before the task reached a final status.

    The task itself goes on: await it again with ``client.task(task_id).wait()``.
    """

    retryable = True

    def __init__(self, task_id: str, last_status: TaskStatus | None, waited: float) -> None:
        self.task_id = task_id
        self.last_status = last_status
        self.waited = waited
        status = last_status.value if last_status is not None else "unknown"
        super().__init__(
            f"task {task_id} still {status} after {waited:.1f}s; it may still finish: "
            f"await it again with client.task({task_id!r}).wait()"
        )


class SubmissionUncertainError(MiniMaxError):
    """A submission failed in a way that does not tell whether a task was created.

    It is never retried automatically: that could pay twice. A callback carrying ``nonce``
    still binds the task if it was created; otherwise check the MiniMax console.

    Attributes:
        nonce: the per-submission nonce (part of the callback URL when a receiver is used).
        fingerprint: a digest of the request, to find it again in a journal.

    """

    def __init__(self, reason: str, *, nonce: str, fingerprint: str) -> None:
        self.nonce = nonce
        self.fingerprint = fingerprint
        self.reason = reason
        super().__init__(
            f"submission {nonce} may or may not have created a task ({reason}); it was not "
            "retried, to avoid paying twice"
        )


class SubmissionConflictError(MiniMaxError):
    """Callbacks on an uncertain submission's URL named more than one existing task.

    Only MiniMax and whoever learnt the URL can post to it, so at most one of them is the
    task the submission created: neither was adopted. Check them in the MiniMax console and
    follow the right one with ``client.task(task_id)``.

    Attributes:
        nonce: the submission's nonce.
        task_ids: the task ids that claimed it, each shown to exist by the API.
    """

    def __init__(self, nonce: str, task_ids: Sequence[str]) -> None:
        self.nonce = nonce
        self.task_ids = tuple(task_ids)
        super().__init__(
            f"tasks {', '.join(self.task_ids)} all claim submission {nonce}; none was adopted: "
            "check them in the MiniMax console, then follow the right one with client.task(id)"
        )


class DownloadError(MiniMaxError):
    """A video could not be saved.

    It was larger than allowed; what came was not an MP4, or not the size the retrieve
    reported; the host kept sending answers that could not continue the file (a wrong 206);
    or its URL was refused even when fresh. Nothing is left on disk.
    """


class ConfigurationError(MiniMaxError, ValueError):
    """The client was set up wrongly, e.g. no API key or an unknown region."""


class StoreError(MiniMaxError):
    """The journal (the client's store) could not be opened, read or written, even retried.

    When ``task_id`` is set, MiniMax *did* create that task (it is paid for) and the client
    follows it in memory; only its journal entry is missing. Do not submit the request
    again: follow the task with ``client.task(task_id)``.

    Attributes:
        task_id: the task that exists although it could not be journaled, if any.
        operation: what the store was asked to do.
    """

    retryable = True

    def __init__(self, operation: str, reason: str, *, task_id: str | None = None) -> None:
        self.operation = operation
        self.reason = reason
        self.task_id = task_id
        if task_id is not None:
            message = (
                f"task {task_id} was created (and is paid for) and is followed in memory, but "
                f"the journal could not {operation} ({reason}): do not submit it again; "
                f"follow it with client.task({task_id!r})"
            )
        else:
            message = f"the journal could not {operation} ({reason})"
        super().__init__(message)


_CODE_CLASSES: dict[int, type[APIError]] = {
    1000: ServerError,
    1001: ServerError,
    1002: RateLimitError,
    1004: AuthenticationError,
    1008: InsufficientBalanceError,
    1013: ServerError,
    1024: ServerError,
    1026: ContentPolicyError,
    1027: ContentPolicyError,
    1033: ServerError,
    1039: RateLimitError,
    1042: InvalidRequestError,
    2013: InvalidRequestError,
    2045: RateLimitError,
    2049: AuthenticationError,
    2056: QuotaExceededError,
}


def error_for_code(
    code: int,
    message: str,
    *,
    trace_id: str | None = None,
    http_status: int | None = 200,
    retry_after: float | None = None,
) -> APIError:
    """Return the typed error for a non-zero ``base_resp.status_code``."""
    cls = _CODE_CLASSES.get(code, UnknownAPIError)
    if code == 2013 and _is_callback_check(message):
        return CallbackUnreachableError(
            message, code=code, trace_id=trace_id, http_status=http_status
        )
    if code == 1000 and "disallowed image url" in message.lower():
        # Seen in the field: data: URLs refused. Retrying the same image cannot help.
        return InvalidRequestError(
            f"{message}: this endpoint refuses data: URLs here; give the image as a public "
            "http(s) URL instead",
            code=code,
            trace_id=trace_id,
            http_status=http_status,
        )
    if cls is RateLimitError:
        return RateLimitError(
            message, code=code, trace_id=trace_id, http_status=http_status, retry_after=retry_after
        )
    return cls(message, code=code, trace_id=trace_id, http_status=http_status)


def error_for_http_status(
    http_status: int,
    reason: str,
    *,
    trace_id: str | None = None,
    retry_after: float | None = None,
) -> APIError:
    """Return the typed error for an HTTP error answered without a usable ``base_resp``."""
    if http_status in (401, 403):
        return AuthenticationError(reason, trace_id=trace_id, http_status=http_status)
    if http_status == 429:
        return RateLimitError(
            reason, trace_id=trace_id, http_status=http_status, retry_after=retry_after
        )
    if http_status in (408,) or http_status >= 500:
        return ServerError(reason, trace_id=trace_id, http_status=http_status)
    return UnknownAPIError(reason, trace_id=trace_id, http_status=http_status)
