"""Engines: the ways to run a recurrent layer's time loop, behind one interface.

=============  =============================================================
engine         what it is
=============  =============================================================
``reference``  the loop to read (``reference.py``), Array API only: any backend
``numba``      NumPy arrays, one fused numba kernel per step each way (``[fast]``)
``cupy``       CuPy arrays, one fused CUDA kernel per step each way, eager
=============  =============================================================

``checkpoint_every`` wraps any of them (:class:`Checkpointed`). A layer
takes its engine as an argument, ``engine="auto"`` by default: the best one
available for the arrays it is given (numba for NumPy when numba is
installed, cupy for CuPy, otherwise reference). The environment variable
``SCRATCHRNN_ENGINE`` sets that default, nothing more. The kernels of the
accelerated engines are generated from the cells' own pointwise functions
(``pointwise.py``), so a cell's math is written once.

This package and :mod:`scratchrnn.backend` are the only places that import
numpy, numba or cupy, and only in the accelerated engines' modules.
"""

from __future__ import annotations

import os

from .. import backend as B
from ..backend import Array
from .base import Engine
from .checkpointed import Checkpointed, segment_length
from .reference import ReferenceEngine

ENGINE_NAMES = ("auto", "reference", "numba", "cupy")
_instances: dict[str, Engine] = {"reference": ReferenceEngine()}


def default_engine() -> str:
    """``SCRATCHRNN_ENGINE`` (default ``"auto"``): what a layer gets without ``engine=``."""
    return check_engine_name(os.environ.get("SCRATCHRNN_ENGINE", "auto").strip().lower() or
                             "auto", "SCRATCHRNN_ENGINE")


def check_engine_name(name: str, what: str = "engine") -> str:
    if name not in ENGINE_NAMES:
        raise ValueError(f"{what}: expected one of {ENGINE_NAMES}, got {name!r}")
    return name


def get_engine(name: str) -> Engine:
    """The engine called ``name`` (not 'auto'); raises if it cannot run here."""
    check_engine_name(name)
    if name == "auto":
        raise ValueError("engine: 'auto' depends on the arrays; use select_engine")
    if name not in _instances:
        from .fused import CupyTarget, FusedEngine, NumbaTarget

        target = {"numba": NumbaTarget, "cupy": CupyTarget}[name]()
        if not target.available():
            hint = ("pip install scratchrnn[fast]" if name == "numba"
                    else "pip install scratchrnn[cuda12] (or [cuda13]) and a CUDA GPU")
            raise RuntimeError(f"engine {name!r} is not available here ({hint})")
        _instances[name] = FusedEngine(target)
    return _instances[name]


_available: list[str] | None = None


def available_engines() -> list[str]:
    """The engines that can run on this machine (reference always); looked up once."""
    global _available
    if _available is None:
        names = ["reference"]
        for name in ("numba", "cupy"):
            try:
                get_engine(name)
                names.append(name)
            except RuntimeError:
                pass
        _available = names
    return list(_available)


def select_engine(name: str, x: Array) -> Engine:
    """The engine to run on ``x``: ``name`` itself, or for 'auto' the best for x's backend."""
    check_engine_name(name)
    if name != "auto":
        engine = get_engine(name)
        if not engine.supports(x):
            raise TypeError(f"engine {name!r} cannot run on {B.backend_of(x).label} arrays of "
                            f"dtype {B.dtype_name(x)}; use engine='auto' or 'reference'")
        return engine
    library = B.backend_of(x).name
    preferred = {"numpy": "numba", "cupy": "cupy"}.get(library)
    if preferred is not None and preferred in available_engines():
        engine = get_engine(preferred)
        if engine.supports(x):
            return engine
    return _instances["reference"]


__all__ = ["Engine", "Checkpointed", "ReferenceEngine", "ENGINE_NAMES", "available_engines",
           "default_engine", "get_engine", "select_engine", "segment_length"]
