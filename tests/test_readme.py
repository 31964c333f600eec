"""The README's Python snippets stay true to the API: they compile and import what exists."""

from __future__ import annotations

import ast
import importlib
import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.MULTILINE | re.DOTALL)


def snippets() -> list[str]:
    """Each ```python block of the README, dedented (some sit inside list items)."""
    return [textwrap.dedent(body) for _, body in _FENCE.findall(README.read_text())]


def _tree(source: str) -> ast.Module:
    # The snippets are fragments: `async with` and `await` may stand at the top level.
    tree = compile(source, "README.md", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert isinstance(tree, ast.Module)
    return tree


def test_the_readme_has_snippets() -> None:
    """The fence pattern finds the README's blocks, the indented one included."""
    found = snippets()
    assert len(found) >= 7
    assert any("minimax_emulator" in source for source in found)


@pytest.mark.parametrize("source", snippets())
def test_snippet_imports_exist(source: str) -> None:
    """Every name a snippet imports from the package exists there."""
    imported = [
        (node.module, alias.name)
        for node in ast.walk(_tree(source))
        if isinstance(node, ast.ImportFrom)
        and node.module is not None
        and node.module.split(".")[0] == "minimax_s2v"
        for alias in node.names
    ]
    for module, name in imported:
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"


def test_tuning_snippet_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tuning example builds a client with exactly the arguments it shows."""
    monkeypatch.setenv("MINIMAX_API_KEY", "readme-key")
    (source,) = [source for source in snippets() if "RetryPolicy(" in source]
    namespace: dict[str, object] = {}
    exec(compile(source, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    client = namespace["client"]
    assert type(client).__name__ == "Client"
    assert "readme-key" not in repr(client)
