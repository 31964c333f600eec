"""The facade exports exactly the public names."""

from __future__ import annotations

import importlib.metadata
import types
import typing
from collections.abc import Iterator

import pytest

import minimax_s2v
import minimax_s2v.receiver
import minimax_s2v.stores


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


def _classes_in(hint: object) -> Iterator[type]:
    if isinstance(hint, type):
        yield hint
    for argument in typing.get_args(hint):
        yield from _classes_in(argument)


def test_what_public_signatures_use_is_exported() -> None:
    """Every package class a Client method takes or returns can be imported from a public module."""
    public = {
        id(value)
        for module in (minimax_s2v, minimax_s2v.stores, minimax_s2v.receiver)
        for value in (getattr(module, name) for name in module.__all__)
    }
    hidden = set()
    for name, method in vars(minimax_s2v.Client).items():
        if name.startswith("_") or not callable(method):
            continue
        for hint in typing.get_type_hints(method).values():
            for cls in _classes_in(hint):
                if cls.__module__.startswith("minimax_s2v") and id(cls) not in public:
                    hidden.add(f"{name}: {cls.__qualname__}")
    assert not hidden


def test_type_aliases_of_signatures_are_exported() -> None:
    """The progress callback's type can be named by users (it is an alias, not a class)."""
    from minimax_s2v._download import ProgressCallback

    assert minimax_s2v.ProgressCallback is ProgressCallback
