"""The error tree: every documented code maps to its class, and nothing leaks secrets."""

from __future__ import annotations

import pickle

import pytest

from minimax_s2v import (
    APIError,
    AuthenticationError,
    CallbackUnreachableError,
    ContentPolicyError,
    InsufficientBalanceError,
    InvalidRequestError,
    MiniMaxError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    SubmissionUncertainError,
    TaskFailedError,
    TaskSnapshot,
    TaskStatus,
    TaskTimeoutError,
    TransportError,
    UnknownAPIError,
)
from minimax_s2v._errors import error_for_code, error_for_http_status

# Every base_resp code of API_FACTS.md, with the class it must map to.
DOCUMENTED = {
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
    1041: UnknownAPIError,
    1042: InvalidRequestError,
    2013: InvalidRequestError,
    2038: UnknownAPIError,
    2045: RateLimitError,
    2049: AuthenticationError,
    2056: QuotaExceededError,
}
RETRYABLE = {1000, 1001, 1002, 1013, 1024, 1033, 1039, 2045}


@pytest.mark.parametrize(("code", "cls"), sorted(DOCUMENTED.items()))
def test_documented_code_maps_to_class(code: int, cls: type[APIError]) -> None:
    """Each documented code gives its own class, keeping code, message and trace id."""
    error = error_for_code(code, "some message", trace_id="trace-1")
    assert type(error) is cls
    assert error.code == code
    assert error.message == "some message"
    assert error.trace_id == "trace-1"
    assert error.http_status == 200
    assert "trace-1" in str(error)
    assert error.retryable is (code in RETRYABLE)


@pytest.mark.parametrize("code", [-1, 1, 999, 1003, 3000, 99999])
def test_unknown_code_is_kept(code: int) -> None:
    """An undocumented code becomes UnknownAPIError with its code and message."""
    error = error_for_code(code, "new thing")
    assert type(error) is UnknownAPIError
    assert (error.code, error.message) == (code, "new thing")
    assert f"[{code}]" in str(error)


def test_auth_error_hints_at_region() -> None:
    """A rejected key says which two hosts to compare."""
    message = str(error_for_code(2049, "invalid api key"))
    assert "api.minimax.io" in message
    assert "api.minimaxi.com" in message


def test_region_is_only_a_possibility() -> None:
    """A typo gets the same 2049 as a key of the other region: the hint says "if", not "is"."""
    message = str(error_for_code(2049, "invalid api key"))
    assert "check the key; if it is from the other region" in message
    assert "vice versa" not in message


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (429, RateLimitError),
        (408, ServerError),
        (500, ServerError),
        (503, ServerError),
        (418, UnknownAPIError),
    ],
)
def test_http_status_maps_to_class(status: int, cls: type[APIError]) -> None:
    """An HTTP error without base_resp still gets a typed error."""
    error = error_for_http_status(status, "reason", trace_id="t")
    assert type(error) is cls
    assert error.http_status == status
    assert error.code is None


def test_rate_limit_carries_retry_after() -> None:
    """Retry-After is kept on RateLimitError."""
    error = error_for_code(1002, "rate limit", retry_after=7.5)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.5


def test_tree_roots() -> None:
    """Every error class derives from MiniMaxError."""
    for cls in (
        *DOCUMENTED.values(),
        TransportError,
        SubmissionUncertainError,
        TaskFailedError,
        TaskTimeoutError,
    ):
        assert issubclass(cls, MiniMaxError)


def test_api_errors_pickle() -> None:
    """API errors survive pickling (for process pools and task queues)."""
    error = error_for_code(1002, "slow down", trace_id="abc", retry_after=3.0)
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert type(again) is RateLimitError
    assert (again.code, again.message, again.trace_id) == (1002, "slow down", "abc")


def test_task_failed_carries_typed_cause() -> None:
    """A Fail with 1026 exposes a ContentPolicyError as the cause."""
    snapshot = TaskSnapshot("42", TaskStatus.FAIL, error_code=1026, error_message="sensitive")
    error = TaskFailedError(snapshot)
    assert isinstance(error.api_error, ContentPolicyError)
    assert "42" in str(error)
    assert "sensitive" in str(error)


def test_timeout_says_how_to_wait_again() -> None:
    """TaskTimeoutError names the task and how to resume waiting."""
    error = TaskTimeoutError("777", TaskStatus.PROCESSING, 12.0)
    assert "client.task('777')" in str(error)
    assert "Processing" in str(error)


def test_uncertain_submission_keeps_nonce() -> None:
    """SubmissionUncertainError keeps what is needed to find the task later."""
    error = SubmissionUncertainError("connection reset", nonce="n1", fingerprint="f1")
    assert (error.nonce, error.fingerprint) == ("n1", "f1")
    assert "not retried" in str(error)


def test_preflight_error_lists_problems() -> None:
    """InvalidRequestError.from_problems lists every problem with its field."""
    from minimax_s2v import Problem

    error = InvalidRequestError.from_problems(
        [Problem("prompt", "too long"), Problem("model", "bad")]
    )
    assert "prompt: too long" in str(error)
    assert "model: bad" in str(error)
    assert len(error.problems) == 2
    api = error_for_code(2013, "invalid params")
    assert isinstance(api, InvalidRequestError)
    assert api.problems == (Problem("request", "invalid params"),)


def test_disallowed_image_url_is_not_a_server_error() -> None:
    """1000 "disallowed image url" means data URLs are refused: final, with a hint."""
    error = error_for_code(1000, "disallowed image url")
    assert isinstance(error, InvalidRequestError)
    assert not error.retryable
    assert "public http(s) URL" in str(error)
    assert type(error_for_code(1000, "unknown error")) is ServerError


def test_failed_callback_check_is_its_own_error() -> None:
    """2013 "fail to check callback url" is a CallbackUnreachableError; other 2013s are not."""
    error = error_for_code(2013, "invalid params, fail to check callback url", trace_id="t")
    assert type(error) is CallbackUnreachableError
    assert isinstance(error, InvalidRequestError)
    assert not error.retryable
    assert error.public_url is None
    assert "self_check()" in str(error)
    assert "(trace id t)" in str(error)
    named = error.naming("https://hooks.example.com/minimax")
    assert (named.code, named.trace_id) == (2013, "t")
    assert "at https://hooks.example.com/minimax while creating the task" in str(named)
    plain = error_for_code(2013, "invalid params, callback_url must be an http(s) URL")
    assert type(plain) is InvalidRequestError
