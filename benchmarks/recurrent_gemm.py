"""GFLOP/s of the recurrent products of one layer, library by library.

Per time step a layer computes ``h_{t-1} W_hh^T`` (forward, (B, H) x (H, G·H))
and ``da W_hh`` (backward, (B, G·H) x (G·H, H)). W_hh is the same matrix for
all T steps and B is small, so a library that packs W_hh once and reuses the
packed copy can beat one that repacks it on every call. This script times
T such products in a row for each candidate it can load, in this process:

* ``numpy``: ``np.matmul`` into a buffer, the transposed weights made
  contiguous once (what the numba engine did before MKL);
* ``openblas-new``: ``cblas_sgemm`` of the ``scipy-openblas32`` wheel, if installed;
* ``blis``: ``blis.py.gemm`` of the ``blis`` wheel, if installed;
* ``mkl``: ``cblas_sgemm`` of the ``mkl`` wheel, and ``mkl-packed``:
  ``cblas_sgemm_pack`` once, then ``cblas_sgemm_compute`` per step.

Only float32. Threads: ``--threads`` for every library (MKL and OpenBLAS read
it through their own setters; blis runs single-threaded).

    python benchmarks/recurrent_gemm.py [--threads 1] [--repeats 20] [--clock cpu]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time

SHAPES = {"small": (50, 32, 128, 4), "mid": (100, 64, 256, 4), "large": (50, 128, 512, 4)}


def make_loop(name: str, lib, a, c, w, w_t, fwd: bool, T: int):
    """T products ``c = a @ op(W)`` by candidate ``name`` (W packed first where it can be)."""
    import numpy as np

    M, N, K = c.shape[0], c.shape[1], a.shape[1]
    if name == "numpy":
        rhs = w_t if fwd else w
        return lambda: [np.matmul(a, rhs, out=c) for _ in range(T)]
    if name == "openblas-new":
        f = lib.scipy_cblas_sgemm
        args = (101, 111, 112 if fwd else 111, M, N, K, 1.0, a.ctypes.data, K, w.ctypes.data,
                w.shape[1], 0.0, c.ctypes.data, N)
        return lambda: [f(*args) for _ in range(T)]
    if name == "blis":
        rhs = w_t if fwd else w
        return lambda: [lib.gemm(a, rhs, out=c) for _ in range(T)]
    if name == "mkl":
        return lambda: [lib.gemm(c, a, w, trans_b=fwd) for _ in range(T)]
    packed = lib.pack_b(w, trans=fwd, m=M)                       # mkl-packed: once
    return lambda: [lib.gemm_packed(c, a, packed) for _ in range(T)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="cpu: process CPU time (steadier on a shared machine; 1 thread only)")
    ap.add_argument("--gates", type=int, default=None, help="G (default 4, the LSTM)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    os.environ["MKL_NUM_THREADS"] = str(args.threads)
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    import numpy as np

    from scratchrnn.backend import mkl_blas

    candidates = {"numpy": None}
    try:
        import scipy_openblas32

        lib = ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(),
                                       "lib" + scipy_openblas32.get_library() + ".so"))
        lib.scipy_openblas_set_num_threads(args.threads)
        i, p = ctypes.c_int, ctypes.c_void_p
        lib.scipy_cblas_sgemm.restype = None
        lib.scipy_cblas_sgemm.argtypes = [i, i, i, i, i, i, ctypes.c_float, p, i, p, i,
                                          ctypes.c_float, p, i]
        candidates["openblas-new"] = lib
    except (ImportError, OSError, AttributeError) as err:
        print(f"# scipy-openblas32: not measured ({err})")
    try:
        import blis.py

        candidates["blis"] = blis.py
    except ImportError as err:
        print(f"# blis: not measured ({err})")
    mkl = mkl_blas.load(enable=True)
    if mkl is None:
        print(f"# mkl: not measured ({mkl_blas.why_not()})")
    else:
        mkl.set_threads(args.threads)
        candidates["mkl"] = mkl
        candidates["mkl-packed"] = mkl

    now = time.process_time if args.clock == "cpu" else time.perf_counter
    rng = np.random.default_rng(0)
    print(f"threads {args.threads}, {args.clock} clock; µs per product (median of "
          f"{args.repeats} loops of T) and GFLOP/s")
    print("| shape | direction | " + " | ".join(candidates) + " |")
    for shape, (T, B, H, G) in SHAPES.items():
        G = args.gates or G
        w = rng.standard_normal((G * H, H)).astype(np.float32)      # W_hh (G·H, H)
        w_t = np.ascontiguousarray(w.T)                              # (H, G·H)
        for direction in ("fwd h W^T", "bwd da W"):
            fwd = direction.startswith("fwd")
            a = rng.standard_normal((B, H) if fwd else (B, G * H)).astype(np.float32)
            c = np.empty((B, G * H) if fwd else (B, H), dtype=np.float32)
            M, N, K = c.shape[0], c.shape[1], a.shape[1]
            flops = 2.0 * M * N * K
            row = []
            for name, lib in candidates.items():
                loop = make_loop(name, lib, a, c, w, w_t, fwd, T)
                loop()
                times = []
                for _ in range(args.repeats):
                    t0 = now()
                    loop()
                    times.append((now() - t0) / T)
                us = statistics.median(times) * 1e6
                row.append(f"{us:.1f} µs {flops / us * 1e-3:.0f}")
            print(f"| {shape} | {direction} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
