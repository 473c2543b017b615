"""The package's layers: who may import numpy/numba/cupy, and no import cycles.

* numpy, numba and cupy are imported only by ``scratchrnn/backend/`` and by the
  accelerated engines in ``scratchrnn/engines/``; the engines that people read
  (the reference loop, checkpointing, the interface, the pointwise reader)
  are Array API code like everything else, which is what lets the same code
  run on NumPy, CuPy and array_api_strict. Nothing imports torch.
* ``scratchrnn/backend/`` is arrays only: it imports nothing else of scratchrnn.
* The import graph between scratchrnn's modules has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scratchrnn"
ARRAY_LIBS = ("numpy", "numba", "cupy", "cupyx")
NEVER = ("torch",)
# engines/ modules that are Array API code, not accelerated kernels
READABLE_ENGINES = ("__init__.py", "base.py", "reference.py", "checkpointed.py",
                    "pointwise.py")


def imported_roots(source: str) -> list[tuple[int, str]]:
    """(line, top-level module) for every absolute import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def may_import_array_libraries(path: Path) -> bool:
    parts = path.relative_to(PACKAGE).parts
    if parts[0] == "backend":
        return True
    return parts[0] == "engines" and parts[-1] not in READABLE_ENGINES


def violations(path: Path) -> list[str]:
    banned = NEVER if may_import_array_libraries(path) else ARRAY_LIBS + NEVER
    return [f"{path.relative_to(PACKAGE.parent)}:{line}: imports {root}"
            for line, root in imported_roots(path.read_text(encoding="utf-8"))
            if root in banned]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def internal_imports(path: Path) -> set[str]:
    """The scratchrnn modules ``path`` imports (anywhere in the file, lazy ones too)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "scratchrnn"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "scratchrnn":
                target = node.module
            else:
                continue
            for alias in node.names:     # `from . import x` imports the module x
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m != me}


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): internal_imports(p) for p in PACKAGE.rglob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_modules_to_check():
    files = list(PACKAGE.rglob("*.py"))
    assert len(files) >= 10
    assert PACKAGE / "backend" / "__init__.py" in files
    assert PACKAGE / "engines" / "reference.py" in files


def test_only_backend_and_accelerated_engines_import_array_libraries():
    bad = [v for path in sorted(PACKAGE.rglob("*.py")) for v in violations(path)]
    assert not bad, ("array libraries imported outside scratchrnn/backend/ and the "
                     "accelerated engines:\n" + "\n".join(bad))


def test_the_accelerated_engines_are_the_ones_that_may():
    allowed = {p.name for p in (PACKAGE / "engines").glob("*.py")
               if may_import_array_libraries(p)}
    assert {"fused.py", "numba_kernels.py", "cupy_kernels.py"} <= allowed
    assert not allowed & set(READABLE_ENGINES)


def test_backend_imports_nothing_else_of_scratchrnn():
    graph = import_graph()
    bad = {m: sorted(d for d in deps if not d.startswith("scratchrnn.backend"))
           for m, deps in graph.items() if m.startswith("scratchrnn.backend")}
    assert not any(bad.values()), bad


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert graph["scratchrnn.nn.recurrent"] >= {"scratchrnn.engines", "scratchrnn.cells"}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


@pytest.mark.parametrize("source, root", [
    ("import numpy as np", "numpy"),
    ("import numpy.linalg", "numpy"),
    ("from numpy import zeros", "numpy"),
    ("from numpy.random import default_rng", "numpy"),
    ("import cupy", "cupy"),
    ("import numba", "numba"),
    ("def f():\n    import cupyx\n", "cupyx"),
    ("from cupyx.scipy import sparse", "cupyx"),
    ("try:\n    import torch\nexcept ImportError:\n    pass\n", "torch"),
])
def test_the_scanner_finds_imports(source, root):
    assert root in [r for _, r in imported_roots(source)]


def test_the_scanner_ignores_relative_and_lookalike_imports():
    roots = [r for _, r in imported_roots(
        "from . import numpy_helpers\nfrom .numpy import x\nimport numpyish\n"
        "s = 'import numpy'\n")]
    assert not set(roots) & set(ARRAY_LIBS)
