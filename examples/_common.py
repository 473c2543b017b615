"""What every example shares: the common flags, the device, and a one-line exit.

Each example keeps its own flags and its lesson; this file holds only the
part all six repeat::

    p = _common.parser(__doc__)                  # argparse, defaults shown in --help
    p.add_argument("--hidden", ...)              # the example's own flags
    _common.add_common_flags(p, "word_lm", quick="5 steps (a smoke test)")
    args = p.parse_args(argv)
    backend, text = _common.start(args, "word_lm.py", load_tinyshakespeare)

``start`` resolves ``--device``, seeds the library with ``--seed`` and calls
the data loader; a missing GPU or a missing data file ends the script with
one line naming it (exit status 1), as ``scratchrnn``'s own CLI does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import scratchrnn as S


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser described by the title of the example's docstring (the
    first paragraph, without the reST underline that the gallery reads)."""
    title = [line for line in doc.strip().split("\n\n")[0].splitlines()
             if line.strip("=")]
    return argparse.ArgumentParser(description=" ".join(title),
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def add_common_flags(p: argparse.ArgumentParser, name: str, quick: str) -> None:
    """--quick (what the tests run), --seed, --out runs/<name>, --device cpu|cuda."""
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", default=f"runs/{name}", help="folder for the plots")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to compute")


def start(args: argparse.Namespace, script: str,
          load: Callable[[], Any] | None = None) -> tuple[S.backend.Backend, Any]:
    """(the backend of ``--device``, ``load()`` or None), after seeding with ``--seed``."""
    try:
        backend = S.get_backend(args.device)
    except RuntimeError as err:
        sys.exit(f"{script}: --device {args.device}: {err}")
    try:
        data = load() if load is not None else None
    except (OSError, RuntimeError) as err:
        sys.exit(f"{script}: {err}")
    S.manual_seed(args.seed)
    return backend, data
