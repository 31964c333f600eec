"""The package's import graph: no cycle (lazy and TYPE_CHECKING imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import minimax_s2v

PACKAGE = Path(minimax_s2v.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every minimax_s2v module ``path`` imports, wherever the import statement stands."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("minimax_s2v"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("minimax_s2v"):
                continue
            found.add(target)
            for alias in node.names:  # `from . import _wire` imports a module
                if (
                    (PACKAGE.parent / (target + "." + alias.name).replace(".", "/"))
                    .with_suffix(".py")
                    .exists()
                ):
                    found.add(f"{target}.{alias.name}")
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path) & set(modules) for name, path in modules.items()}


def test_no_import_cycle() -> None:
    """Depth-first search over every import finds no module that imports itself back."""
    edges = graph()
    # A package imports its own __init__ implicitly: a module importing its package's
    # facade is the facade's business, not a cycle of the modules below it.
    for name in edges:
        edges[name] = {t for t in edges[name] if not name.startswith(t + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_nothing_below_the_facade_imports_the_client() -> None:
    """Only the facade and the command line use the Client module."""
    users = {name for name, targets in graph().items() if "minimax_s2v._client" in targets}
    assert users <= {"minimax_s2v", "minimax_s2v.cli"}
