"""Building clients that talk to an emulator quickly: short polls, no retry waits."""

from __future__ import annotations

from typing import Any

from minimax_s2v import Client, PollPolicy, RetryPolicy, Timeouts, VideoRequest
from minimax_s2v.emulator import Emulator

FAST_POLLS = PollPolicy(first_interval=0.02, max_interval=0.1, max_rate=1000, max_in_flight=64)
# The default policy: its retries go at once in this suite (set_testing(), tests/conftest.py).
TEST_RETRY = RetryPolicy()


def fast_client(emu: Emulator, **options: Any) -> Client:
    """A client of ``emu`` that polls every few ms (its retries do not sleep in tests)."""
    options.setdefault("polling", FAST_POLLS)
    options.setdefault("retry", TEST_RETRY)
    options.setdefault("timeouts", Timeouts(connect=2, read=5, request=10))
    return Client(options.pop("api_key", emu.api_key), base_url=emu.url, **options)


def face_request(prompt: str = "A girl winks.") -> VideoRequest:
    return VideoRequest(subject="https://example.com/face.jpg", prompt=prompt)
