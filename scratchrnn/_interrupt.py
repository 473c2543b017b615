"""Ctrl-C before the command's own handler runs (while the package imports).

``scratchrnn`` (the console script) and ``python -m scratchrnn[.gradcheck]``
import the package before :func:`scratchrnn.cli.main` can catch anything; an
interrupt in that window would print a traceback of the import machinery.
The package's ``__init__`` calls :func:`exit_quietly_if_command` on
``KeyboardInterrupt``: in the command it exits with status 130 and one line;
in anyone else's program it returns and the interrupt propagates as usual.
Standard library only.
"""

from __future__ import annotations

import os
import sys

EXIT_INTERRUPTED = 130          # 128 + SIGINT, what a shell reports for Ctrl-C


def launched_as_command() -> bool:
    """True when this process is the ``scratchrnn`` command or ``python -m scratchrnn...``."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else ""
    if argv0 in ("scratchrnn", "scratchrnn.exe", "scratchrnn-script.py"):
        return True
    orig = list(getattr(sys, "orig_argv", []))
    for i, arg in enumerate(orig):
        module = orig[i + 1] if arg == "-m" and i + 1 < len(orig) else \
            arg[2:] if arg.startswith("-m") and len(arg) > 2 else None
        if module is not None:
            return module.split(".")[0] == "scratchrnn"
    return False


def exit_quietly_if_command() -> None:
    """In the command: say "interrupted" and exit 130; elsewhere: return."""
    if launched_as_command():
        print("\nscratchrnn: interrupted", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED)
