"""Models: status parsing, ordering and the convenience converters."""

from __future__ import annotations

from pathlib import Path

import pytest

from minimax_s2v import SubjectReference, TaskStatus, UnknownStatusWarning, VideoRequest


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Preparing", TaskStatus.PREPARING),
        ("Queueing", TaskStatus.QUEUEING),
        ("queued", TaskStatus.QUEUEING),
        ("Processing", TaskStatus.PROCESSING),
        ("processing", TaskStatus.PROCESSING),
        ("Success", TaskStatus.SUCCESS),
        ("success", TaskStatus.SUCCESS),
        ("SUCCESS", TaskStatus.SUCCESS),
        ("Fail", TaskStatus.FAIL),
        ("fail", TaskStatus.FAIL),
        ("failed", TaskStatus.FAIL),
        ("Failed", TaskStatus.FAIL),
        (" Fail ", TaskStatus.FAIL),
    ],
)
def test_status_parse_accepts_every_spelling(text: str, status: TaskStatus) -> None:
    """Every casing and synonym seen in the wild parses to one status."""
    assert TaskStatus.parse(text) is status


def test_unknown_status_warns_and_is_not_terminal() -> None:
    """An unknown status warns and keeps waiting instead of raising."""
    with pytest.warns(UnknownStatusWarning, match="Paused"):
        status = TaskStatus.parse("Paused")
    assert status is TaskStatus.UNKNOWN
    assert not status.is_terminal


def test_terminal_and_order() -> None:
    """Success, Fail and Cancelled are terminal and outrank every other status."""
    assert [s for s in TaskStatus if s.is_terminal] == [
        TaskStatus.SUCCESS,
        TaskStatus.FAIL,
        TaskStatus.CANCELLED,
    ]
    order = [TaskStatus.PREPARING, TaskStatus.QUEUEING, TaskStatus.PROCESSING, TaskStatus.SUCCESS]
    assert [s.rank for s in order] == sorted(s.rank for s in order)
    assert TaskStatus.UNKNOWN.rank < TaskStatus.PREPARING.rank


def test_request_accepts_plain_image() -> None:
    """A bare URL or path becomes one character subject with one image."""
    request = VideoRequest(subject="https://example.com/face.jpg", prompt="hi")
    assert request.subject == (SubjectReference(("https://example.com/face.jpg",)),)
    from_path = VideoRequest(subject=Path("face.png"))
    assert from_path.subject[0].image == ("face.png",)
    assert from_path.subject[0].type == "character"
    assert from_path.model == "S2V-01"
