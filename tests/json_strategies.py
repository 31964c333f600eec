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
