"""The facade exports exactly the public names."""

from __future__ import annotations

import importlib.metadata
import types

import pytest

import minimax_s2v


def test_all_is_sorted_and_complete() -> None:
    """`__all__` lists every public attribute of the facade, sorted, and nothing else."""
    # Submodules imported by tests and pytest's assertion-rewrite helpers are not API.
    public = {
        name
        for name, value in vars(minimax_s2v).items()
        if not name.startswith(("_", "@"))
        and name != "annotations"
        and not isinstance(value, types.ModuleType)
    }
    assert set(minimax_s2v.__all__) == public

    # isort-style order: CONSTANTS, then Classes, then functions, each alphabetical.
    def kind(name: str) -> tuple[int, str]:
        rank = 0 if name.isupper() else 1 if name[0].isupper() else 2
        return rank, name

    assert list(minimax_s2v.__all__) == sorted(minimax_s2v.__all__, key=kind)


def test_version_comes_from_metadata() -> None:
    """`__version__` is the installed distribution's version."""
    assert minimax_s2v.__version__ == importlib.metadata.version("minimax-s2v")


def test_unknown_attribute_raises() -> None:
    """A missing attribute raises AttributeError, as for any module."""
    with pytest.raises(AttributeError, match="does_not_exist"):
        minimax_s2v.does_not_exist  # noqa: B018
