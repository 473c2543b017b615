"""scratchrnn.backend.mkl_blas: MKL's products against NumPy's (skipped without the wheel)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from scratchrnn.backend import mkl_blas

MKL = mkl_blas.load(enable=True)
needs_mkl = pytest.mark.skipif(MKL is None, reason=f"MKL: {mkl_blas.why_not()}")


@needs_mkl
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (False, True), (True, False),
                                              (True, True)])
def test_gemm_equals_numpy(dtype, trans_a, trans_b):
    rng = np.random.default_rng(0)
    M, N, K = 5, 7, 3
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    c = np.full((M, N), np.nan, dtype=dtype)
    MKL.gemm(c, a, b, trans_a, trans_b)
    want = (a.T if trans_a else a) @ (b.T if trans_b else b)
    np.testing.assert_allclose(c, want, rtol=1e-5 if dtype == "float32" else 1e-13)


@needs_mkl
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("trans", [False, True])
def test_packed_weight_reused_over_many_products(dtype, trans):
    """Pack W once, multiply T different left operands by it: each equals a @ op(W)."""
    rng = np.random.default_rng(1)
    B, H, GH = 3, 4, 12
    w = rng.standard_normal((GH, H) if trans else (H, GH)).astype(dtype)   # op(w): (H, GH)
    packed = MKL.pack_b(w, trans, B)
    assert (packed.K, packed.N) == (H, GH) and packed.address % 64 == 0
    for t in range(4):
        a = rng.standard_normal((B, H)).astype(dtype)
        c = np.empty((B, GH), dtype=dtype)
        MKL.gemm_packed(c, a, packed)
        np.testing.assert_allclose(c, a @ (w.T if trans else w),
                                   rtol=1e-5 if dtype == "float32" else 1e-13, err_msg=str(t))


def test_off_unless_asked_for():
    code = ("from scratchrnn.backend import mkl_blas\n"
            "print(mkl_blas.load(), mkl_blas.why_not())")
    for value in ("", "0"):
        env = dict(os.environ, SCRATCHRNN_MKL=value)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout
        assert out.strip() == "None off (set SCRATCHRNN_MKL=1 to use it)", value
