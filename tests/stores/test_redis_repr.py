"""RedisStore's repr shows where it connects, never a password."""

from __future__ import annotations

import pytest

pytest.importorskip("redis")

from minimax_s2v.stores.redis import RedisStore

PASSWORD = "hunter2-redis-SECRET"


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{PASSWORD}@localhost:6379/0",
        f"redis://default:{PASSWORD}@localhost/1",
        f"redis://localhost:6379/0?password={PASSWORD}",
        f"rediss://user:{PASSWORD}@cache.example.com:6380/0?ssl_cert_reqs=none",
        f"unix:///run/redis.sock?password={PASSWORD}&db=2",
    ],
)
def test_repr_hides_the_password(url: str) -> None:
    """In the authority or the query, the password is replaced; host and db stay visible."""
    text = repr(RedisStore(url))
    assert PASSWORD not in text
    assert "<redacted>" in text
    assert ("localhost" in text) or ("cache.example.com" in text) or ("redis.sock" in text)
