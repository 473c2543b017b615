"""Engines: the ways to run a recurrent layer's time loop, behind one interface.

=============  =============================================================
engine         what it is
=============  =============================================================
``reference``  the loop to read (``reference.py``), Array API only: any backend
``numba``      NumPy arrays, one fused numba kernel per step each way; with the
               ``[mkl]`` extra and ``SCRATCHRNN_MKL=1``, MKL's packed W_hh
``cupy``       CuPy arrays, one fused CUDA kernel per step each way, eager
``cuda-graph`` CuPy arrays, the same loop captured once as a CUDA graph and
               replayed (``cuda_graph.py``); ``allow_tf32`` for TF32 products
=============  =============================================================

``checkpoint_every`` wraps any of them (:class:`Checkpointed`). A layer
takes its engine as an argument, ``engine="auto"`` by default: the best one
available for the arrays it is given (numba for NumPy when numba is
installed, cuda-graph -- else cupy -- for CuPy, otherwise reference). The environment variable
``SCRATCHRNN_ENGINE`` sets that default, nothing more. The kernels of the
accelerated engines are generated from the cells' own pointwise functions
(``pointwise.py``), so a cell's math is written once.

This package and :mod:`scratchrnn.backend` are the only places that import
numpy, numba or cupy, and only in the accelerated engines' modules.
"""

from __future__ import annotations

import os
from typing import Any

from .. import backend as B
from ..backend import Array
from ..backend.env import env_flag
from .base import Engine
from .checkpointed import Checkpointed, segment_length
from .reference import ReferenceEngine

ENGINE_NAMES = ("auto", "reference", "numba", "cupy", "cuda-graph")
_PREFERRED = {"numpy": ("numba",), "cupy": ("cuda-graph", "cupy")}   # for "auto", in order
_instances: dict[Any, Engine] = {"reference": ReferenceEngine()}


def default_engine() -> str:
    """``SCRATCHRNN_ENGINE`` (default ``"auto"``): what a layer gets without ``engine=``.

    The older ``SCRATCHRNN_FAST=0`` still means ``reference`` when that is unset.
    """
    name = os.environ.get("SCRATCHRNN_ENGINE", "").strip().lower()
    if not name and not env_flag("SCRATCHRNN_FAST", True):
        name = "reference"
    return check_engine_name(name or "auto", "SCRATCHRNN_ENGINE")


def check_engine_name(name: str, what: str = "engine") -> str:
    if name not in ENGINE_NAMES:
        raise ValueError(f"{what}: expected one of {ENGINE_NAMES}, got {name!r}")
    return name


def get_engine(name: str, allow_tf32: bool | None = None) -> Engine:
    """The engine called ``name`` (not 'auto'); raises if it cannot run here.

    ``allow_tf32`` matters to ``cuda-graph`` only (None: CuPy's ``CUPY_TF32``).
    """
    check_engine_name(name)
    if name == "auto":
        raise ValueError("engine: 'auto' depends on the arrays; use select_engine")
    key = (name, allow_tf32) if name == "cuda-graph" else name
    if key not in _instances:
        from .fused import CupyTarget, FusedEngine, NumbaTarget

        target = NumbaTarget() if name == "numba" else CupyTarget()
        if not target.available():
            hint = ("numba does not import: pip install numba" if name == "numba"
                    else "pip install scratchrnn[cuda12] (or [cuda13]) and a CUDA GPU")
            raise RuntimeError(f"engine {name!r} is not available here ({hint})")
        if name == "cuda-graph":
            from .cuda_graph import CudaGraphEngine

            _instances[key] = CudaGraphEngine(target, allow_tf32=allow_tf32)
        else:
            _instances[key] = FusedEngine(target)
    return _instances[key]


_available: list[str] | None = None


def available_engines() -> list[str]:
    """The engines that can run on this machine (reference always); looked up once."""
    global _available
    if _available is None:
        names = ["reference"]
        for name in ("numba", "cupy", "cuda-graph"):
            try:
                get_engine(name)
                names.append(name)
            except RuntimeError:
                pass
        _available = names
    return list(_available)


def select_engine(name: str, x: Array, allow_tf32: bool | None = None) -> Engine:
    """The engine to run on ``x``: ``name`` itself, or for 'auto' the best for x's backend."""
    check_engine_name(name)
    if name != "auto":
        engine = get_engine(name, allow_tf32)
        if not engine.supports(x):
            raise TypeError(f"engine {name!r} cannot run on {B.backend_of(x).label} arrays of "
                            f"dtype {B.dtype_name(x)} and shape {tuple(x.shape)}; use "
                            f"engine='auto' or 'reference'")
        return engine
    for preferred in _PREFERRED.get(B.backend_of(x).name, ()):
        if preferred in available_engines():
            engine = get_engine(preferred, allow_tf32)
            if engine.supports(x):
                return engine
    return _instances["reference"]


__all__ = ["Engine", "Checkpointed", "ReferenceEngine", "ENGINE_NAMES", "available_engines",
           "default_engine", "get_engine", "select_engine", "segment_length"]
