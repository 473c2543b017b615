"""Sphinx configuration for the scratchrnn site (MyST Markdown via myst-nb)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

project = "scratchrnn"
author = "scratchrnn contributors"
copyright = "scratchrnn contributors"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]

nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True

html_theme = "sphinx_book_theme"
html_title = "scratchrnn"

os.environ.setdefault("MPLBACKEND", "Agg")
