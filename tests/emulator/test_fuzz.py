"""Fuzz: 5,000 generated bodies, query strings and headers to each of the emulator's endpoints.

The emulator answers like MiniMax, an in-band error (or a 4xx), never a 500 or a traceback.
One emulator and one keep-alive connection serve every example, so the run stays short.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from yarl import URL

from minimax_s2v.emulator import EmulatorThread
from tests.json_strategies import json_values
from tests.profiles import examples

# Each sends one request to each of four endpoints: 5,000 to each (in CI).
EXAMPLES = examples(5000)
API_PATHS = ("/v1/video_generation", "/v1/query/video_generation", "/v1/files/retrieve")


class Connection:
    """One keep-alive HTTP connection to the emulator, reopened when the server closes it."""

    def __init__(self, emu: EmulatorThread) -> None:
        self.emu = emu
        self.port = emu.url.port
        self.connection: http.client.HTTPConnection | None = None
        self.sent = 0

    def request(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        for _ in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.connection.request(method, target, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException):
                self.connection.close()
                self.connection = None
                continue
            if response.will_close:
                self.connection.close()
                self.connection = None
            self.sent += 1
            return response.status, data
        raise AssertionError(f"no answer to {method} {target}")


@pytest.fixture(scope="module")
def emulator_connection() -> Iterator[Connection]:
    with EmulatorThread(seed=3) as emu:
        connection = Connection(emu)
        yield connection
        if connection.connection is not None:
            connection.connection.close()


def _no_callback(body: object) -> object:
    """Keep generated traffic on loopback: a callback URL that would be called is replaced."""
    if isinstance(body, dict) and isinstance(body.get("callback_url"), str):
        url = body["callback_url"]
        try:
            usable = URL(url).scheme in ("http", "https")
        except ValueError:
            usable = False
        if usable:
            body["callback_url"] = "ftp://not-called.invalid/cb"
    return body


FACE = "https://example.com/face.jpg"
values = json_values(max_leaves=12)
subjects = st.one_of(
    values,
    st.just([{"type": "character", "image": [FACE]}]),
    st.lists(
        st.dictionaries(st.sampled_from(["type", "image"]), values | st.just([FACE])), max_size=2
    ),
)
submission_like = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["S2V-01", "s2v-01", ""]) | values,
        "prompt": st.text(max_size=50) | values,
        "subject_reference": subjects,
        "prompt_optimizer": values,
        "aigc_watermark": values,
        "callback_url": st.text(max_size=30) | values,
    },
).map(_no_callback)
bodies = st.one_of(
    st.binary(max_size=200),
    values.map(lambda v: json.dumps(v).encode()),
    submission_like.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),  # nested past any recursion
    st.integers(4_000, 6_000).map(lambda n: b'{"model": ' + b"7" * n + b"}"),
    st.sampled_from([b"", b"null", b"{", b'{"model": "S2V-01"', b"\xff\xfe", b'"\\ud800"']),
)
id_values = st.one_of(
    st.text("0123456789", max_size=25),
    st.integers(30, 6_000).map(lambda n: "9" * n),
    st.text(max_size=20),
    st.sampled_from(["", "0", "-1", "1e5", " 12", "\uff11", "../../x", "%zz", "%00"]),
)
query_strings = st.one_of(
    id_values.map(lambda v: "task_id=" + quote(v, safe="%")),
    id_values.map(lambda v: "file_id=" + quote(v, safe="%")),
    st.text(max_size=40).map(lambda text: quote(text, safe="=&%+;")),
    st.sampled_from(["", "task_id", "file_id", "task_id=1&task_id=2", "=", "&&", "%", "a=%"]),
)
token_chars = st.characters(min_codepoint=32, max_codepoint=126)
authorizations = st.one_of(
    st.just("valid"),
    st.just("valid"),
    st.just("valid"),
    st.text(alphabet=token_chars, max_size=40),
    st.sampled_from(["", "Bearer", "Bearer ", "bearer  x", "Basic abc"]),
)
header_names = st.sampled_from(["range", "content-type", "accept", "x-anything", "if-range"])
extra_headers = st.dictionaries(
    header_names, st.text(alphabet=token_chars, max_size=40), max_size=3
)


def _headers(emu: EmulatorThread, authorization: str, extra: dict[str, str]) -> dict[str, str]:
    value = f"Bearer {emu.api_key}" if authorization == "valid" else authorization
    return {**extra, "Authorization": value.strip()} if value.strip() else dict(extra)


def _assert_minimax_shaped(status: int, data: bytes) -> None:
    assert status < 500, data[:200]
    if status == 200:
        body: Any = json.loads(data)
        assert isinstance(body["base_resp"]["status_code"], int)
        assert isinstance(body["base_resp"]["status_msg"], str)


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=bodies,
    query=query_strings,
    authorization=authorizations,
    extra=extra_headers,
    segment=id_values,
)
@example(
    body=b"[" * 100_000 + b"]" * 100_000,
    query="file_id=" + "9" * 5_000,
    authorization="valid",
    extra={},
    segment="9" * 5_000,
)
def test_malformed_requests_never_500(  # noqa: PLR0917 - hypothesis passes each strategy
    emulator_connection: Connection,
    body: bytes,
    query: str,
    authorization: str,
    extra: dict[str, str],
    segment: str,
) -> None:
    """Every endpoint answers malformed input like MiniMax: in-band JSON or a 4xx."""
    connection = emulator_connection
    headers = _headers(connection.emu, authorization, extra)
    status, data = connection.request(
        "POST", API_PATHS[0], body, {**headers, "Content-Type": "application/json"}
    )
    _assert_minimax_shaped(status, data)
    for path in API_PATHS[1:]:
        status, data = connection.request("GET", f"{path}?{query}", None, headers)
        _assert_minimax_shaped(status, data)
    name = quote(segment, safe="") or "x"
    status, _ = connection.request(
        "GET", f"/_emulator/files/{name}/output.mp4?{query}", None, extra
    )
    assert status < 500


@pytest.mark.slow
def test_the_fuzz_reached_every_endpoint_without_an_internal_error(
    emulator_connection: Connection,
) -> None:
    """After the fuzz (same module): thousands of requests, none ended in an internal error."""
    state = emulator_connection.emu.state()
    requests: dict[str, dict[str, int]] = state["requests"]
    assert emulator_connection.sent >= 4 * EXAMPLES
    for endpoint in ("submit", "query", "retrieve", "download"):
        assert sum(requests[endpoint].values()) > 0
        assert "internal_error" not in requests[endpoint]


def test_deep_json_and_long_ids_get_2013(emulator_connection: Connection) -> None:
    """The two inputs that used to answer 500: each now gets the in-band 2013."""
    connection = emulator_connection
    auth = {"Authorization": f"Bearer {connection.emu.api_key}"}
    deep = b"[" * 100_000 + b"]" * 100_000
    status, data = connection.request("POST", API_PATHS[0], deep, auth)
    assert (status, json.loads(data)["base_resp"]["status_code"]) == (200, 2013)
    status, data = connection.request("GET", f"{API_PATHS[2]}?file_id={'9' * 5000}", None, auth)
    assert (status, json.loads(data)["base_resp"]["status_code"]) == (200, 2013)
