"""backend.index_add, the embedding gradient's scatter-add: repeated indices must
accumulate. The NumPy fast path (np.add.at), the portable one-hot product and
(with a GPU) cupyx.scatter_add agree, and the naive ``target[idx] += v``,
which keeps one write per repeated index, is shown to differ -- so these
tests would catch that bug."""

from __future__ import annotations

import numpy as np
import pytest

from scratchrnn import backend as B

IDX = np.array([1, 4, 1, 0, 1, 4, 2])          # 1 three times, 4 twice, 3 never


def example(dtype: str = "float64"):
    gen = B.Generator(0)
    host = B.get_backend("numpy")
    target = gen.normal((5, 3), host, dtype)
    values = gen.normal((len(IDX), 3), host, dtype)
    return target, values


def loop_reference(target, idx, values):
    """One row at a time in Python: unambiguous, slow."""
    out = target.copy()
    for n, i in enumerate(idx):
        out[i] += values[n]
    return out


def test_numpy_fast_path_equals_portable_and_reference():
    target, values = example()
    ref = loop_reference(target, IDX, values)
    fast = B.index_add(target.copy(), IDX, values)
    portable = B.index_add_portable(target.copy(), IDX, values)
    np.testing.assert_allclose(fast, ref, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(portable, ref, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(fast[1], target[1] + values[0] + values[2] + values[4],
                               rtol=1e-14)
    np.testing.assert_array_equal(fast[3], target[3])    # unused row untouched


def test_naive_fancy_index_add_loses_repeats():
    target, values = example()
    naive = target.copy()
    naive[IDX] += values                                  # the bug: one write per index
    fast = B.index_add(target.copy(), IDX, values)
    assert not np.allclose(naive, fast)
    rows_differ = ~np.isclose(naive, fast).all(axis=1)
    np.testing.assert_array_equal(np.flatnonzero(rows_differ), [1, 4])   # the repeated ids


def test_fast_path_updates_in_place_and_returns_the_target():
    target, values = example()
    out = B.index_add(target, IDX, values)
    assert out is target


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_strict_backend_uses_the_portable_path(dtype):
    target, values = example(dtype)
    strict = B.get_backend("strict")
    out = B.index_add(strict.asarray(target), strict.asarray(IDX), strict.asarray(values))
    assert B.backend_of(out).name == "array_api_strict" and B.dtype_name(out) == dtype
    tol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(B.to_numpy(out), loop_reference(target, IDX, values),
                               rtol=tol, atol=tol)


def test_empty_index_changes_nothing():
    target, values = example()
    empty = np.zeros(0, dtype=np.int64)
    np.testing.assert_array_equal(B.index_add(target.copy(), empty, values[:0]), target)
    np.testing.assert_array_equal(B.index_add_portable(target.copy(), empty, values[:0]),
                                  target)


@pytest.mark.gpu
@pytest.mark.skipif(not B.cuda_available(), reason="needs a CUDA device and CuPy")
def test_cupy_scatter_add_equals_reference():
    target, values = example()
    gpu = B.get_backend("cupy")
    out = B.index_add(gpu.asarray(target), gpu.asarray(IDX), gpu.asarray(values))
    np.testing.assert_allclose(B.to_numpy(out), loop_reference(target, IDX, values),
                               rtol=1e-14, atol=1e-14)
    portable = B.index_add_portable(gpu.asarray(target), gpu.asarray(IDX), gpu.asarray(values))
    np.testing.assert_allclose(B.to_numpy(portable), B.to_numpy(out), rtol=1e-14, atol=1e-14)
