"""The wire converter: documented payloads round-trip, quirks are read, bad bodies are typed."""

from __future__ import annotations

import contextlib
import json
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from yarl import URL

from minimax_s2v import (
    CallbackChallenge,
    ContentPolicyError,
    RateLimitError,
    ResponseValidationError,
    TaskSnapshot,
    TaskStatus,
    UnknownStatusWarning,
    VideoRequest,
)
from minimax_s2v._models import STATUS_SPELLINGS
from minimax_s2v._wire import (
    _cattrs_snapshot,
    _code_and_message,
    _direct_snapshot,
    api_error_in,
    parse_callback,
    parse_file,
    parse_request,
    parse_snapshot,
    parse_submit,
    request_payload,
    snapshot_payload,
    source_kind,
)
from tests.json_strategies import WIDE_V1_BODIES, json_values, shaped_like
from tests.profiles import examples

# The exact example payloads of API_FACTS.md.
REQUEST = {
    "model": "S2V-01",
    "prompt": "A girl runs toward the camera and winks with a smile.",
    "subject_reference": [{"type": "character", "image": ["https://example.com/face.jpg"]}],
    "prompt_optimizer": True,
    "callback_url": "https://your.host/callback",
}
SUBMIT = {"task_id": "106916112212032", "base_resp": {"status_code": 0, "status_msg": "success"}}
QUERY = {
    "task_id": "176843862716480",
    "status": "Success",
    "file_id": "176844028768320",
    "video_width": 1920,
    "video_height": 1080,
    "base_resp": {"status_code": 0, "status_msg": "success"},
}
RETRIEVE = {
    "file": {
        "file_id": 176844028768320,
        "bytes": 0,
        "created_at": 1700469398,
        "filename": "output.mp4",
        "purpose": "video_generation",
        "download_url": "https://example.com/output.mp4",
    },
    "base_resp": {"status_code": 0, "status_msg": "success"},
}
CALLBACK = {
    "task_id": "115334141465231360",
    "status": "success",
    "file_id": "205258526306433",
    "base_resp": {"status_code": 0, "status_msg": "success"},
}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_request_round_trips() -> None:
    """The documented request structures and unstructures to the same JSON."""
    request = parse_request(REQUEST)
    assert request.subject[0].image == ("https://example.com/face.jpg",)
    assert request_payload(request) == REQUEST


def test_request_omits_unset_fields() -> None:
    """Unset optional fields are left out; model and subject are always sent."""
    payload = request_payload(VideoRequest(subject="https://example.com/f.jpg"))
    assert payload == {
        "model": "S2V-01",
        "subject_reference": [{"type": "character", "image": ["https://example.com/f.jpg"]}],
    }


def test_submit_reads_task_id() -> None:
    """The submit answer gives the task id as a string."""
    assert parse_submit(SUBMIT) == "106916112212032"


def test_query_round_trips() -> None:
    """The documented query response round-trips and reads its fields."""
    snapshot = parse_snapshot(QUERY)
    assert snapshot == TaskSnapshot(
        "176843862716480", TaskStatus.SUCCESS, "176844028768320", 1920, 1080, status_text="Success"
    )
    assert snapshot_payload(snapshot) == QUERY


def test_unfinished_placeholders_are_none() -> None:
    """`file_id: ""` and zero sizes of an unfinished task read as None and are written back."""
    body = {**QUERY, "status": "Processing", "file_id": "", "video_width": 0, "video_height": 0}
    snapshot = parse_snapshot(body)
    assert (snapshot.file_id, snapshot.width, snapshot.height) == (None, None, None)
    assert snapshot.status is TaskStatus.PROCESSING
    assert snapshot_payload(snapshot) == body


def test_file_round_trips() -> None:
    """The documented retrieve response reads every field; file_id is an int, URL a yarl.URL."""
    video = parse_file(RETRIEVE, NOW)
    assert video.file_id == 176844028768320
    assert video.download_url == URL("https://example.com/output.mp4")
    assert video.created_at == datetime.fromtimestamp(1700469398, tz=UTC)
    assert video.expires_at == NOW + timedelta(hours=1)
    assert video.backup_download_url is None
    assert (video.bytes, video.filename, video.purpose) == (0, "output.mp4", "video_generation")


def test_callback_round_trips() -> None:
    """The documented status callback round-trips in its lowercase form."""
    snapshot = parse_callback(CALLBACK)
    assert isinstance(snapshot, TaskSnapshot)
    assert snapshot.status is TaskStatus.SUCCESS
    assert snapshot_payload(snapshot, callback=True) == CALLBACK


def test_challenge_is_recognised() -> None:
    """A body with `challenge` is the URL validation."""
    assert parse_callback({"challenge": "abc"}) == CallbackChallenge("abc")
    with pytest.raises(ResponseValidationError):
        parse_callback({"challenge": 5})


@pytest.mark.parametrize("file_id", ["205258526306433", 205258526306433])
def test_file_id_either_type(file_id: object) -> None:
    """file_id is read as a string or a number in the query and in retrieve."""
    snapshot = parse_snapshot({**QUERY, "file_id": file_id})
    assert snapshot.file_id == "205258526306433"
    video = parse_file({"file": {**RETRIEVE["file"], "file_id": file_id}}, NOW)
    assert video.file_id == 205258526306433


def test_backup_url_and_defaults() -> None:
    """backup_download_url is read when present; missing optional file fields default."""
    body = {
        "file": {
            "file_id": "7",
            "download_url": "https://a.example/x.mp4",
            "backup_download_url": "https://b.example/x.mp4",
        }
    }
    video = parse_file(body, NOW)
    assert video.backup_download_url == URL("https://b.example/x.mp4")
    assert (video.bytes, video.filename, video.created_at) == (0, "", NOW)


def test_fail_keeps_error_code() -> None:
    """A Fail status keeps base_resp's code and the undocumented error_message."""
    body = {
        "task_id": "1",
        "status": "Fail",
        "file_id": "",
        "video_width": 0,
        "video_height": 0,
        "base_resp": {"status_code": 1026, "status_msg": "input sensitive"},
        "error_message": "face not allowed",
    }
    snapshot = parse_snapshot(body)
    assert snapshot.status is TaskStatus.FAIL
    assert (snapshot.error_code, snapshot.error_message) == (1026, "face not allowed")
    assert api_error_in(body) is None  # the task's outcome, not an error of the call


def test_api_error_in_reads_base_resp() -> None:
    """A non-zero base_resp without a Fail status is an error of the call."""
    error = api_error_in(
        {"base_resp": {"status_code": 1002, "status_msg": "rate limit"}},
        trace_id="t1",
        retry_after=2,
    )
    assert isinstance(error, RateLimitError)
    assert (error.trace_id, error.retry_after) == ("t1", 2)
    assert api_error_in(SUBMIT) is None
    assert api_error_in({"base_resp": "odd"}) is None
    assert api_error_in([1, 2]) is None
    failed_call = api_error_in(
        {"status": "Processing", "base_resp": {"status_code": 1027, "status_msg": "x"}}
    )
    assert isinstance(failed_call, ContentPolicyError)


@pytest.mark.parametrize("spelling", sorted(STATUS_SPELLINGS))
def test_api_error_in_knows_every_failure_spelling(spelling: str) -> None:
    """Each spelling of a failed task, in any casing, is the task's outcome; others are errors."""
    base = {"status_code": 1027, "status_msg": "x"}
    error = api_error_in({"status": f" {spelling.title()} ", "base_resp": base})
    if STATUS_SPELLINGS[spelling] is TaskStatus.FAIL:
        assert error is None
    else:
        assert isinstance(error, ContentPolicyError)


@pytest.mark.parametrize(
    "body",
    [
        {"task_id": 5.5, "status": "Success"},
        {"task_id": "1", "status": 3},
        {"task_id": "1"},
        {"task_id": "1", "status": "Success", "video_width": "1920"},
        {"task_id": "1", "status": "Success", "file_id": True},
        {"task_id": "", "status": "Success"},
        json.loads('{"task_id": "1", "status": "\\ud800"}'),  # a lone surrogate
        json.loads('{"task_id": "1", "status": "Success", "file_id": "9\\udfff"}'),
        json.loads(
            '{"task_id": "1", "status": "Fail", "base_resp": '
            '{"status_code": 1026, "status_msg": "x\\ud83d"}}'
        ),
        [],
        "text",
        None,
    ],
)
def test_bad_snapshot_is_typed(body: object) -> None:
    """A body that does not fit gives ResponseValidationError with a readable path."""
    with pytest.raises(ResponseValidationError) as info:
        parse_snapshot(body)
    assert info.value.errors
    assert "$" in str(info.value)


def test_bad_file_names_the_field() -> None:
    """A wrong download_url is reported at its JSON path, with an excerpt of the body."""
    with pytest.raises(ResponseValidationError) as info:
        parse_file({"file": {"file_id": 1, "download_url": "ftp://x"}}, NOW)
    assert any("download_url" in line for line in info.value.errors)
    assert "ftp://x" in info.value.payload


def test_excerpt_is_truncated() -> None:
    """The copy of a huge bad body is truncated."""
    with pytest.raises(ResponseValidationError) as info:
        parse_snapshot({"task_id": "1", "status": 1, "junk": "x" * 10_000})
    assert len(info.value.payload) < 600


def test_request_image_must_be_a_list() -> None:
    """An `image` given as a bare string (a common client bug) is rejected, not split."""
    with pytest.raises(ResponseValidationError):
        parse_request({**REQUEST, "subject_reference": [{"type": "character", "image": "x"}]})


KEYS = [
    "task_id",
    "status",
    "file_id",
    "video_width",
    "video_height",
    "base_resp",
    "file",
    "challenge",
    "download_url",
    "created_at",
    "bytes",
    "error_message",
    "model",
    "subject_reference",
    "image",
    "type",
    "status_code",
]
shaped = st.recursive(
    json_values(),
    lambda children: shaped_like(KEYS, children),
    max_leaves=25,
)


@pytest.mark.filterwarnings("ignore::minimax_s2v.UnknownStatusWarning")
@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(shaped)
def test_any_json_gives_model_or_typed_error(data: Any) -> None:
    """Structuring arbitrary JSON raises only ResponseValidationError, for every model."""
    json.dumps(data)  # the input is real JSON
    warnings.simplefilter("ignore", UnknownStatusWarning)
    for parse in (
        parse_submit,
        parse_snapshot,
        parse_callback,
        parse_request,
        lambda d: parse_file(d, NOW),
    ):
        with contextlib.suppress(ResponseValidationError):
            parse(data)
    api_error_in(data)  # never raises, whatever it is given


def _ids() -> st.SearchStrategy[object]:
    digits = st.text("0123456789", max_size=20)
    return st.one_of(
        digits,
        st.integers(-5, 10**18),
        st.sampled_from(["", "0", " 12", "\uff11\uff12", "\ud800", "abc"]),
        st.none(),
        st.booleans(),
        json_values(),
    )


# Mostly the usual spellings, so that the direct path is taken often; odd values now and then.
usual_ids = st.sampled_from(["", "0", "205258526306433", "115334141465231360"])
callback_like = st.fixed_dictionaries(
    {"task_id": st.one_of(usual_ids, usual_ids, _ids())},
    optional={
        "status": st.one_of(
            st.sampled_from(["Success", "success", "Fail", "failed", " Processing ", "Queueing"]),
            st.sampled_from(
                ["queuing", "running", "Preparing", "later", "SUCCESS", "\uff26\uff41\uff49\uff4c"]
            ),
            json_values(),
        ),
        "file_id": st.one_of(usual_ids, usual_ids, _ids()),
        "video_width": st.one_of(st.integers(-3, 4000), st.none(), st.booleans(), json_values()),
        "video_height": st.one_of(st.integers(-3, 4000), st.none(), st.sampled_from(["720"])),
        "error_message": st.one_of(
            st.sampled_from(["", "bad face", "régión", "\udc80"]), json_values()
        ),
        "base_resp": st.one_of(
            st.fixed_dictionaries(
                {
                    "status_code": st.one_of(st.sampled_from([0, 1026, 1027, True]), json_values()),
                    "status_msg": st.one_of(
                        st.sampled_from(["success", "sensitive", "ü"]), json_values()
                    ),
                }
            ),
            json_values(),
        ),
    },
)


@pytest.mark.filterwarnings("ignore::minimax_s2v.UnknownStatusWarning")
@settings(max_examples=examples(3000), suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(callback_like, WIDE_V1_BODIES))
@example({"task_id": "1", "status": "success", "error_message": "\udc80"})
@example({"task_id": "1", "status": "success", "file_id": "0"})
@example({"task_id": "1", "status": "processing", "video_width": True, "video_height": 0})
@example({"task_id": "1", "status": "Fail", "base_resp": {"status_code": 1026, "status_msg": "x"}})
def test_direct_snapshot_agrees_with_cattrs(data: dict[str, Any]) -> None:
    """The hand-written path for usual bodies gives exactly what the cattrs structurers give.

    Usual bodies take the direct path often; wide ones (odd types, huge numbers, lone
    surrogates) check that it never takes what the structurers refuse.
    """
    code, message = _code_and_message(data)
    direct = _direct_snapshot(data, code, message)
    try:
        by_cattrs: TaskSnapshot | None = _cattrs_snapshot(data, code, message)
    except Exception:  # noqa: BLE001 - any failure means the body does not fit
        by_cattrs = None
    if direct is not None:
        assert direct == by_cattrs
        assert type(direct.status_text) is str


def test_direct_snapshot_takes_the_documented_bodies() -> None:
    """The bodies API_FACTS shows are built by the direct path, not passed on to cattrs."""
    for body in (CALLBACK, QUERY, {**CALLBACK, "status": "processing", "file_id": ""}):
        code, message = _code_and_message(body)
        assert message is None
        assert _direct_snapshot(body, code, message) == parse_snapshot(body)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("https://example.com/f.jpg", "url"),
        ("HTTP://example.com/f.jpg", "url"),
        ("http://", "url"),  # starts like one: is_http_url says it is no valid URL
        ("data:image/png;base64,AAAA", "data"),
        ("DATA:image/png;base64,AAAA", "data"),
        ("mm_file://123", "upload"),
        ("MM_FILE://123", "upload"),
        ("face.png", "path"),
        ("httpx/face.png", "path"),
        ("", "path"),
    ],
)
def test_source_kind(source: str, kind: str) -> None:
    """A media source is told apart by its prefix in any casing."""
    assert source_kind(source) == kind
