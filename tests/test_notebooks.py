"""The notebooks in notebooks/ run top to bottom and draw every figure.

Each notebook is a jupytext percent-format script; it is run as plain Python
in a child process (a time bound, MPLBACKEND=Agg) with ``plt.show`` replaced
by a recorder. The notebook's own ``assert``s (RTRL equals BPTT, finite
differences agree, ...) fail the run; here every cell that calls
``plt.show()`` must have shown a figure with something plotted on it, and the
file must be a notebook jupytext can read (header, markdown cells).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
TIME_BOUND_S = 300        # a hang guard for one notebook on a loaded CPU, not a speed test

RUNNER = r"""
import json, runpy, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

shown = []

def show(*args, **kwargs):
    fig = plt.gcf()
    artists = sum(len(ax.lines) + len(ax.images) + len(ax.patches) + len(ax.collections)
                  for ax in fig.axes)
    shown.append({"axes": len(fig.axes), "artists": artists})
    if len(sys.argv) > 3:
        fig.savefig(f"{sys.argv[3]}_{len(shown)}.png", dpi=60)
    plt.close(fig)

plt.show = show
runpy.run_path(sys.argv[1], run_name="__main__")
with open(sys.argv[2], "w") as f:
    json.dump(shown, f)
"""


def test_there_are_four_notebooks():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_"]


def cells(text: str) -> list[tuple[str, str]]:
    """(kind, body) per percent-format cell: kind 'markdown' or 'code'."""
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            out.append(("markdown" if "[markdown]" in line else "code", []))
        elif out:
            out[-1][1].append(line)
    return [(k, "\n".join(body)) for k, body in out]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_a_jupytext_notebook(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ---\n# jupyter:\n#   jupytext:\n")
    assert "#   kernelspec:\n" in text and "name: python3" in text
    kinds = [k for k, _ in cells(text)]
    assert kinds[0] == "markdown" and kinds.count("markdown") >= 3 and "code" in kinds
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.reads(text, fmt="py:percent")
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert [c.cell_type for c in nb.cells] == kinds


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_draws_every_figure(path, tmp_path):
    record = tmp_path / "shown.json"
    env = dict(os.environ, MPLBACKEND="Agg")
    env.setdefault("SCRATCHRNN_DATA", str(ROOT.parent / "shared" / "data"))
    args = [sys.executable, "-c", RUNNER, str(path), str(record)]
    if os.environ.get("SCRATCHRNN_NOTEBOOK_FIGURES"):             # to look at them
        args.append(os.path.join(os.environ["SCRATCHRNN_NOTEBOOK_FIGURES"], path.stem))
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIME_BOUND_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shown = json.loads(record.read_text())
    figure_cells = [body for kind, body in cells(path.read_text(encoding="utf-8"))
                    if kind == "code" and "plt.show()" in body]
    assert figure_cells, f"{path.name} draws no figure"
    assert len(shown) == sum(body.count("plt.show()") for body in figure_cells)
    for i, fig in enumerate(shown):
        assert fig["axes"] >= 1 and fig["artists"] >= 1, f"figure {i + 1} of {path.name} is empty"
