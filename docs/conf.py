"""Sphinx configuration for the scratchrnn site.

Pages are MyST Markdown (myst-nb) with ``$...$`` / ``$$...$$`` math. Three
parts are generated at build time and never committed:

- ``auto_examples/``: the scripts in ``examples/`` run by sphinx-gallery in
  ``--quick`` mode, with their printed output and the figures they save;
- ``notebooks/``: every jupytext percent-format ``notebooks/*.py`` at the
  repository root converted to ``.ipynb`` and executed by myst-nb;
- ``reference/generated/``: the API pages, by autosummary from docstrings.

MathJax is served from the build folder (copied from the ``django-static-mathjax``
wheel, which ships MathJax 3 as plain files), so the site works offline.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

# Data for the gallery: ../shared/data beside the repository, unless the caller chose.
_shared = ROOT.parent / "shared" / "data"
if "SCRATCHRNN_DATA" not in os.environ and _shared.is_dir():
    os.environ["SCRATCHRNN_DATA"] = str(_shared)
# The gallery runs in this process, headless; the notebooks' kernels must not
# inherit a forced backend, or their figures would not reach the page.
os.environ.pop("MPLBACKEND", None)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # tiny matrices: BLAS threads only spin

project = "scratchrnn"
author = "scratchrnn contributors"
copyright = "scratchrnn contributors"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

exclude_patterns = [
    "_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints",
    "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
    "auto_examples/_runs",
]
suppress_warnings = ["config.cache"]   # sphinx_gallery_conf holds functions

# ---------------------------------------------------------------- notebooks
NOTEBOOKS_SRC = ROOT / "notebooks"
NOTEBOOKS_OUT = DOCS / "notebooks"

_NOTEBOOKS_INDEX = """\
# Notebooks

Each notebook is a plain Python file in `notebooks/` at the repository root
(jupytext's percent format: `# %%` starts a code cell, `# %% [markdown]` a
text cell). The site converts them to `.ipynb` and runs them from top to
bottom every time it is built, so every output and figure on these pages
comes from the code above it. To work in one yourself:
`jupytext --to ipynb notebooks/NAME.py`, or open the `.py` file in Jupyter
with the jupytext extension.

"""


def _convert_notebooks() -> list[str]:
    """notebooks/*.py -> docs/notebooks/*.ipynb (rewritten only when changed), plus an index."""
    import jupytext

    NOTEBOOKS_OUT.mkdir(exist_ok=True)
    names = []
    sources = sorted(NOTEBOOKS_SRC.glob("*.py")) if NOTEBOOKS_SRC.is_dir() else []
    for src in sources:
        nb = jupytext.read(src, fmt="py:percent")
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nb.metadata.pop("jupytext", None)
        text = jupytext.writes(nb, fmt="ipynb")
        out = NOTEBOOKS_OUT / f"{src.stem}.ipynb"
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            out.write_text(text, encoding="utf-8")
        names.append(src.stem)
    for stale in NOTEBOOKS_OUT.glob("*.ipynb"):
        if stale.stem not in names:
            stale.unlink()
    if names:
        body = "```{toctree}\n:maxdepth: 1\n\n" + "\n".join(names) + "\n```\n"
    else:
        body = "No notebook is in `notebooks/` in this copy of the repository.\n"
    index = NOTEBOOKS_OUT / "index.md"
    if not index.is_file() or index.read_text(encoding="utf-8") != _NOTEBOOKS_INDEX + body:
        index.write_text(_NOTEBOOKS_INDEX + body, encoding="utf-8")
    return names


NOTEBOOKS = _convert_notebooks()

nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_excludepatterns = ["auto_examples/*"]
nb_merge_streams = True

# ---------------------------------------------------------------- gallery
GALLERY_RUNS = DOCS / "auto_examples" / "_runs"

# The data file each example reads; an example whose file is missing is shown
# with its code and text but not run (the build never downloads anything).
EXAMPLE_DATA = {
    "char_shakespeare.py": "tinyshakespeare/input.txt",
    "word_lm.py": "tinyshakespeare/input.txt",
    "news_classifier.py": "ag_news/test.csv",
    "surname_classifier.py": "names",
}


def _runnable_examples() -> list[str]:
    data = os.environ.get("SCRATCHRNN_DATA")
    runnable = []
    for script in sorted((ROOT / "examples").glob("*.py")):
        need = EXAMPLE_DATA.get(script.name)
        if script.name.startswith("_"):
            continue
        if need is None or (data and (Path(data) / need).exists()):
            runnable.append(script.name)
        else:
            print(f"gallery: {script.name} shown without running: "
                  f"$SCRATCHRNN_DATA/{need} not found")
    return runnable


def _example_argv(gallery_conf, script_vars) -> list[str]:
    """Every example runs in --quick mode and writes its figures to a folder of its own."""
    name = Path(script_vars["src_file"]).stem
    out = GALLERY_RUNS / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    script_vars["scratchrnn_out"] = out
    script_vars["scratchrnn_started"] = time.time()
    return ["--quick", "--out", str(out)]


def _saved_figures(block, block_vars, gallery_conf) -> str:
    """Image scraper: the PNG files the example saved in its --out folder.

    The examples save their figures to files and close them (as a script
    should); this picks those files up, in the order they were written.
    """
    from sphinx_gallery.scrapers import figure_rst

    out = block_vars.get("scratchrnn_out")
    if out is None or not out.is_dir():
        return ""
    seen = block_vars.setdefault("scratchrnn_seen", set())
    new = sorted((p for p in out.rglob("*.png") if p not in seen),
                 key=lambda p: p.stat().st_mtime)
    paths = []
    for png, target in zip(new, block_vars["image_path_iterator"]):
        shutil.copyfile(png, target)
        seen.add(png)
        paths.append(target)
    return figure_rst(paths, gallery_conf["src_dir"])


sphinx_gallery_conf = {
    "examples_dirs": [str(ROOT / "examples")],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": "/(" + "|".join(n.replace(".", r"\.")
                                         for n in _runnable_examples()) + ")$",
    "ignore_pattern": r"(__init__|_common)\.py$",
    "reset_argv": _example_argv,
    "image_scrapers": (_saved_figures,),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "min_reported_time": 0,
    "write_computation_times": False,
    "matplotlib_animations": False,
}

# ---------------------------------------------------------------- API reference
API_MODULES = ["scratchrnn.functional", "scratchrnn.cells", "scratchrnn.nn",
               "scratchrnn.losses", "scratchrnn.training", "scratchrnn.gradcheck",
               "scratchrnn.data", "scratchrnn.models", "scratchrnn.backend"]
if importlib.util.find_spec("scratchrnn.study") is not None:
    API_MODULES.append("scratchrnn.study")


def _write_api_index() -> None:
    """reference/api.rst: the top-level names with links to where each is defined,
    then one recursive autosummary over the public modules present in this tree."""
    import scratchrnn

    lines = ["The package", "===========", "", ".. currentmodule:: scratchrnn", "",
             "``import scratchrnn`` gives these names; each links to its documentation "
             "in the module that defines it.", "", ".. list-table::", "   :header-rows: 1",
             "   :widths: 25 75", "", "   * - name", "     - what it is"]
    for name in scratchrnn.__all__:
        obj = getattr(scratchrnn, name)
        if isinstance(obj, type(scratchrnn)):
            target, role = obj.__name__, "mod"
        else:
            target, role = f"{obj.__module__}.{obj.__qualname__}", "obj"
        doc = (obj.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        lines += [f"   * - :py:{role}:`{name} <{target}>`", f"     - {doc}"]
    lines += ["", "Modules", "=======", "", ".. py:currentmodule:: None", "",
              ".. autosummary::", "   :toctree: generated",
              "   :recursive:", ""]
    lines += [f"   {m}" for m in API_MODULES]
    text = "\n".join(lines) + "\n"
    path = DOCS / "reference" / "api.rst"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


_write_api_index()

autosummary_generate = True
autosummary_imported_members = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
templates_path = ["_templates"]

# ---------------------------------------------------------------- HTML and math
html_theme = "sphinx_book_theme"
html_title = "scratchrnn"
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
}
html_context = {"default_mode": "auto"}   # light or dark, as the reader's system
html_static_path: list[str] = []
html_show_sourcelink = False
# Search results without page summaries: a summary is fetched from the result's page,
# which a browser refuses for a site opened from disk (file://).
html_show_search_summary = False

# MathJax 3 from an installed package, copied next to the pages: no CDN.
mathjax_path = "mathjax/tex-chtml.js"
mathjax3_config = {"options": {"enableMenu": False}}


def _mathjax_dir() -> Path:
    spec = importlib.util.find_spec("mathjax")
    root = Path(spec.origin).parent / "static" / "mathjax" / "es5" if spec else None
    if root is None or not (root / "tex-chtml.js").is_file():
        raise RuntimeError("MathJax 3 is not installed: pip install -e '.[docs]' "
                           "(the django-static-mathjax package ships it)")
    return root


def _copy_mathjax(app, exc) -> None:
    if exc is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    if (target / "tex-chtml.js").is_file():
        return
    shutil.copytree(_mathjax_dir(), target, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*-full*.js", "*-svg*.js", "mml-*.js",
                                                  "tex-mml-*.js", "node-main.js", "sre"))


def setup(app):
    _mathjax_dir()                       # fail early, before the long part of the build
    app.connect("build-finished", _copy_mathjax)
