"""Ctrl-C in the commands: one line and exit status 130, never a traceback.

``scratchrnn`` (the console script) and ``python -m scratchrnn[.gradcheck]``
import the package before their ``main`` can catch anything; an interrupt in
that window would print a traceback of the import machinery. The package's
``__init__`` imports this module first (which, in the command only, installs
a SIGINT handler that exits with status 130 and one line) and calls
:func:`imports_done` last (which puts the old handler back). In anyone else's
program nothing changes. After the imports, each entry point runs its
``main`` through :func:`run_command`. Standard library only.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

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


def _say_interrupted() -> None:
    print("\nscratchrnn: interrupted", file=sys.stderr)


def _exit_interrupted(signum: int, frame: object) -> None:
    _say_interrupted()
    raise SystemExit(EXIT_INTERRUPTED)


def run_command(main: Callable[[], int]) -> int:
    """``main()``'s exit status, or 130 after one line when Ctrl-C interrupts it.

    As the command (see :func:`launched_as_command`), SIGINT is ignored once
    ``main`` is over, so a late Ctrl-C cannot turn the interpreter's exit into
    a traceback; called from a program, the handler is left alone.
    """
    as_command = launched_as_command()
    try:
        try:
            return main()
        finally:
            if as_command:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:
        _say_interrupted()
        return EXIT_INTERRUPTED


def exit_quietly_on_interrupt() -> Callable[[], None]:
    """In the command, make Ctrl-C exit 130 quietly until the returned function
    is called (which restores the handler); elsewhere change nothing."""
    if not launched_as_command():
        return lambda: None
    try:
        old = signal.signal(signal.SIGINT, _exit_interrupted)
    except ValueError:          # not the main thread
        return lambda: None
    return lambda: signal.signal(signal.SIGINT, old)


_restore = exit_quietly_on_interrupt()


def imports_done() -> None:
    """The package is imported: Ctrl-C is Python's ``KeyboardInterrupt`` again."""
    _restore()
