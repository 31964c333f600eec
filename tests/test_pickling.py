"""Every public error, and a generation's outcome, survives a process boundary whole."""

from __future__ import annotations

import asyncio
import inspect
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import pytest

import minimax_s2v
from minimax_s2v import (
    GenerationOutcome,
    MiniMaxError,
    Problem,
    TaskFailedError,
    TaskSnapshot,
    TaskStatus,
    TaskTimeoutError,
)
from minimax_s2v.emulator import Durations, Emulator
from tests.client_setup import face_request, fast_client

FAILED = TaskSnapshot("12", TaskStatus.FAIL, error_code=1027, error_message="output sensitive")

# One of each exported error, built as the SDK builds it, with every attribute set.
SAMPLES: dict[str, Callable[[], MiniMaxError]] = {
    "MiniMaxError": lambda: MiniMaxError("base"),
    "TransportError": lambda: minimax_s2v.TransportError("GET /x: reset"),
    "ConnectError": lambda: minimax_s2v.ConnectError("GET /x: refused"),
    "RequestTimeoutError": lambda: minimax_s2v.RequestTimeoutError("GET /x: slow"),
    "APIError": lambda: minimax_s2v.APIError("m", code=1000, trace_id="t", http_status=200),
    "AuthenticationError": lambda: minimax_s2v.AuthenticationError("k", code=2049, trace_id="t"),
    "RateLimitError": lambda: minimax_s2v.RateLimitError("slow", code=1002, retry_after=3.5),
    "InsufficientBalanceError": lambda: minimax_s2v.InsufficientBalanceError("$", code=1008),
    "QuotaExceededError": lambda: minimax_s2v.QuotaExceededError("q", code=2056),
    "ContentPolicyError": lambda: minimax_s2v.ContentPolicyError("c", code=1026),
    "InvalidRequestError": lambda: minimax_s2v.InvalidRequestError.from_problems(
        [Problem("prompt", "too long"), Problem("subject", "missing")]
    ),
    "CallbackUnreachableError": lambda: minimax_s2v.CallbackUnreachableError(
        "fail to check callback url", code=2013, public_url="https://example.com/cb"
    ),
    "ServerError": lambda: minimax_s2v.ServerError("boom", code=1013, http_status=502),
    "UnknownAPIError": lambda: minimax_s2v.UnknownAPIError("?", code=4242),
    "ResponseValidationError": lambda: minimax_s2v.ResponseValidationError(
        "submit response", ["task_id: missing"], '{"x": 1}'
    ),
    "MismatchedAnswerError": lambda: minimax_s2v.MismatchedAnswerError(
        "task status", ["it names '2', not '1', the one asked about"], '{"task_id": "2"}'
    ),
    "TaskFailedError": lambda: TaskFailedError(FAILED),
    "TaskTimeoutError": lambda: TaskTimeoutError("12", TaskStatus.PROCESSING, 30.0),
    "SubmissionUncertainError": lambda: minimax_s2v.SubmissionUncertainError(
        "timed out", nonce="nonce-123", fingerprint="abc"
    ),
    "SubmissionConflictError": lambda: minimax_s2v.SubmissionConflictError("n-1", ["1", "2"]),
    "StoreError": lambda: minimax_s2v.StoreError("record it", "disk full", task_id="12"),
    "DownloadError": lambda: minimax_s2v.DownloadError("not an MP4"),
    "CancelRefusedError": lambda: minimax_s2v.CancelRefusedError(
        "task is running (2013)", code=2013, http_status=400
    ),
    "TaskCancelledError": lambda: minimax_s2v.TaskCancelledError(
        TaskSnapshot("13", TaskStatus.CANCELLED)
    ),
    "TaskExpiredError": lambda: minimax_s2v.TaskExpiredError(
        "14", minimax_s2v.InvalidRequestError("invalid task_id", code=2013, http_status=400)
    ),
    "ConfigurationError": lambda: minimax_s2v.ConfigurationError("no key"),
}


def same(left: object, right: object) -> bool:
    """Equal values; errors (which compare by identity) by class, text and attributes."""
    if isinstance(left, BaseException) and isinstance(right, BaseException):
        return (
            type(left) is type(right)
            and str(left) == str(right)
            and vars(left).keys() == vars(right).keys()
            and all(same(vars(left)[k], vars(right)[k]) for k in vars(left))
        )
    return left == right


def exported_errors() -> list[str]:
    return sorted(
        name
        for name in minimax_s2v.__all__
        if inspect.isclass(value := getattr(minimax_s2v, name)) and issubclass(value, MiniMaxError)
    )


def test_every_exported_error_has_a_sample() -> None:
    """A new error class cannot skip the pickling test below."""
    assert sorted(SAMPLES) == exported_errors()


@pytest.mark.parametrize("name", exported_errors())
def test_error_pickles_whole(name: str) -> None:
    """The same class, the same str(), every attribute equal."""
    error = SAMPLES[name]()
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert same(again, error)
    assert again.retryable == error.retryable


def _roundtrip(outcome: GenerationOutcome) -> GenerationOutcome:
    return outcome


async def test_outcomes_cross_a_process_pool() -> None:
    """generate_many's outcomes, failed ones with their task id, go through a process pool."""
    async with Emulator(durations=Durations(processing=0.05), late_fail_ratio=0.5, seed=3) as emu:
        async with fast_client(emu) as client:
            outcomes = [o async for o in client.generate_many([face_request() for _ in range(6)])]
    failed = [o for o in outcomes if not o.ok]
    assert failed  # the seed fails some
    assert all(o.task_id for o in outcomes)  # failed ones included
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(1) as pool:
        back = [await loop.run_in_executor(pool, _roundtrip, o) for o in outcomes]
    assert [o.task_id for o in back] == [o.task_id for o in outcomes]
    assert all(same(a.error, b.error) for a, b in zip(back, outcomes, strict=True))
    assert [o.generation for o in back] == [o.generation for o in outcomes]
