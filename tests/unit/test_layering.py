"""The layer's architecture, checked: ``core`` imports nothing outside ``core``, and no module of the
layer imports, directly or through others, a module that imports it back (no import cycle).

Imports are read from the source with ``ast`` (also those inside functions: a lazy import is an
edge too), resolved to the layer's modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAYER = Path(__file__).resolve().parents[2] / "layers" / "common" / "python"
PACKAGE = "dramac_common"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(LAYER).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((LAYER / PACKAGE).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The layer's modules ``name`` imports (``from .x import y`` names module ``x.y`` when it is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith(PACKAGE + "."):
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = layer_modules()
    known = set(modules)
    # a package's __init__ is imported with any of its modules, but says nothing about them: leave it out
    return {name: imports_of(name, path, known) - {name.rpartition(".")[0]} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_core_imports_nothing_outside_core():
    outside = {(name, target) for name, targets in import_graph().items() if name.startswith(f"{PACKAGE}.core")
               for target in targets if not target.startswith(f"{PACKAGE}.core")}
    assert outside == set()


def test_no_module_of_the_layer_is_part_of_an_import_cycle():
    assert find_cycle(import_graph()) is None


def test_every_capability_is_a_package():
    entries = {p.name for p in (LAYER / PACKAGE).iterdir() if p.name != "__pycache__"}
    assert {p for p in entries if p.endswith(".py")} == {"__init__.py"}
    assert {"core", "marketplace", "payments", "installations", "provisioning", "module_data",
            "automation"} <= entries


@pytest.mark.parametrize(("graph", "cycle"), [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": set(), "c": {"c"}}, ["c", "c"]),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),
])
def test_the_cycle_finder_finds_cycles_and_only_cycles(graph, cycle):
    assert find_cycle(graph) == cycle


def test_the_import_reader_resolves_relative_and_lazy_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from ..core import db\nfrom .x import y\n\ndef f():\n    from ..core.errors import E\n")
    known = {f"{PACKAGE}.core", f"{PACKAGE}.core.db", f"{PACKAGE}.core.errors", f"{PACKAGE}.cap.x",
             f"{PACKAGE}.cap.x.y"}
    assert imports_of(f"{PACKAGE}.cap.m", source, known) == {
        f"{PACKAGE}.core", f"{PACKAGE}.core.db", f"{PACKAGE}.core.errors", f"{PACKAGE}.cap.x", f"{PACKAGE}.cap.x.y"}
