"""Retry policy and rate-limit buckets: the rules, without timing assertions."""

from __future__ import annotations

import asyncio

import pytest

import minimax_s2v
from minimax_s2v import RateLimit, RateLimitError, RetryPolicy, ServerError, TransportError
from minimax_s2v._errors import InvalidRequestError, error_for_code
from minimax_s2v._ratelimit import EndpointClass, RateLimiter, TokenBucket
from minimax_s2v._retry import Retrying, retry_call


def test_backoff_is_capped_and_grows() -> None:
    """Waits grow exponentially, are capped, and honour Retry-After up to its cap."""
    policy = RetryPolicy(
        wait_initial=1, wait_max=8, wait_jitter=0, wait_exp_base=2, retry_after_max=30
    )
    assert [policy.backoff(n) for n in range(1, 6)] == [1, 2, 4, 8, 8]
    limited = RateLimitError("slow", code=1002, retry_after=20)
    assert policy.backoff(1, limited) == 20
    assert policy.backoff(1, RateLimitError("slow", code=1002, retry_after=999)) == 30


def test_jitter_stays_in_bounds() -> None:
    """Jitter adds at most wait_jitter seconds and never passes the cap."""
    policy = RetryPolicy(wait_initial=1, wait_max=1.5, wait_jitter=1)
    delays = {policy.backoff(1) for _ in range(200)}
    assert all(1 <= d <= 1.5 for d in delays)
    assert len(delays) > 1


async def test_retry_call_reraises_last_error_unwrapped() -> None:
    """After the attempts the last error itself is raised; non-retryable ones at once."""
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        raise ServerError("boom", code=1013)

    with pytest.raises(ServerError, match="boom"):
        await retry_call(RetryPolicy(attempts=4), flaky, what="test")
    assert len(calls) == 4

    async def final() -> str:
        calls.append(2)
        raise InvalidRequestError("bad", code=2013)

    with pytest.raises(InvalidRequestError):
        await retry_call(RetryPolicy(attempts=4), final, what="test")
    assert calls.count(2) == 1


async def test_retry_call_timeout_counts_from_the_first_attempt() -> None:
    """A first attempt that used up the policy's timeout before failing is not retried."""
    calls: list[int] = []

    async def slow_failure() -> str:
        calls.append(1)
        await asyncio.sleep(0.3)
        raise ServerError("boom", code=1013)

    policy = RetryPolicy(attempts=5, wait_initial=0.01, wait_jitter=0, timeout=0.2)
    with pytest.raises(ServerError):
        await retry_call(policy, slow_failure, what="test")
    assert calls == [1]


async def test_retry_on_exception_classes_and_success() -> None:
    """`on` may list exception classes; a later success is returned."""
    attempts: list[int] = []

    async def second_time() -> str:
        attempts.append(1)
        if len(attempts) < 2:
            raise TransportError("reset")
        return "ok"

    policy = RetryPolicy(on=(TransportError,))
    assert await retry_call(policy, second_time, what="test") == "ok"
    assert not policy.should_retry(error_for_code(1002, "x"))


def test_limiter_buckets_per_endpoint() -> None:
    """Only configured classes are limited; a configured limit keeps its headroom."""
    limiter = RateLimiter(RateLimit(submit_rpm=120))
    bucket = limiter.bucket(EndpointClass.SUBMIT)
    assert bucket is not None
    assert bucket.rpm == pytest.approx(120 * 0.99)
    assert limiter.bucket(EndpointClass.QUERY) is None
    bucket.on_rate_limited()  # fixed buckets do not adapt
    assert bucket.rpm == pytest.approx(120 * 0.99)


def test_adaptive_bucket_is_aimd() -> None:
    """Adaptive: grows while calls succeed, cuts by a quarter on 1002, once per episode."""
    bucket = TokenBucket(60, adaptive=True)
    for _ in range(10):
        bucket.on_success()
    grown = bucket.rpm
    assert grown > 60 * 1.5  # slow start grows multiplicatively
    bucket.on_rate_limited()
    assert bucket.rpm == pytest.approx(grown * 0.75)
    bucket.on_rate_limited()  # no success since the cut: the same episode, no second cut
    assert bucket.rpm == pytest.approx(grown * 0.75)
    before = bucket.rpm
    bucket.on_success()
    assert bucket.rpm == pytest.approx(before + 1)  # additive after the first cut
    bucket.on_rate_limited()  # a new episode cuts again
    assert bucket.rpm == pytest.approx((before + 1) * 0.75)


def test_adaptive_submit_starts_at_default() -> None:
    """With an unknown limit, submissions start at adaptive_start_rpm."""
    limiter = RateLimiter(RateLimit(adaptive=True, adaptive_start_rpm=30))
    bucket = limiter.bucket(EndpointClass.SUBMIT)
    assert bucket is not None
    assert bucket.rpm == pytest.approx(30)
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)


async def test_bucket_grants_its_burst_at_once() -> None:
    """A full bucket grants its burst without waiting (the pacing itself is benchmarked)."""
    bucket = TokenBucket(60, burst=3)
    for _ in range(3):
        await bucket.acquire()


async def test_set_testing_skips_the_waits_and_keeps_the_policy() -> None:
    """Under set_testing() an hour-long backoff goes at once; the attempts still count."""
    policy = RetryPolicy(attempts=3, wait_initial=3600, wait_max=3600, wait_jitter=0, timeout=None)
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ServerError("boom", code=1013)
        return "ok"

    with minimax_s2v.set_testing():
        assert minimax_s2v.is_testing()
        async with asyncio.timeout(5):  # would wait two hours if the waits were kept
            assert await retry_call(policy, flaky, what="test") == "ok"
    assert calls == [1, 1, 1]
    assert policy.backoff(1) == 3600  # the policy itself is unchanged


def test_set_testing_as_a_context_manager_restores_the_setting() -> None:
    """The previous setting comes back at the end of the block, nested or not."""
    before = minimax_s2v.is_testing()
    with minimax_s2v.set_testing(False):
        assert not minimax_s2v.is_testing()
        with minimax_s2v.set_testing(True):
            assert minimax_s2v.is_testing()
        assert not minimax_s2v.is_testing()
    assert minimax_s2v.is_testing() is before


async def test_retrying_gives_each_attempt_its_number_and_stops_on_success() -> None:
    """The attempts iterator: numbered tries, a retried error swallowed, none after success."""
    seen: list[int] = []
    async for attempt in Retrying(RetryPolicy(attempts=5), what="test"):
        with attempt:
            seen.append(attempt.number)
            if attempt.number < 3:
                raise TransportError("broke off")
    assert seen == [1, 2, 3]


async def test_retrying_lets_an_unretried_error_through_at_once() -> None:
    """An error the policy does not retry leaves the first attempt's block as raised."""
    seen: list[int] = []

    async def refused() -> None:
        async for attempt in Retrying(RetryPolicy(attempts=5), what="test"):
            with attempt:
                seen.append(attempt.number)
                raise InvalidRequestError("no", code=2013)

    with pytest.raises(InvalidRequestError):
        await refused()
    assert seen == [1]


async def test_retrying_narrows_with_should_retry_and_keeps_the_policys_on() -> None:
    """``should_retry`` narrows what the policy retries; it never widens it."""
    policy = RetryPolicy(attempts=4, on=(TransportError,))
    counted: list[int] = []

    async def server_error() -> None:
        counted.append(1)
        raise ServerError("boom", code=1013)  # retryable by class, but not in `on`

    with pytest.raises(ServerError):
        await retry_call(policy, server_error, what="test", should_retry=lambda _: True)
    assert counted == [1]

    async def broken() -> None:
        counted.append(2)
        raise TransportError("broke off")

    with pytest.raises(TransportError):
        await retry_call(policy, broken, what="test", should_retry=lambda _: False)
    assert counted == [1, 2]
