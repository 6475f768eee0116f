"""The structure holds: imports only run down the layers, and no two modules import each other.

Layers, top to bottom: the ``tollgate`` command and processes (``gateway/cli``, ``gateway/ops``), the
HTTP edge (``gateway/http``), the worker's parts (``gateway/state.py``), the request path
(``gateway/pipeline.py``, ``gateway/call.py``), its stages (``gateway/stages``), forwarding
(``gateway/upstream``) and stores (``gateway/store``), the gateway's ground (config, errors, metrics,
protocol), the core packages, and ``wire`` at the bottom. Imports under ``TYPE_CHECKING`` count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGES = ("wire", "gateway", "router", "cache", "moderation", "pricing", "enginesim")
CORES = ("router", "cache", "moderation", "pricing", "enginesim")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every project module and the project modules it imports."""
    files = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                names = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
            for name in names:
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if name and name != module and name.split(".")[0] in PACKAGES:
                    targets.add(name)
        graph[module] = targets
    return graph


GRAPH = _imports()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_modules_import_each_other() -> None:
    assert _cycles(GRAPH) == []


def _violations(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    def under(module: str, prefixes: tuple[str, ...]) -> bool:
        return any(module == p or module.startswith(p + ".") for p in prefixes)

    return sorted(f"{m} -> {t}" for m, targets in GRAPH.items() if under(m, importers)
                  for t in targets if under(t, forbidden))


def test_the_ground_floor_imports_no_other_package() -> None:
    assert _violations(("wire",), tuple(p for p in PACKAGES if p != "wire")) == []


def test_no_core_package_imports_the_gateway() -> None:
    assert _violations(CORES, ("gateway",)) == []


@pytest.mark.parametrize("importers, forbidden", [
    (("gateway.stages", "gateway.upstream", "gateway.store"),
     ("gateway.pipeline", "gateway.call", "gateway.state", "gateway.http", "gateway.ops", "gateway.cli")),
    (("gateway.upstream", "gateway.store"), ("gateway.stages",)),
    (("gateway.store",), ("gateway.upstream",)),
    (("gateway.pipeline", "gateway.call"), ("gateway.state", "gateway.http", "gateway.ops", "gateway.cli")),
    (("gateway.http",), ("gateway.ops", "gateway.cli")),
    (("gateway.config", "gateway.errors", "gateway.metrics", "gateway.protocol"),
     ("gateway.stages", "gateway.upstream", "gateway.store", "gateway.pipeline", "gateway.call", "gateway.state",
      "gateway.http", "gateway.ops", "gateway.cli")),
])
def test_gateway_imports_run_down_the_layers(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    assert _violations(importers, forbidden) == []


def test_the_walk_sees_the_imports_it_checks() -> None:
    """The checks above would pass on an empty graph: make sure the walk finds real arrows."""
    assert "gateway.stages.cascade" in GRAPH["gateway.pipeline"]
    assert "gateway.upstream.forwarder" in GRAPH["gateway.stages.cascade"]
    assert "wire.texts" in GRAPH["router.data"] and "gateway.metrics" in GRAPH["gateway.stages.accounting.admission"]
