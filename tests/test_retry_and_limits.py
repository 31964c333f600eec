"""Retry policy and rate-limit buckets: the rules, without timing assertions."""

from __future__ import annotations

import pytest

from minimax_s2v import RateLimit, RateLimitError, RetryPolicy, ServerError, TransportError
from minimax_s2v._errors import InvalidRequestError, error_for_code
from minimax_s2v._ratelimit import EndpointClass, RateLimiter, TokenBucket
from minimax_s2v._retry import retry_call


def test_backoff_is_capped_and_grows() -> None:
    """Waits grow exponentially, are capped, and honour Retry-After up to its cap."""
    policy = RetryPolicy(
        wait_initial=1, wait_max=8, wait_jitter=0, wait_exp_base=2, retry_after_max=30
    )
    assert [policy.backoff(n) for n in range(1, 6)] == [1, 2, 4, 8, 8]
    limited = RateLimitError("slow", code=1002, retry_after=20)
    assert policy.backoff(1, limited) == 20
    assert policy.backoff(1, RateLimitError("slow", code=1002, retry_after=999)) == 30
    assert policy.without_waiting().backoff(3, limited) == 0


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
        await retry_call(RetryPolicy(attempts=4, wait=False), flaky, what="test")
    assert len(calls) == 4

    async def final() -> str:
        calls.append(2)
        raise InvalidRequestError("bad", code=2013)

    with pytest.raises(InvalidRequestError):
        await retry_call(RetryPolicy(attempts=4, wait=False), final, what="test")
    assert calls.count(2) == 1


async def test_retry_on_exception_classes_and_success() -> None:
    """`on` may list exception classes; a later success is returned."""
    attempts: list[int] = []

    async def second_time() -> str:
        attempts.append(1)
        if len(attempts) < 2:
            raise TransportError("reset")
        return "ok"

    policy = RetryPolicy(on=(TransportError,), wait=False)
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
