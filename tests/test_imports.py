"""Only scratchrnn/backend/ may import numpy or cupy; nothing imports torch.

Every other module gets its array namespace from its inputs, which is what
lets the same code run on NumPy, CuPy and array_api_strict.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scratchrnn"
ARRAY_LIBS = ("numpy", "cupy", "cupyx")
NEVER = ("torch",)


def imported_roots(source: str) -> list[tuple[int, str]]:
    """(line, top-level module) for every absolute import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(path: Path) -> list[str]:
    in_backend = path.relative_to(PACKAGE).parts[0] == "backend"
    banned = NEVER if in_backend else ARRAY_LIBS + NEVER
    return [f"{path.relative_to(PACKAGE.parent)}:{line}: imports {root}"
            for line, root in imported_roots(path.read_text(encoding="utf-8"))
            if root in banned]


def test_the_package_has_modules_to_check():
    files = list(PACKAGE.rglob("*.py"))
    assert len(files) >= 10
    assert PACKAGE / "backend" / "__init__.py" in files


def test_only_backend_imports_array_libraries():
    bad = [v for path in sorted(PACKAGE.rglob("*.py")) for v in violations(path)]
    assert not bad, "array libraries imported outside scratchrnn/backend/:\n" + "\n".join(bad)


@pytest.mark.parametrize("source, root", [
    ("import numpy as np", "numpy"),
    ("import numpy.linalg", "numpy"),
    ("from numpy import zeros", "numpy"),
    ("from numpy.random import default_rng", "numpy"),
    ("import cupy", "cupy"),
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
