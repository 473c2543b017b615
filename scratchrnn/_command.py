"""What every command (``scratchrnn train | sample | export | gradcheck``, also
``python -m scratchrnn.gradcheck``) shares: how it ends on an error.

* A bad argument -- one that argparse refuses, or that an option's ``type=``
  refuses -- ends with one line, ``scratchrnn CMD: error: ... (see --help)``,
  and exit status 2 (:class:`OneLineParser`).
* Anything that goes wrong while the command runs (a missing file, an
  unusable environment variable, no GPU, a diverged run) ends with one line,
  ``scratchrnn CMD: error: ...``, and exit status 1 (:func:`one_line_errors`);
  ``SCRATCHRNN_DEBUG=1`` lets the traceback through instead.

Ctrl-C (exit status 130) is :mod:`._interrupt`'s.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage + error (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def float_in(low: float, high: float, low_open: bool = False, high_open: bool = False
             ) -> Callable[[str], float]:
    """``argparse`` ``type=``: a number in [low, high] (open ends as asked); NaN is never in."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = (value > low if low_open else value >= low) and \
            (value < high if high_open else value <= high)
        if not ok:
            lo, hi = "(" if low_open else "[", ")" if high_open else "]"
            raise argparse.ArgumentTypeError(f"expected a number in {lo}{low}, {high}{hi}, "
                                             f"got {text!r}")
        return value
    return parse


def device_arg(text: str) -> str:
    """``argparse`` ``type=`` for ``--device``: a spec that
    :func:`scratchrnn.backend.parse_device` knows (whether that device can run is
    found out when the command starts: :func:`backend_for`)."""
    from . import backend as B

    try:
        B.parse_device(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected cpu, cuda[:N], auto or strict, "
                                         f"got {text!r}") from None
    return text


def backend_for(spec: str) -> Any:
    """The backend for ``--device spec``, with a clear message when CUDA cannot run."""
    from . import backend as B

    if spec.strip().lower().partition(":")[0] in ("cuda", "cupy", "gpu", "cp"):
        problem = B.cuda_problem()
        if problem is not None:
            kind, why = problem
            hint = ("; install it with pip install 'scratchrnn[cuda12]' (CUDA 12) or "
                    "'scratchrnn[cuda13]', or use --device cpu") if kind == "missing" else \
                "; check the driver and the GPU (nvidia-smi), or use --device cpu"
            raise ValueError(f"--device {spec}: no usable GPU: {why}{hint}")
    return B.get_backend(spec)


def _debug() -> bool:
    """``SCRATCHRNN_DEBUG`` on: tracebacks instead of one line (any value but the off
    words turns it on, so a mistyped value shows more, never less)."""
    from .backend.env import env_flag

    try:
        return env_flag("SCRATCHRNN_DEBUG", False)
    except ValueError:
        return True


def one_line_errors(command: str, run: Callable[[], int]) -> int:
    """``run()``'s exit status; an exception becomes one line on stderr and status 1.

    Under MPI with N > 1 processes an error on one rank is said with its rank and
    ends every rank (the others would wait for it); a divergence, which every rank
    sees, is said once by rank 0.
    """
    try:
        return run()
    except Exception as err:   # one line, no traceback, for every run-time failure
        from .training.distributed import current
        from .training.trainer import TrainingDiverged

        if _debug():
            raise

        kind = "training diverged" if isinstance(err, TrainingDiverged) else "error"
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        comm = current()
        if comm.size > 1 and not isinstance(err, TrainingDiverged):
            # only this rank failed: say so, then end every rank (the others would wait)
            print(f"scratchrnn {command}: {kind}: rank {comm.rank} of {comm.size}: "
                  f"{message}", file=sys.stderr)
            comm.abort(1)
        if comm.is_root:    # a divergence is seen by every rank (the loss is global)
            print(f"scratchrnn {command}: {kind}: {message}", file=sys.stderr)
        return 1
