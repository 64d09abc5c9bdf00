"""Nothing imports upward: shared infrastructure lives in leaf modules (issue 12, section 6).

Read from the source (every import, lazy ones inside functions too), so a cycle between
packages fails here before it fails at some caller's import time.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# modules every store, index and pipeline part shares: they import only one another
LEAVES = {
    "faceatlas.errors",
    "faceatlas._connection",
    "faceatlas._sqlite",
    "faceatlas.vector_index",
    "faceatlas.types",
}
# packages and what they must never import (the layers above them). Command-line modules
# (``faceatlas.cli``, ``<package>.cli``, ``*_cli``) are front ends, like the service: they sit on
# top of every package, so they are judged as part of the CLI, not of the package they live in.
NEVER = {
    "faceatlas.clustering": {"faceatlas.gallery", "faceatlas.collection", "faceatlas.server", "faceatlas.cli"},
    "faceatlas.gallery": {"faceatlas.collection", "faceatlas.server", "faceatlas.cli"},
    "faceatlas.collection": {"faceatlas.server", "faceatlas.cli"},
    "faceatlas.eval": {"faceatlas.server", "faceatlas.collection"},
    "faceatlas.video": {"faceatlas.gallery", "faceatlas.collection", "faceatlas.server", "faceatlas.cli"},
    # a pure metadata library: the collection imports it, never the other way round
    "faceatlas.xmp": {"faceatlas.gallery", "faceatlas.collection", "faceatlas.server", "faceatlas.cli"},
}


def _layer(module: str) -> str:
    """The package a module counts in: its top-level package, or the CLI for command modules."""
    last = module.rpartition(".")[2]
    if last == "cli" or last.endswith("_cli"):
        return "faceatlas.cli"
    return ".".join(module.split(".")[:2])


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The faceatlas modules that ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets.add(module)
            targets.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    resolved = set()
    for target in targets:
        while target not in MODULES and "." in target:
            target = target.rpartition(".")[0]
        if target in MODULES and target != name and target.startswith("faceatlas"):
            resolved.add(target)
    return resolved


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaf_modules_import_only_leaves(leaf: str) -> None:
    assert leaf in MODULES, f"{leaf} moved: update LEAVES"
    assert GRAPH[leaf] <= LEAVES, f"{leaf} imports {sorted(GRAPH[leaf] - LEAVES)}"


@pytest.mark.parametrize("package", sorted(NEVER))
def test_packages_never_import_the_layers_above(package: str) -> None:
    wrong = {
        (module, target)
        for module, targets in GRAPH.items()
        if _layer(module) == package
        for target in targets
        if _layer(target) in NEVER[package]
    }
    assert not wrong, f"{package} imports upward: {sorted(wrong)}"


def test_no_import_cycle_between_packages() -> None:
    top = _layer
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in GRAPH.items():
        for target in targets:
            if top(module) != top(target) and top(target) != "faceatlas":  # `import faceatlas` re-exports
                packages[top(module)].add(top(target))

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in packages.get(node, ()):
                if nxt == start:
                    return [*path, start]
                if nxt not in path:
                    stack.append((nxt, [*path, nxt]))
        return None

    cycles = [c for c in (cycle_from(p) for p in sorted(packages)) if c]
    assert not cycles, f"import cycles between packages: {cycles[:3]}"
