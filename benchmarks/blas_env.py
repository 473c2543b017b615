"""Which OpenBLAS kernels a benchmark measures, chosen before numpy is imported.

PyTorch's CPU kernels (MKL, oneDNN) use every instruction set the CPU has,
whatever ``OPENBLAS_CORETYPE`` says. A side-by-side run is only fair when
NumPy's OpenBLAS may do the same, so by default (``auto``) the benchmarks drop
an inherited ``OPENBLAS_CORETYPE`` and let :mod:`scratchrnn.backend.blas_tuning`
pick for this CPU, as a fresh shell would. ``inherit`` keeps the environment's
choice, and any other value (``Haswell``, ``SkylakeX``, ...) is used as given.
The benchmarks print the choice and the kernels OpenBLAS then reports.
Call :func:`apply` before anything imports numpy; child processes inherit it.
"""

from __future__ import annotations

import os

CHOICES_HELP = ("OpenBLAS kernels: auto (what scratchrnn picks for this CPU, ignoring an "
                "inherited OPENBLAS_CORETYPE), inherit, or a core name such as Haswell")


def apply(choice: str) -> str:
    """Set up ``OPENBLAS_CORETYPE`` for ``choice``; returns a line describing what was done."""
    inherited = os.environ.get("OPENBLAS_CORETYPE")
    if choice == "inherit":
        return f"OpenBLAS core type: inherited ({inherited or 'not set: OpenBLAS detects'})"
    if choice != "auto":
        os.environ["OPENBLAS_CORETYPE"] = choice
        return f"OpenBLAS core type: {choice} (asked for; environment had {inherited})"
    os.environ.pop("OPENBLAS_CORETYPE", None)
    import scratchrnn.backend  # noqa: F401  (its first lines pick, before importing numpy)

    picked = os.environ.get("OPENBLAS_CORETYPE")
    return (f"OpenBLAS core type: {picked or 'OpenBLAS detects'} (auto; the environment had "
            f"{inherited})")
