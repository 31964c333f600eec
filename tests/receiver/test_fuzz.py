"""Fuzz: over 10,000 generated requests to a live receiver.

Never a 500, never a crash, never a state change from invalid input.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from minimax_s2v import TaskSnapshot
from minimax_s2v._wire import parse_callback
from minimax_s2v.receiver import CallbackReceiver, CallbackVerdict
from tests.json_strategies import json_values
from tests.profiles import examples

TASK_ID = "111222333444"
MAX_BODY = 4096


class RecordingSink:
    """Stands in for the client's tracker: one nonce bound to TASK_ID."""

    def __init__(self) -> None:
        self.delivered: list[TaskSnapshot] = []
        self.refused = 0

    async def deliver(self, nonce: str, snapshot: TaskSnapshot) -> CallbackVerdict:
        assert nonce == "boundnonce01", nonce
        if snapshot.task_id != TASK_ID:
            self.refused += 1
            return CallbackVerdict.CONFLICT
        self.delivered.append(snapshot)
        return CallbackVerdict.RECORDED


class LiveReceiver:
    """A receiver served on its own loop in a thread, driven by a blocking HTTP client."""

    def __init__(self) -> None:
        self.port = 0  # known once it listens
        self.receiver = CallbackReceiver(secret="fuzz-secret-0123456789abcdef", max_body=MAX_BODY)
        self.sink = RecordingSink()
        self.nonce = "boundnonce01"
        self.url = URL()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.connection: http.client.HTTPConnection | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            async with self.receiver.serve("127.0.0.1", 0, path="/cb") as local:
                assert local.port is not None
                self.port = local.port
                self.receiver.expect(self.nonce, self.sink)
                self.url = self.receiver.callback_url(self.nonce)
                self._ready.set()
                await self._stop.wait()
            await self.receiver.close()

        self._loop.run_until_complete(main())

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "the receiver did not start"

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        for _ in range(2):
            connection = self.connection or http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=10
            )
            self.connection = connection
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                if response.will_close:
                    connection.close()
                    self.connection = None
                return response.status, data
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                self.connection = None
        raise AssertionError(f"no answer to {method} {path}")

    def state(self) -> tuple[int, int]:
        return self.sink.refused, len(self.sink.delivered)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveReceiver]:
    server = LiveReceiver()
    server.start()
    yield server
    server.stop()


token_chars = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#%")
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]) | st.text(
    alphabet=st.characters(min_codepoint=65, max_codepoint=90), min_size=1, max_size=8
)
header_names = st.text(
    alphabet=st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=12
).filter(
    lambda name: name not in {"content-length", "transfer-encoding", "host", "connection", "expect"}
)
headers = st.dictionaries(header_names, st.text(alphabet=token_chars, max_size=30), max_size=4)
values = json_values(max_leaves=15)
callback_keys = st.sampled_from(
    ["task_id", "status", "file_id", "base_resp", "challenge", "video_width", "error_message"]
)
callback_like = st.dictionaries(
    callback_keys,
    values | st.sampled_from([TASK_ID, "999", "success", "processing", "failed", "Fail", ""]),
    max_size=5,
)
bodies = (
    st.binary(max_size=300)
    | values.map(lambda v: json.dumps(v).encode())
    | callback_like.map(lambda v: json.dumps(v).encode())
    | st.integers(MAX_BODY - 10, MAX_BODY + 100).map(lambda n: b"x" * n)
)


@pytest.mark.slow
@settings(max_examples=examples(5000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=methods,
    segments=st.lists(st.text(alphabet=token_chars, max_size=40), max_size=4),
    body=bodies,
    extra=headers,
)
def test_random_requests_never_500(
    live: LiveReceiver, method: str, segments: list[str], body: bytes, extra: dict[str, str]
) -> None:
    """Any method, path, headers and body: a 4xx, and nothing changes."""
    path = "/cb/" + "/".join(quote(s, safe="") for s in segments)
    before = live.state()
    status, _ = live.request(method, path, body if method not in ("GET", "HEAD") else None, extra)
    assert status < 500
    assert 400 <= status < 500  # no generated path carries a valid token
    assert live.state() == before


def expected(body: bytes) -> tuple[int, Any]:
    """What the receiver must answer to ``body`` POSTed on the bound URL."""
    if len(body) > MAX_BODY:
        return 413, None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return 400, None
    try:
        message = parse_callback(data)
    except Exception:  # noqa: BLE001 - the oracle only needs to know it does not parse
        return 400, None
    if not isinstance(message, TaskSnapshot):
        return 200, {"challenge": message.challenge}
    if message.task_id != TASK_ID:
        return 409, None
    return 200, message


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::minimax_s2v.UnknownStatusWarning")
@settings(max_examples=examples(5500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, extra=headers)
def test_bodies_on_a_valid_url(live: LiveReceiver, body: bytes, extra: dict[str, str]) -> None:
    """On the bound URL: each body gets exactly the answer its content calls for.

    Only a valid update for the bound task reaches the client.
    """
    want_status, want = expected(body)
    refused, delivered = live.state()
    status, answer = live.request("POST", live.url.path, body, extra)
    assert status == want_status
    if isinstance(want, TaskSnapshot):
        assert live.state() == (refused, delivered + 1)
        assert live.sink.delivered[-1] == want
        assert json.loads(answer) == {"status": "success"}
    else:
        assert live.state() == (refused + (want_status == 409), delivered)
        if want is not None:
            assert json.loads(answer) == want
