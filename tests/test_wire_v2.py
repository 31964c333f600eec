"""The V2 dialect (MiniMax-H3): documented bodies round-trip, errors map to their classes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from minimax_s2v import (
    AuthenticationError,
    ContentPolicyError,
    H3Request,
    InsufficientBalanceError,
    InvalidRequestError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    TaskSnapshot,
    TaskStatus,
)
from minimax_s2v._models import H3Task
from minimax_s2v._ratelimit import EndpointClass, RateLimit, RateLimiter
from minimax_s2v._submission import in_band_rejection
from minimax_s2v._transport import Timeouts, Transport
from minimax_s2v._wire import (
    _direct_h3_task,
    _flat_task,
    _structure_h3_task,
    h3_cancel_payload,
    h3_list_payload,
    h3_request_payload,
    h3_task_payload,
    parse_callback,
    parse_h3_cancel,
    parse_h3_list,
    parse_h3_request,
    parse_h3_snapshot,
    parse_h3_task,
    parse_submit,
    v2_error_in,
    v2_error_payload,
)
from tests.json_strategies import WIDE_V2_TASKS, json_values
from tests.profiles import examples

# The verbatim example bodies of API_FACTS_V2.md (B.1).
TEXT_ONLY: dict[str, Any] = {
    "model": "MiniMax-H3",
    "content": [{"type": "text", "text": "Epic space-opera theatrical teaser: …"}],
    "resolution": "2K",
    "duration": 5,
    "ratio": "16:9",
}
FIRST_FRAME: dict[str, Any] = {
    "model": "MiniMax-H3",
    "content": [
        {
            "type": "text",
            "text": "Pull focus to the people in the background and add more steam to the "
            "ramen bowl.",
        },
        {
            "type": "image_url",
            "image_url": {
                "url": "https://cdn.hailuoai.com/…/4a3a90bf9100_KDmcbkhzYo5sjjxr9FqcVmWVnzb.png"
            },
            "role": "first_frame",
        },
    ],
    "resolution": "2K",
    "duration": 5,
    "ratio": "adaptive",
}
VIDEO_AUDIO: dict[str, Any] = {
    "model": "MiniMax-H3",
    "content": [
        {"type": "text", "text": "Character speaks: … Voice timbre follows reference audio 1."},
        {
            "type": "video_url",
            "video_url": {"url": "https://cdn.hailuoai.com/…mp4"},
            "role": "reference_video",
        },
        {
            "type": "audio_url",
            "audio_url": {"url": "https://cdn.hailuoai.com/…mp3"},
            "role": "reference_audio",
        },
    ],
    "resolution": "2K",
    "duration": 5,
    "ratio": "adaptive",
}
CREATED = {"task_id": "424010985738629"}
SUCCEEDED: dict[str, Any] = {
    "task": {
        "id": "424010985738629",
        "model": "MiniMax-H3",
        "status": "succeeded",
        "created_at": 1785125529,
        "updated_at": 1785125946,
        "content": {
            "url": "https://video-product.cdn.minimax.io/inference_output/rollout/2026-07-27/"
            "6c68f487-…/output.mp4"
        },
        "resolution": "2K",
        "duration": 5,
        "usage": {
            "total_seconds": 5,
            "input_seconds": 0,
            "output_seconds": 5,
            "input_image_count": 1,
            "input_audio_seconds": 6,
            "total_tokens": 273890,
            "prompt_tokens": 13500,
            "completion_tokens": 260390,
        },
        "ratio": "16:9",
        "task_type": "generation",
        "modality": "video",
    }
}
FAILED: dict[str, Any] = {
    "task": {
        "id": "424010985738630",
        "model": "MiniMax-H3",
        "status": "failed",
        "error": {"code": "1026", "message": "video description contains sensitive content"},
        "created_at": 1785125529,
        "updated_at": 1785125700,
        "resolution": "2K",
        "duration": 5,
        "usage": {},
        "ratio": "16:9",
        "task_type": "generation",
        "modality": "video",
    }
}
CANCELLED = {"task_id": "424010985738629", "action": "cancelled", "status": "cancelled"}
REQUEST_ID = "021785229015510a2c883cf675b9804d"


def envelope(status: int, kind: str, message: str) -> dict[str, Any]:
    """A V2 error body as B.4 shows it."""
    return {
        "type": "error",
        "error": {"type": kind, "message": message, "http_code": str(status)},
        "request_id": REQUEST_ID,
    }


# B.4: each documented example, with the class and code it must map to.
ERRORS = [
    (
        400,
        "bad_request_error",
        "invalid params, content must include a non-empty text item (prompt is required) (2013)",
        InvalidRequestError,
        2013,
    ),
    (
        401,
        "authorized_error",
        (
            "login fail: Please carry the API secret key in the 'Authorization' field of the "
            "request header (1004)"
        ),
        AuthenticationError,
        1004,
    ),
    (
        402,
        "insufficient_balance_error",
        "insufficient balance (1008)",
        InsufficientBalanceError,
        1008,
    ),
    (
        422,
        "unprocessable_entity_error",
        "video description contains sensitive content (1026)",
        ContentPolicyError,
        1026,
    ),
    (429, "rate_limit_error", "rate limit, please retry later (1002)", RateLimitError, 1002),
    (500, "server_error", "internal error (1000)", ServerError, 1000),
    (529, "overloaded_error", "overloaded", ServerError, None),
]


@pytest.mark.parametrize("body", [TEXT_ONLY, FIRST_FRAME, VIDEO_AUDIO], ids=["t2v", "i2v", "r2v"])
def test_documented_requests_round_trip(body: dict[str, Any]) -> None:
    """Each verbatim create body reads as an H3Request and is written back unchanged."""
    request = parse_h3_request(body)
    assert h3_request_payload(request) == body


def test_reference_images_are_the_subject() -> None:
    """References become reference_image items after the text, in order."""
    request = H3Request("the same face", references=["https://e.com/a.png", "mm_file://12"])
    payload = h3_request_payload(request)
    assert payload["content"][1:] == [
        {
            "type": "image_url",
            "image_url": {"url": "https://e.com/a.png"},
            "role": "reference_image",
        },
        {"type": "image_url", "image_url": {"url": "mm_file://12"}, "role": "reference_image"},
    ]
    assert payload["resolution"] == "2K"
    assert payload["duration"] == 5
    assert "ratio" not in payload
    assert parse_h3_request(payload) == request


def test_h3_max_defaults_to_768p() -> None:
    """H3-Max has no 2K: a request naming no resolution sends 768P."""
    assert H3Request("p", model="MiniMax-H3-Max").resolution == "768P"
    request = H3Request("p", model="MiniMax-H3-Max", prompt_expansion_mode="quality")
    assert h3_request_payload(request)["extra"] == {"prompt_expansion_mode": "quality"}


def test_a_lone_image_without_a_role_is_a_first_frame() -> None:
    """Documented: a single image with no role defaults to first_frame."""
    body = {**FIRST_FRAME, "content": [FIRST_FRAME["content"][0], {**FIRST_FRAME["content"][1]}]}
    del body["content"][1]["role"]
    assert parse_h3_request(body).first_frame == FIRST_FRAME["content"][1]["image_url"]["url"]


@pytest.mark.parametrize(
    "content",
    [
        "not a list",
        [],
        [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": 3}}],
        [{"type": "text", "text": "a"}, {"type": "gif_url", "gif_url": {"url": "x"}}],
        [
            {"type": "text", "text": "a"},
            {"type": "video_url", "video_url": {"url": "x"}, "role": "first_frame"},
        ],
    ],
)
def test_bad_request_bodies_are_typed(content: object) -> None:
    """A body that does not fit raises ResponseValidationError, never anything else."""
    with pytest.raises(ResponseValidationError):
        parse_h3_request({"model": "MiniMax-H3", "content": content})


def test_create_answer_is_read() -> None:
    """Create answers {"task_id"} with no base_resp."""
    assert parse_submit(CREATED) == "424010985738629"


@pytest.mark.parametrize("body", [SUCCEEDED, FAILED], ids=["succeeded", "failed"])
def test_documented_query_answers_round_trip(body: dict[str, Any]) -> None:
    """Each verbatim query answer reads as an H3Task and is written back unchanged."""
    task = parse_h3_task(body)
    assert h3_task_payload(task) == body
    assert parse_h3_task(json.loads(json.dumps(h3_task_payload(task)))) == task


def test_query_answers_become_snapshots() -> None:
    """Succeeded carries content.url; failed carries its code as an int and its message."""
    ok = parse_h3_snapshot(SUCCEEDED)
    assert ok.status is TaskStatus.SUCCESS
    assert ok.video_url == SUCCEEDED["task"]["content"]["url"]
    assert ok.file_id is None
    assert ok.status_text == "succeeded"
    failed = parse_h3_snapshot(FAILED)
    assert failed.status is TaskStatus.FAIL
    assert (failed.error_code, failed.error_message) == (
        1026,
        "video description contains sensitive content",
    )


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("queued", TaskStatus.QUEUEING),
        ("running", TaskStatus.PROCESSING),
        ("succeeded", TaskStatus.SUCCESS),
        ("failed", TaskStatus.FAIL),
        ("cancelled", TaskStatus.CANCELLED),
        ("expired", TaskStatus.FAIL),
    ],
)
def test_v2_statuses(text: str, status: TaskStatus) -> None:
    """Every V2 status maps onto the one state machine; expired is a terminal failure."""
    body = {"task": {"id": "1", "status": text, "usage": {}}}
    snapshot = parse_h3_snapshot(body)
    assert snapshot.status is status
    assert snapshot.is_terminal is (text not in ("queued", "running"))


def test_cancelled_is_terminal_and_ranks_with_the_ends() -> None:
    """CANCELLED is final: nothing replaces it, and it never replaces another end."""
    assert TaskStatus.CANCELLED.is_terminal
    assert TaskStatus.CANCELLED.rank == TaskStatus.SUCCESS.rank > TaskStatus.PROCESSING.rank
    assert TaskStatus.parse("Canceled") is TaskStatus.CANCELLED


def test_error_code_as_a_number_is_read() -> None:
    """Some clients type error.code as a number: both spellings are read."""
    body = {"task": {**FAILED["task"], "error": {"code": 1026, "message": "x"}}}
    assert parse_h3_snapshot(body).error_code == 1026


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"task": None},
        {"task": {"status": "queued"}},
        {"task": {"id": "../x", "status": "queued"}},
        {"task": {"id": "1", "status": 3}},
        {"task": {"id": "1", "status": "succeeded", "content": {"url": "javascript:x"}}},
        {"task": {"id": "1", "status": "succeeded", "content": "x"}},
        {"task": {"id": "1", "status": "failed", "error": "x"}},
        {"task": {"id": "1", "status": "queued", "usage": {"a": "1"}}},
    ],
)
def test_bad_query_answers_are_typed(body: object) -> None:
    """A query answer that does not fit raises ResponseValidationError."""
    with pytest.raises(ResponseValidationError):
        parse_h3_task(body)


def test_list_and_cancel_answers_round_trip() -> None:
    """The list answer's items are VideoTasks; the cancel answer names action and status."""
    listed = h3_list_payload([parse_h3_task(SUCCEEDED), parse_h3_task(FAILED)], 476)
    tasks, total = parse_h3_list(listed)
    assert total == 476
    assert [t.id for t in tasks] == ["424010985738629", "424010985738630"]
    answer = parse_h3_cancel(CANCELLED)
    assert (answer.task_id, answer.action, answer.status) == (
        "424010985738629",
        "cancelled",
        TaskStatus.CANCELLED,
    )
    assert h3_cancel_payload(answer.task_id, "cancelled", "cancelled") == CANCELLED


@pytest.mark.parametrize("body", [SUCCEEDED, FAILED])
def test_v2_callback_bodies_are_read(body: dict[str, Any]) -> None:
    """A {"task": ...} push (the presumed V2 shape) reads like its query answer."""
    assert parse_callback(body) == parse_h3_snapshot(body)


def test_v1_like_callback_still_read() -> None:
    """The V1 shape with V2 status words is read too."""
    snapshot = parse_callback({"task_id": "5", "status": "succeeded"})
    assert isinstance(snapshot, TaskSnapshot)
    assert snapshot.status is TaskStatus.SUCCESS


@pytest.mark.parametrize(("status", "kind", "message", "cls", "code"), ERRORS)
def test_documented_errors_map(
    status: int, kind: str, message: str, cls: type[Exception], code: int | None
) -> None:
    """Each B.4 example maps to its class, with the code from its message and the request id."""
    error = v2_error_in(envelope(status, kind, message), http_status=status)
    assert type(error) is cls
    assert error.code == code
    assert error.request_id == REQUEST_ID
    assert error.trace_id == REQUEST_ID
    assert error.http_status == status
    assert REQUEST_ID in str(error)
    assert in_band_rejection(error)  # a complete answer: nothing was created


def test_529_is_retryable_and_400_is_not() -> None:
    """Overloaded is worth retrying; invalid params are not."""
    overloaded = v2_error_in(envelope(529, "overloaded_error", "overloaded"), http_status=529)
    invalid = v2_error_in(envelope(400, "bad_request_error", "x (2013)"), http_status=400)
    assert overloaded is not None
    assert overloaded.retryable
    assert invalid is not None
    assert not invalid.retryable


def test_a_trace_id_header_wins_over_the_request_id() -> None:
    """The request id is kept either way; the Trace-Id header is the trace id when given."""
    error = v2_error_in(
        envelope(500, "server_error", "internal error (1000)"), http_status=500, trace_id="T"
    )
    assert error is not None
    assert (error.trace_id, error.request_id) == ("T", REQUEST_ID)


@pytest.mark.parametrize(
    "body",
    [{"type": "error"}, {"type": "error", "error": "x"}, {"base_resp": {}}, {"task_id": "1"}, []],
)
def test_other_bodies_are_no_v2_error(body: object) -> None:
    """Only the envelope's shape is read as a V2 error."""
    assert v2_error_in(body, http_status=400) is None


def test_emulator_envelope_round_trips() -> None:
    """What the emulator answers maps back to the same code."""
    body = v2_error_payload(422, "video description contains sensitive content", 1026, "r1")
    error = v2_error_in(body, http_status=422)
    assert isinstance(error, ContentPolicyError)
    assert error.code == 1026
    assert error.request_id == "r1"


@pytest.mark.parametrize(("status", "kind", "message", "cls", "code"), ERRORS)
async def test_errors_over_a_socket(
    status: int, kind: str, message: str, cls: type[Exception], code: int | None
) -> None:
    """Through the transport over loopback: the HTTP status and envelope become the typed error."""

    async def handler(_: web.Request) -> web.Response:
        return web.json_response(envelope(status, kind, message), status=status)

    app = web.Application()
    app.router.add_post("/v2/video_generation", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    import aiohttp
    from yarl import URL

    try:
        async with aiohttp.ClientSession() as session:
            transport = Transport(
                "sk-test-key",
                URL.build(scheme="http", host=host, port=port),
                session=session,
                timeouts=Timeouts(),
                limiter=RateLimiter(RateLimit()),
                user_agent="test",
            )
            with pytest.raises(cls) as caught:
                await transport.call(
                    "POST", "/v2/video_generation", EndpointClass.SUBMIT, body=b"{}"
                )
    finally:
        await runner.cleanup()
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert caught.value.request_id == REQUEST_ID  # type: ignore[attr-defined]


def test_v2_errors_pickle() -> None:
    """The new errors survive pickling (a worker process may raise them)."""
    import pickle

    from minimax_s2v import TaskCancelledError, TaskExpiredError

    cancelled = TaskCancelledError(TaskSnapshot("1", TaskStatus.CANCELLED))
    again = pickle.loads(pickle.dumps(cancelled))  # noqa: S301 - our own object
    assert (type(again), again.task_id, str(again)) == (TaskCancelledError, "1", str(cancelled))
    expired = pickle.loads(pickle.dumps(TaskExpiredError("5")))  # noqa: S301 - our own object
    assert expired.task_id == "5"


# Mostly the usual spellings, so that the direct path is taken often; odd values now and then.
_texts = st.one_of(st.none(), st.sampled_from(["MiniMax-H3", "2K", "16:9", "", "ü", "\udc80"]))
_numbers = st.one_of(st.none(), st.integers(-5, 10**10), st.booleans(), st.sampled_from(["5"]))
v2_task_like = st.fixed_dictionaries(
    {"id": st.one_of(st.sampled_from(["", "0", "406123456789012", "1" * 41]), json_values())},
    optional={
        "status": st.one_of(
            st.sampled_from(["queued", "running", "succeeded", "failed", "cancelled"]),
            st.sampled_from([" Succeeded ", "expired", "later", "\uff26ail", "Success"]),
            json_values(),
        ),
        "model": _texts,
        "resolution": _texts,
        "ratio": _texts,
        "task_type": _texts,
        "modality": st.one_of(_texts, json_values()),
        "created_at": _numbers,
        "updated_at": _numbers,
        "duration": st.one_of(_numbers, json_values()),
        "content": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "url": st.one_of(
                        st.sampled_from(
                            ["https://cdn.example.com/v.mp4?sig=1", "", "ftp://x/v", "https://"]
                        ),
                        json_values(),
                    )
                },
            ),
            json_values(),
        ),
        "error": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "code": st.one_of(st.sampled_from(["1026", "", "x"]), st.integers(-2, 9)),
                    "message": st.one_of(_texts, json_values()),
                },
            ),
            json_values(),
        ),
        "usage": st.one_of(
            st.none(),
            st.dictionaries(
                st.sampled_from(["video_seconds", "tokens", "ü"]),
                st.one_of(st.integers(0, 99), st.floats(0, 9), st.booleans(), st.text()),
                max_size=3,
            ),
            json_values(),
        ),
        "video_url": json_values(),
        "error_message": json_values(),
    },
)


@pytest.mark.filterwarnings("ignore::minimax_s2v.UnknownStatusWarning")
@settings(max_examples=examples(3000), suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(v2_task_like, WIDE_V2_TASKS))
@example(SUCCEEDED["task"])
@example(FAILED["task"])
@example({"id": "1", "status": "failed", "error": {"code": 1026, "message": "x"}})
@example({"id": "1", "status": "succeeded", "content": {"url": ""}, "usage": {"a": True}})
@example({"id": "1", "status": "queued", "usage": {"n": float("nan")}})
@example({"id": "1", "status": "queued", "created_at": 10**400})
@example({"id": "1", "status": "queued", "status_text": 5})
@example({"id": "1", "status": "succeeded", "content": {"url": "https://\udc80.example/v"}})
def test_direct_h3_task_agrees_with_cattrs(task: dict[str, Any]) -> None:
    """The hand-written path for usual task objects gives exactly what cattrs gives.

    Usual objects take the direct path often; wide ones (odd types, huge numbers, nested
    values, lone surrogates) check that it never takes what the structurer refuses.
    """
    direct = _direct_h3_task(task)
    try:
        by_cattrs: H3Task | None = _structure_h3_task(_flat_task(task), H3Task)
    except Exception:  # noqa: BLE001 - any failure means the object does not fit
        by_cattrs = None
    if direct is not None:
        assert direct == by_cattrs
        assert by_cattrs is not None
        assert type(direct.status_text) is str
        assert repr(direct) == repr(by_cattrs)  # also NaN counters, which are unequal


@pytest.mark.parametrize("body", [SUCCEEDED, FAILED], ids=["succeeded", "failed"])
def test_direct_h3_task_takes_the_documented_bodies(body: dict[str, Any]) -> None:
    """The task objects API_FACTS_V2 shows are built by the direct path, not by cattrs."""
    direct = _direct_h3_task(body["task"])
    assert direct is not None
    assert direct == parse_h3_task(body)
