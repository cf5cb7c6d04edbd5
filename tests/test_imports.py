"""The package's import graph: the shared package imports no stage, and no modules import each other in a circle.

Every import counts, a deferred one inside a function too: it ties the modules together all the same
(a change to one reruns the other's rules through code_inputs).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import PROJECT_ROOT

PACKAGE = "workflow_scripts"
SHARED = f"{PACKAGE}.common"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports() -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package it imports (``from a import b``: a.b if a module)."""
    modules = {_module_name(path): path for path in (PROJECT_ROOT / PACKAGE).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.update(
                    f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                    for alias in node.names
                )
        graph[name] = {module for module in imported if module in modules and module != name}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules that import each other in a circle: strongly connected components of two or more (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def test_shared_package_imports_no_stage():
    upward = {
        module: sorted(other for other in imported if not other.startswith(f"{SHARED}.") and other != SHARED)
        for module, imported in package_imports().items()
        if module.startswith(f"{SHARED}.")
    }
    assert {module: others for module, others in upward.items() if others} == {}


def test_no_import_circle():
    assert import_circles(package_imports()) == []


def test_the_walk_finds_imports_and_circles():
    graph = package_imports()
    # `from package.module import name` and `from package import module`, at the top and inside a function.
    assert "workflow_scripts.data.corpus_config" in graph["workflow_scripts.data.config_checks"]
    assert "workflow_scripts.common.names" in graph["workflow_scripts.fusion.heads.variants"]
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
