"""MKL's float products through ctypes, with its packed-weight GEMM (``[mkl]`` extra).

A recurrent layer multiplies by the same ``W_hh`` at every time step, with a
small batch. A BLAS such as OpenBLAS copies (packs) the weight matrix into its
kernel's layout on every call; for ``(B, H) x (H, G·H)`` with B ≤ 128 that
copy is a large part of the call. MKL can pack a matrix once
(``cblas_sgemm_pack``) and multiply by the packed copy many times
(``cblas_sgemm_compute``), which is what the numba engine uses when the
``mkl`` wheel is installed (``pip install scratchrnn[mkl]``).

It is **off unless ``SCRATCHRNN_MKL=1``**: a layer alone runs 1.1-1.2x faster
with it, but a whole training job (``scratchrnn train``, whose head and
optimizer use NumPy's OpenBLAS) ran 3x slower with 2 threads, MKL's OpenMP
threads and OpenBLAS's threads spinning against each other on two cores
(``benchmarks/RESULTS.md``). Nothing here is needed: :func:`load` returns None
when MKL is off or cannot be loaded, and the callers use NumPy's own BLAS.
MKL takes NumPy's BLAS thread count when it loads, and
:func:`~scratchrnn.backend.set_blas_threads` (the thread policy) sets both.
Row-major everywhere (CBLAS).
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .env import env_flag

_ROW_MAJOR, _NO_TRANS, _TRANS, _PACKED = 101, 111, 112, 151
_B_MATRIX = 162
_SEQUENTIAL, _GNU = 1, 3            # MKL_THREADING_* for MKL_Set_Threading_Layer
_c_size_t, _c_int, _c_float, _c_double, _p = (ctypes.c_size_t, ctypes.c_int, ctypes.c_float,
                                              ctypes.c_double, ctypes.c_void_p)


@dataclass(slots=True)
class Packed:
    """A weight matrix packed once by MKL as the right operand ``op(W)`` (K, N)."""

    buffer: Any        # bytes holding MKL's packed copy (owned by this object)
    address: int       # where the packed copy starts in it (64-byte aligned)
    dtype: Any         # float32 or float64
    K: int             # rows of op(W)
    N: int             # columns of op(W)
    source: Any        # the array it was packed from (kept to check reuse)


class MKL:
    """The few MKL entry points the engines use; one instance per process."""

    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.lib, self.path = lib, path
        self._gemm = {np.dtype(np.float32): lib.cblas_sgemm, np.dtype(np.float64): lib.cblas_dgemm}
        for f, scalar in ((lib.cblas_sgemm, _c_float), (lib.cblas_dgemm, _c_double)):
            f.restype = None
            f.argtypes = [_c_int, _c_int, _c_int, _c_int, _c_int, _c_int, scalar, _p, _c_int,
                          _p, _c_int, scalar, _p, _c_int]
        self._pack, self._compute, self._size = {}, {}, {}
        for dt, letter, scalar in ((np.float32, "s", _c_float), (np.float64, "d", _c_double)):
            dt = np.dtype(dt)
            size = getattr(lib, f"cblas_{letter}gemm_pack_get_size")
            size.restype, size.argtypes = _c_size_t, [_c_int, _c_int, _c_int, _c_int]
            pack = getattr(lib, f"cblas_{letter}gemm_pack")
            pack.restype = None
            pack.argtypes = [_c_int, _c_int, _c_int, _c_int, _c_int, _c_int, scalar, _p, _c_int,
                             _p]
            compute = getattr(lib, f"cblas_{letter}gemm_compute")
            compute.restype = None
            compute.argtypes = [_c_int, _c_int, _c_int, _c_int, _c_int, _c_int, _p, _c_int, _p,
                                _c_int, scalar, _p, _c_int]
            self._size[dt], self._pack[dt], self._compute[dt] = size, pack, compute
        self.lib.MKL_Set_Num_Threads.argtypes = [_c_int]
        self.lib.MKL_Get_Max_Threads.restype = _c_int

    # ---- threads -------------------------------------------------------- #
    def set_threads(self, n: int) -> None:
        """Give MKL ``n`` threads (at least 1)."""
        self.lib.MKL_Set_Num_Threads(max(1, int(n)))

    def get_threads(self) -> int:
        """MKL's current thread count."""
        return int(self.lib.MKL_Get_Max_Threads())

    # ---- products ------------------------------------------------------- #
    def gemm(self, c: np.ndarray, a: np.ndarray, b: np.ndarray, trans_a: bool = False,
             trans_b: bool = False) -> None:
        """c = op(a) @ op(b); every array 2-D, C-contiguous, of one float dtype."""
        M, N = c.shape
        K = a.shape[0] if trans_a else a.shape[1]
        self._gemm[c.dtype](_ROW_MAJOR, _TRANS if trans_a else _NO_TRANS,
                            _TRANS if trans_b else _NO_TRANS, M, N, K, 1.0, a.ctypes.data,
                            a.shape[1], b.ctypes.data, b.shape[1], 0.0, c.ctypes.data, N)

    def pack_b(self, w: np.ndarray, trans: bool, m: int) -> Packed:
        """Pack ``op(w)`` (``w.T`` if ``trans``) as the right operand of products with m rows."""
        K, N = (w.shape[1], w.shape[0]) if trans else w.shape
        dt = w.dtype
        size = int(self._size[dt](_B_MATRIX, m, N, K))
        buffer = np.empty(size + 64, dtype=np.uint8)
        address = buffer.ctypes.data + (-buffer.ctypes.data) % 64      # 64-byte aligned
        self._pack[dt](_ROW_MAJOR, _B_MATRIX, _TRANS if trans else _NO_TRANS, m, N, K, 1.0,
                       w.ctypes.data, w.shape[1], address)
        return Packed(buffer, address, dt, K, N, w)

    def gemm_packed(self, c: np.ndarray, a: np.ndarray, b: Packed) -> None:
        """c = a @ op(W) with op(W) packed by :meth:`pack_b`; a (M, K), c (M, N) contiguous."""
        M, N = c.shape
        self._compute[c.dtype](_ROW_MAJOR, _NO_TRANS, _PACKED, M, N, b.K, a.ctypes.data,
                               a.shape[1], b.address, N, 0.0, c.ctypes.data, N)


_state: dict[str, Any] = {}


def _candidates() -> list[str]:
    """Where the ``mkl`` wheel puts libmkl_rt: ``<prefix>/lib`` of this interpreter."""
    found = []
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, sys.exec_prefix)):
        found += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")), reverse=True)
        found += sorted(glob.glob(os.path.join(prefix, "Library", "bin", "mkl_rt*.dll")))
        found += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt*.dylib")))
    return found


def load(threads: Callable[[], int | None] | None = None, enable: bool | None = None
         ) -> MKL | None:
    """MKL, loaded once per process; None when off, absent or refused.

    Off unless ``enable`` (None: the ``SCRATCHRNN_MKL`` variable is 1/true/yes/on).
    ``threads`` (at the first load): the thread count to start with, e.g. NumPy's
    BLAS's (:func:`~scratchrnn.backend.get_blas_threads`); None keeps MKL's own.
    """
    if enable is None:
        enable = env_flag("SCRATCHRNN_MKL", False)
    if not enable:
        _state.setdefault("why", "off (set SCRATCHRNN_MKL=1 to use it)")
        return None
    if "mkl" in _state:
        return _state["mkl"]
    mkl, why = None, "not installed (pip install scratchrnn[mkl])"
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            # GNU OpenMP threads: the same runtime as the rest of a NumPy/numba process,
            # no second OpenMP runtime that spins against the first.
            lib.MKL_Set_Threading_Layer.argtypes = [_c_int]
            lib.MKL_Set_Threading_Layer(_GNU if _has_gomp() else _SEQUENTIAL)
            mkl = MKL(lib, path)
            break
        except (OSError, AttributeError) as err:
            why = f"{path}: {err}"
    _state["mkl"], _state["why"] = mkl, why
    if mkl is not None and threads is not None:
        mkl.set_threads(threads() or mkl.get_threads())
    return mkl


def loaded() -> MKL | None:
    """MKL if :func:`load` has loaded it, else None (never loads it)."""
    return _state.get("mkl")


def _has_gomp() -> bool:
    try:
        ctypes.CDLL("libgomp.so.1", mode=ctypes.RTLD_GLOBAL)   # MKL's GNU layer links to it
        return True
    except OSError:
        return False


def why_not() -> str:
    """Why :func:`load` returned None (after it did)."""
    return _state.get("why", "not loaded yet")
