"""Configuration objects refuse nonsense when constructed, naming the field."""

from __future__ import annotations

import gc
import warnings
from typing import Any

import pytest

from minimax_s2v import (
    Client,
    ConfigurationError,
    PollPolicy,
    RateLimit,
    RetryPolicy,
    Timeouts,
)

BAD: list[tuple[type[Any], dict[str, Any], str]] = [
    (PollPolicy, {"first_interval": -1}, "PollPolicy.first_interval"),
    (PollPolicy, {"max_rate": 0}, "PollPolicy.max_rate"),
    (PollPolicy, {"max_interval": -3}, "PollPolicy.max_interval"),
    (PollPolicy, {"multiplier": 0.5}, "PollPolicy.multiplier"),
    (PollPolicy, {"jitter": 2}, "PollPolicy.jitter"),
    (PollPolicy, {"max_in_flight": 0}, "PollPolicy.max_in_flight"),
    (PollPolicy, {"max_in_flight": 2.5}, "PollPolicy.max_in_flight"),
    (PollPolicy, {"first_interval": "5"}, "PollPolicy.first_interval"),
    (PollPolicy, {"first_interval": float("nan")}, "PollPolicy.first_interval"),
    (Timeouts, {"connect": -5}, "Timeouts.connect"),
    (Timeouts, {"read": 0}, "Timeouts.read"),
    (Timeouts, {"request": "60"}, "Timeouts.request"),
    (Timeouts, {"connect": True}, "Timeouts.connect"),
    (RateLimit, {"submit_rpm": -3}, "RateLimit.submit_rpm"),
    (RateLimit, {"query_rpm": 0}, "RateLimit.query_rpm"),
    (RateLimit, {"retrieve_rpm": "20"}, "RateLimit.retrieve_rpm"),
    (RateLimit, {"adaptive_start_rpm": 0}, "RateLimit.adaptive_start_rpm"),
    (RateLimit, {"headroom": 1.0}, "RateLimit.headroom"),
    (RetryPolicy, {"attempts": 0}, "RetryPolicy.attempts"),
    (RetryPolicy, {"timeout": -1}, "RetryPolicy.timeout"),
    (RetryPolicy, {"wait_initial": -0.5}, "RetryPolicy.wait_initial"),
    (RetryPolicy, {"wait_max": -1}, "RetryPolicy.wait_max"),
    (RetryPolicy, {"wait_jitter": -1}, "RetryPolicy.wait_jitter"),
    (RetryPolicy, {"wait_exp_base": 0.5}, "RetryPolicy.wait_exp_base"),
    (RetryPolicy, {"retry_after_max": -1}, "RetryPolicy.retry_after_max"),
    (RetryPolicy, {"on": "TransportError"}, "RetryPolicy.on"),
]


@pytest.mark.parametrize(("cls", "changes", "field"), BAD)
def test_nonsense_is_refused_at_construction(
    cls: type[Any], changes: dict[str, Any], field: str
) -> None:
    """Each bad value is a ConfigurationError (a ValueError) naming the class and field."""
    with pytest.raises(ConfigurationError, match=field.replace(".", r"\.")) as caught:
        cls(**changes)
    assert isinstance(caught.value, ValueError)
    assert repr(next(iter(changes.values())))[:10] in str(caught.value)


def test_sensible_values_are_kept() -> None:
    """Edge values that make sense pass: no limit, zero waits, no timeout, one attempt."""
    assert PollPolicy(first_interval=0, jitter=0, multiplier=1).first_interval == 0
    assert Timeouts(connect=0.5, read=1, request=2).read == 1
    assert RateLimit(submit_rpm=None, query_rpm=0.5, headroom=0).query_rpm == 0.5
    assert RetryPolicy(attempts=1, timeout=None, wait_initial=0, wait_jitter=0).attempts == 1
    assert RetryPolicy(on=(ValueError,)).should_retry(ValueError())


def test_max_interval_below_first_is_refused() -> None:
    """A cap below the first interval contradicts itself."""
    with pytest.raises(ConfigurationError, match=r"PollPolicy\.max_interval"):
        PollPolicy(first_interval=10, max_interval=5)


def test_client_refusing_a_setting_leaks_no_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused setting stops before any aiohttp session exists: no unclosed-session warning."""
    monkeypatch.delenv("MINIMAX_BASE_URL", raising=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ConfigurationError, match=r"RateLimit\.submit_rpm"):
            Client("k", rate_limit=RateLimit(submit_rpm=-3))
        gc.collect()
    assert not [w for w in seen if "Unclosed" in str(w.message)]


def test_explicit_region_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`region=` and `base_url=` given in code win over MINIMAX_BASE_URL; alone, it is used."""
    monkeypatch.setenv("MINIMAX_BASE_URL", "http://127.0.0.1:9999")
    assert Client("k", region="cn").base_url.host == "api.minimaxi.com"
    assert Client("k", region="global").base_url.host == "api.minimax.io"
    assert str(Client("k", base_url="http://127.0.0.1:1234").base_url) == "http://127.0.0.1:1234"
    assert str(Client("k").base_url) == "http://127.0.0.1:9999"
    # Between two explicit arguments, base_url is the more precise one.
    assert str(Client("k", region="cn", base_url="http://127.0.0.1:1").base_url).endswith(":1")
