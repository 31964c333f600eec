"""Hypothesis strategies for arbitrary JSON, shared by the property and fuzz tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
)


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Any JSON value: scalars, lists and objects nested a few levels."""
    return st.recursive(
        SCALARS,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=12), children, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def shaped_like(
    keys: list[str], values: st.SearchStrategy[Any], max_size: int = 7
) -> st.SearchStrategy[Any]:
    """JSON objects whose keys are drawn from ``keys``: close enough to a payload to get far."""
    return st.dictionaries(st.sampled_from(keys), values, max_size=max_size)


# Wire-shaped objects with every value drawn wide (odd types, huge numbers, floats, lone
# surrogates, stray spaces): for the tests that a direct parser never takes what the
# structurer refuses.
_HUGE = st.sampled_from([10**40, 10**40 - 1, -(10**30), 2**63, 2**64 + 1, 0, -1])
WIDE = st.one_of(json_values(), _HUGE, st.floats(), st.sampled_from(["\udc80", "ü", " 1", "1 "]))


def maybe(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(strategy, WIDE)


WIDE_V2_TASKS = st.fixed_dictionaries(
    {},
    optional={
        "id": maybe(st.one_of(st.sampled_from(["1", "0" * 40, "1" * 41, "\u0661"]), _HUGE)),
        "status": maybe(st.sampled_from(["queued", "running", "succeeded", "Fail", " failed"])),
        "model": WIDE,
        "resolution": WIDE,
        "ratio": WIDE,
        "task_type": WIDE,
        "modality": WIDE,
        "created_at": WIDE,
        "updated_at": WIDE,
        "duration": WIDE,
        "content": maybe(st.dictionaries(st.sampled_from(["url", "x"]), WIDE, max_size=2)),
        "error": maybe(
            st.dictionaries(st.sampled_from(["code", "message", "x"]), WIDE, max_size=3)
        ),
        "usage": maybe(st.dictionaries(st.text(max_size=4), WIDE, max_size=3)),
        "video_url": WIDE,
        "error_code": WIDE,
        "error_message": WIDE,
        "status_text": WIDE,
    },
)


WIDE_V1_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "task_id": maybe(st.sampled_from(["1", "0" * 40, "1" * 41, "\u0661", "1\n"])),
        "status": maybe(st.sampled_from(["Success", "processing", "Fail", " failed", "queued"])),
        "file_id": maybe(st.sampled_from(["", "0", "12", "x", "1" * 41])),
        "video_width": WIDE,
        "video_height": WIDE,
        "error_message": WIDE,
        "status_text": WIDE,
        "base_resp": maybe(
            st.fixed_dictionaries({"status_code": WIDE, "status_msg": WIDE}, optional={})
        ),
    },
)
