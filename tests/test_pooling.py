"""LastPool, MeanPool, AttentionPool: gradients with and without lengths,
values against direct NumPy references, zero weight and gradient on padding,
numerical stability, portability, and errors that name the argument."""

from __future__ import annotations

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.gradcheck import BOUND, check_gradients
from scratchrnn.nn import AttentionPool, LastPool, MeanPool

POOLS = ("last", "mean", "attention")


def make(kind: str, H: int, be: B.Backend, dtype: str = "float64", seed: int = 0):
    if kind == "last":
        return LastPool()
    if kind == "mean":
        return MeanPool()
    pool = AttentionPool(H, dtype=dtype, device=be, generator=B.Generator(seed))
    pool.weight.data = B.Generator(seed + 1).uniform(-0.8, 0.8, (H,), be, dtype)
    return pool


def contract(y, R) -> float:
    return B.to_scalar(B.namespace(y).sum(y * R))


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("sizes", [(5, 3, 4), (1, 1, 1)], ids=["T5B3H4", "T1B1H1"])
@pytest.mark.parametrize("kind", POOLS)
def test_gradients(kind, sizes, with_lengths, backend_name):
    be = B.get_backend(backend_name)
    T, Bn, H = sizes
    pool = make(kind, H, be)
    gen = B.Generator(2)
    h = gen.normal((T, Bn, H), be, "float64")
    R = gen.normal((Bn, H), be, "float64")
    lengths = [T, 2, 1][:Bn] if with_lengths else None

    def loss() -> float:
        return contract(pool(h, lengths), R)

    pool.zero_grad()
    pooled = pool(h, lengths)
    assert tuple(pooled.shape) == (Bn, H)
    dh = pool.backward(R)
    assert tuple(dh.shape) == (T, Bn, H)
    wrt, analytic = {"h": h}, {"h": dh}
    if kind == "attention":
        assert tuple(pool.weights.shape) == (T, Bn)
        wrt["weight"], analytic["weight"] = pool.weight.data, pool.weight.grad
    errors = check_gradients(loss, wrt, analytic)
    assert max(errors.values()) < BOUND, errors
    if with_lengths and T > 1:                   # padding gets exactly zero gradient
        dh_host = B.to_numpy(dh)
        for b, n in enumerate(lengths):
            assert not dh_host[n:, b].any()
        assert dh_host[:, 0].any()


def padded_example(be: B.Backend, dtype: str = "float64"):
    gen = B.Generator(3)
    h = gen.normal((6, 3, 4), be, dtype)
    return h, [6, 3, 1]


def test_last_pool_picks_the_last_valid_step():
    be = B.get_backend("numpy")
    h, lengths = padded_example(be)
    pooled = LastPool()(h, lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(pooled[b], h[n - 1, b])
    np.testing.assert_array_equal(LastPool()(h), h[-1])
    np.testing.assert_array_equal(LastPool()(h, np.array([6, 6, 6])), h[-1])


def test_mean_pool_averages_the_valid_steps():
    be = B.get_backend("numpy")
    h, lengths = padded_example(be)
    pooled = MeanPool()(h, lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(pooled[b], h[:n, b].mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(MeanPool()(h), h.mean(axis=0), rtol=1e-14)


def test_attention_pool_values_and_weights():
    be = B.get_backend("numpy")
    h, lengths = padded_example(be)
    pool = make("attention", 4, be)
    c = pool(h, lengths)
    w = pool.weight.data
    alpha = B.to_numpy(pool.weights)
    for b, n in enumerate(lengths):
        e = h[:n, b] @ w
        ref = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
        np.testing.assert_allclose(alpha[:n, b], ref, rtol=1e-14)
        assert (alpha[n:, b] == 0.0).all()                 # exactly zero on padding
        np.testing.assert_allclose(c[b], ref @ h[:n, b], rtol=1e-13)
    np.testing.assert_allclose(alpha.sum(axis=0), 1.0, rtol=1e-14)


@pytest.mark.parametrize("kind", POOLS)
def test_padding_values_do_not_matter(kind):
    be = B.get_backend("numpy")
    h, lengths = padded_example(be)
    pool = make(kind, 4, be)
    ref = pool(h, lengths).copy()
    noisy = h.copy()
    for b, n in enumerate(lengths):
        noisy[n:, b] = 1e6 * (b + 1)                     # huge scores on padding
    out = pool(noisy, lengths)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref, rtol=1e-14, atol=0)


def test_attention_is_numerically_stable():
    be = B.get_backend("numpy")
    h, lengths = padded_example(be, "float32")
    pool = make("attention", 4, be, dtype="float32")
    c = pool(h * 1e4, lengths)                        # scores ~1e4: exp would overflow
    assert np.isfinite(c).all() and np.isfinite(pool.weights).all()
    dh = pool.backward(np.ones((3, 4), dtype=np.float32))
    assert np.isfinite(dh).all() and np.isfinite(pool.weight.grad).all()


def test_attention_gradient_accumulates_and_init():
    be = B.get_backend("numpy")
    pool = AttentionPool(16, generator=B.Generator(4))
    w = B.to_numpy(pool.weight.data)
    assert w.shape == (16,) and w.dtype == np.float32
    assert np.abs(w).max() <= 0.25 and np.abs(w).max() > 0.1
    pool = make("attention", 4, be)
    h, lengths = padded_example(be)
    R = B.Generator(5).normal((3, 4), be, "float64")
    pool(h, lengths)
    pool.backward(R)
    once = pool.weight.grad.copy()
    assert once.any()
    pool(h, lengths)
    pool.backward(R)
    np.testing.assert_allclose(pool.weight.grad, 2 * once, rtol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", POOLS)
def test_strict_backend_equals_numpy(kind, dtype):
    results = []
    for name in ("numpy", "strict"):
        be = B.get_backend(name)
        pool = make(kind, 4, be, dtype=dtype, seed=6)
        h, lengths = padded_example(be, dtype)
        pooled = pool(h, lengths)
        dh = pool.backward(B.Generator(7).normal((3, 4), be, dtype))
        assert B.dtype_name(pooled) == B.dtype_name(dh) == dtype
        out = [B.to_numpy(pooled), B.to_numpy(dh)]
        if kind == "attention":
            out += [B.to_numpy(pool.weights), B.to_numpy(pool.weight.grad)]
        results.append(out)
    tol = 1e-6 if dtype == "float32" else 1e-14
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", POOLS)
def test_bad_inputs_name_the_argument(kind):
    be = B.get_backend("numpy")
    pool = make(kind, 4, be)
    h = be.zeros((5, 3, 4), "float64")
    with pytest.raises(ValueError, match=r"h: expected a 3-D array.*got shape \(5, 4\)"):
        pool(be.zeros((5, 4), "float64"))
    with pytest.raises(ValueError, match=r"h: expected at least one time step"):
        pool(be.zeros((0, 3, 4), "float64"))
    with pytest.raises(TypeError, match="h: expected a floating-point array"):
        pool(np.zeros((5, 3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"lengths: expected values in \[1, 5\].*got min 0"):
        pool(h, [5, 0, 2])
    with pytest.raises(ValueError, match=r"lengths: expected values in \[0, 5\].*max 6"):
        pool(h, [5, 6, 2])
    with pytest.raises(ValueError, match=r"lengths: expected shape \(3,\)"):
        pool(h, [5, 2])
    with pytest.raises(RuntimeError, match="backward called before forward"):
        pool.backward(be.zeros((3, 4), "float64"))
    pool(h, [5, 1, 2])
    with pytest.raises(ValueError, match=r"dpooled: expected shape \(3, 4\).*got \(4, 3\)"):
        pool.backward(be.zeros((4, 3), "float64"))
    if kind == "attention":
        with pytest.raises(ValueError, match=r"h: expected hidden_size \(last dim\) 4"):
            pool(be.zeros((5, 3, 2), "float64"))
        with pytest.raises(TypeError, match="h: expected dtype float64.*got float32"):
            pool(be.zeros((5, 3, 4), "float32"))
        with pytest.raises(ValueError, match="hidden_size: expected a positive int"):
            AttentionPool(0)
