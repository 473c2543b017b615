"""cuBLAS GEMM called directly (ctypes), so that it can be captured into a CUDA graph.

``cupy.matmul`` refuses to run while a stream is being captured; cuBLAS
itself captures fine when it has its own handle, bound to the capturing
stream (``cublasSetStream``), and a preallocated workspace
(``cublasSetWorkspace``), so that it allocates nothing during capture.

cuBLAS is column-major; the library's arrays are row-major. A row-major
(r, c) array read column-major is its transpose, so the row-major product

    C (M, N) = op(A) (M, K) @ op(B) (K, N)

is the column-major product Cᵀ (N, M) = op(B)ᵀ op(A)ᵀ: cuBLAS gets B first,
then A, with m = N, n = M and each leading dimension the row stride of the
array as stored. :func:`gemm_args` does that mapping (pure Python, checked
against NumPy in the tests by :func:`column_major_gemm`).
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

OP_N, OP_T = 0, 1
DEFAULT_MATH, TF32_TENSOR_OP_MATH = 0, 3
WORKSPACE_BYTES = 32 * 1024 * 1024


def gemm_args(c_shape: tuple[int, int], a_shape: tuple[int, int], b_shape: tuple[int, int],
              trans_a: bool, trans_b: bool, lda_row: int | None = None,
              ldb_row: int | None = None, ldc_row: int | None = None) -> dict[str, int]:
    """cuBLAS's (transa, transb, m, n, k, lda, ldb, ldc) for the row-major product
    ``C = op(A) @ op(B)``, with cuBLAS's A and B being our B and A.

    ``*_row`` are the row strides (in elements) of the stored arrays, by default
    their second dimension (contiguous rows).
    """
    M, N = c_shape
    K = a_shape[0] if trans_a else a_shape[1]
    if (a_shape[1] if trans_a else a_shape[0]) != M or \
            (b_shape[1] if trans_b else b_shape[0]) != K or \
            (b_shape[0] if trans_b else b_shape[1]) != N:
        raise ValueError(f"gemm: shapes do not chain: C {c_shape} = op(A) {a_shape} "
                         f"(trans {trans_a}) @ op(B) {b_shape} (trans {trans_b})")
    return dict(transa=OP_T if trans_b else OP_N, transb=OP_T if trans_a else OP_N,
                m=N, n=M, k=K,
                lda=ldb_row if ldb_row is not None else b_shape[1],
                ldb=lda_row if lda_row is not None else a_shape[1],
                ldc=ldc_row if ldc_row is not None else c_shape[1])


def column_major_gemm(transa: int, transb: int, m: int, n: int, k: int, alpha: float,
                      A: Any, lda: int, B: Any, ldb: int, beta: float, C: Any, ldc: int) -> None:
    """What cuBLAS's gemm does, on flat NumPy buffers, element by element from its
    definition: C[i + j·ldc] = α Σ_l opA(i, l) opB(l, j) + β C[i + j·ldc]."""
    def op_a(i: int, l: int) -> float:
        return A[i + l * lda] if transa == OP_N else A[l + i * lda]

    def op_b(l: int, j: int) -> float:
        return B[l + j * ldb] if transb == OP_N else B[j + l * ldb]

    for j in range(n):
        for i in range(m):
            acc = sum(op_a(i, l) * op_b(l, j) for l in range(k))
            C[i + j * ldc] = alpha * acc + beta * C[i + j * ldc]


def _load_library() -> ctypes.CDLL:
    """The libcublas that CuPy uses (loaded by CuPy's own bindings first)."""
    try:  # makes the process load CuPy's libcublas, so dlopen by soname finds it
        import cupy_backends.cuda.libs.cublas  # noqa: F401
    except ImportError:
        pass
    names = ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"]
    try:
        import nvidia  # the CUDA wheels that cupy-cuda12x/13x bring
        for root in getattr(nvidia, "__path__", []):
            names += sorted(glob.glob(os.path.join(root, "cu*", "lib", "libcublas.so*")))
            names += sorted(glob.glob(os.path.join(root, "cublas", "lib", "libcublas.so*")))
    except ImportError:
        pass
    errors = []
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as err:
            errors.append(str(err))
    raise OSError("cannot load libcublas: " + "; ".join(errors[-3:]))


class Cublas:
    """A cuBLAS handle of our own: bound to one stream, with a preallocated workspace."""

    def __init__(self, stream_ptr: int, allow_tf32: bool) -> None:
        import cupy

        self.lib = lib = _load_library()
        self.handle = ctypes.c_void_p()
        self._check(lib.cublasCreate_v2(ctypes.byref(self.handle)), "cublasCreate")
        self._check(lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(stream_ptr)),
                    "cublasSetStream")
        self.workspace = cupy.empty(WORKSPACE_BYTES, dtype=cupy.uint8)
        self._check(lib.cublasSetWorkspace_v2(self.handle,
                                              ctypes.c_void_p(self.workspace.data.ptr),
                                              ctypes.c_size_t(WORKSPACE_BYTES)),
                    "cublasSetWorkspace")
        mode = TF32_TENSOR_OP_MATH if allow_tf32 else DEFAULT_MATH
        self._check(lib.cublasSetMathMode(self.handle, ctypes.c_int(mode)), "cublasSetMathMode")
        # alpha = 1, beta = 0 in host memory, kept alive for the graphs that captured them
        self.scalars = {"float32": (ctypes.c_float(1.0), ctypes.c_float(0.0)),
                        "float64": (ctypes.c_double(1.0), ctypes.c_double(0.0))}

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{what} failed with cuBLAS status {status}")

    def gemm(self, c: Any, a: Any, b: Any, trans_a: bool = False, trans_b: bool = False) -> None:
        """c = op(a) @ op(b) for 2-D CuPy arrays with unit column stride."""
        dtype = str(c.dtype)
        item = c.itemsize
        for name, arr in (("a", a), ("b", b), ("c", c)):
            if arr.ndim != 2 or arr.strides[1] != item or arr.dtype != c.dtype:
                raise ValueError(f"gemm: {name} must be 2-D {dtype} with contiguous rows")
        g = gemm_args(tuple(c.shape), tuple(a.shape), tuple(b.shape), trans_a, trans_b,
                      a.strides[0] // item, b.strides[0] // item, c.strides[0] // item)
        fn = self.lib.cublasSgemm_v2 if dtype == "float32" else self.lib.cublasDgemm_v2
        one, zero = self.scalars[dtype]
        self._check(fn(self.handle, ctypes.c_int(g["transa"]), ctypes.c_int(g["transb"]),
                       ctypes.c_int(g["m"]), ctypes.c_int(g["n"]), ctypes.c_int(g["k"]),
                       ctypes.byref(one), ctypes.c_void_p(b.data.ptr), ctypes.c_int(g["lda"]),
                       ctypes.c_void_p(a.data.ptr), ctypes.c_int(g["ldb"]), ctypes.byref(zero),
                       ctypes.c_void_p(c.data.ptr), ctypes.c_int(g["ldc"])), "gemm")
