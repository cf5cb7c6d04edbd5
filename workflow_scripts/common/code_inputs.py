"""The ``code=`` inputs of a rule, derived from its script's imports.

A rule's script and every ``workflow_scripts`` module it imports, directly or through other
modules (a registry's ``"workflow_scripts.module:attribute"`` reference, imported when used, counts
as an import: common/registry.py), are inputs of the rule: editing one of them reruns exactly the rules whose scripts
reach it. Modules that change how a step reports or where files live, never what it computes,
are not counted (``NOT_CODE``): editing the log format does not retrain Whisper. Package
``__init__`` files are empty and are not counted either.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = "workflow_scripts"
# A lazy reference to a package module's attribute (common/registry.resolve), e.g. a registry's implementation.
REFERENCE = re.compile(rf"({PACKAGE}(?:\.\w+)+):\w+")
# Modules whose edits change no result: logging, the script adapter and its store of kept results, this module, and the
# declarations of names and paths (a changed path or name changes the DAG itself).
NOT_CODE = frozenset(
    {
        "common/logs.py",
        "common/rule.py",
        "common/code_inputs.py",
        "common/keep.py",
        "common/paths.py",
        "common/names.py",
    }
)


def _module_file(root: Path, dotted: str) -> Path | None:
    """The file of module ``dotted`` below ``root`` (a module or a package), or None."""
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path, root: Path) -> set[str]:
    """Dotted names of the package's modules that ``path`` imports (absolute or relative)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = path.relative_to(root).with_suffix("").parts
    package = here[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                module = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            # `from package import module` imports a module, not just a name
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and REFERENCE.fullmatch(node.value):
            names.add(REFERENCE.fullmatch(node.value).group(1))
    return {name for name in names if name == PACKAGE or name.startswith(PACKAGE + ".")}


def code_inputs(script: str | Path, root: str | Path = ".") -> list[str]:
    """The script and the package modules it reaches through imports, as paths relative to ``root``.

    ``script`` is relative to ``root`` (the workflow's base directory); the result is sorted.
    """
    root = Path(root)
    start = root / script
    if not start.is_file():
        raise FileNotFoundError(f"code_inputs: no script {start}")
    seen: set[Path] = set()
    pending = [start]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_names(path, root):
            found = _module_file(root, name)
            if found is not None and found not in seen:
                pending.append(found)
    package_dir = root / PACKAGE
    counted = []
    for path in seen:
        inside = path.relative_to(package_dir).as_posix() if path.is_relative_to(package_dir) else None
        if path != start and (path.name == "__init__.py" or inside in NOT_CODE):
            continue
        counted.append(path.relative_to(root).as_posix())
    return sorted(counted)
