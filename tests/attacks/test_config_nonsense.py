"""Config objects validate when constructed, with messages naming the field.

Observed on the snapshot: each of these was accepted; ``challenge_warning_after=nan`` later
logged "no callback challenge has arrived nans after submitting".
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from minimax_s2v import CallbackReceiver, Client, ConfigurationError
from minimax_s2v.stores import MemoryStore

SECRET = "s" * 32


@pytest.mark.parametrize(
    ("name", "build"),
    [
        (
            "challenge_warning_after",
            lambda: CallbackReceiver(secret=SECRET, challenge_warning_after=float("nan")),
        ),
        (
            "challenge_warning_after",
            lambda: CallbackReceiver(secret=SECRET, challenge_warning_after=-1),
        ),
        ("max_body", lambda: CallbackReceiver(secret=SECRET, max_body=1.5)),  # type: ignore[arg-type]
        ("max_download_bytes", lambda: Client("sk-test-key-123456", max_download_bytes=-1)),
        (
            "max_download_bytes",
            lambda: Client(
                "sk-test-key-123456",
                max_download_bytes=float("nan"),  # type: ignore[arg-type]
            ),
        ),
    ],
)
def test_nonsense_is_refused(name: str, build: Callable[[], object]) -> None:
    with pytest.raises(ConfigurationError, match=name):
        build()


def test_a_store_that_says_it_is_shared_but_cannot_subscribe_is_refused() -> None:
    """``shared = True`` without ``subscribe()`` would silently follow nobody's tasks."""

    class HalfShared(MemoryStore):
        shared = True

    with pytest.raises(ConfigurationError, match="SharedTaskStore"):
        Client("k", base_url="http://127.0.0.1:9", store=HalfShared())
