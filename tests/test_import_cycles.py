"""No import cycle among the project's packages (dispatcher, admin, dispatcher_client).

The graph is built statically with ``ast`` from every import in every module, imports inside
functions included (hiding a cycle in a function does not break it), ``if TYPE_CHECKING:``
blocks excluded (they never run). Importing ``a.b.c`` runs ``a`` and ``a.b`` too, so a module
also depends on the packages above what it imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"dispatcher": ROOT, "admin": ROOT, "dispatcher_client": ROOT / "clients" / "python"}


def _modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found: dict[str, Path] = {}
    for package, base in PACKAGES.items():
        for path in sorted((base / package).rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, outside ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The dotted names an import statement loads."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    yield base
    for alias in node.names:
        yield f"{base}.{alias.name}"  # kept only when it names a module


def graph() -> dict[str, set[str]]:
    """Module name → the project modules it imports (and the packages those sit in)."""
    modules = _modules()
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            for target in _targets(name, path, node):
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    candidate = ".".join(parts[:i])
                    if candidate in modules:
                        deps.add(candidate)
        # A module's own package runs before it: not an edge back from the module.
        deps -= {name, *(".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1))}
        edges[name] = deps
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of module names (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle is not None:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle is not None:
                return cycle
    return None


def test_the_graph_sees_the_project() -> None:
    edges = graph()
    assert "dispatcher.engine" in edges
    assert "dispatcher.outcomes" in edges["dispatcher.engine"]
    assert "admin" in edges and "dispatcher_client" in edges


def test_a_cycle_is_found() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_inside_functions_count_and_type_checking_does_not() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import dispatcher.engine\n"
        "def f():\n    import dispatcher.ingest\n"
    )
    names = {alias.name for node in _imports(tree) for alias in node.names}
    assert names == {"TYPE_CHECKING", "dispatcher.ingest"}


def test_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
