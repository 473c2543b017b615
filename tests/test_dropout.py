"""Dropout: training vs eval, the mask reused by backward, the expectation,
a gradient check with a fixed mask, portability, and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.gradcheck import BOUND, check_gradients
from scratchrnn.nn import Dropout


def test_training_zeroes_and_rescales(backend_name):
    be = B.get_backend(backend_name)
    drop = Dropout(0.25, generator=B.Generator(0))
    x = B.Generator(1).uniform(1.0, 2.0, (50, 40), be, "float64")   # no zeros of its own
    y = B.to_numpy(drop(x))
    xh = B.to_numpy(x)
    dropped = y == 0.0
    assert 0.15 < dropped.mean() < 0.35
    np.testing.assert_allclose(y[~dropped], xh[~dropped] / 0.75, rtol=1e-15)


def test_eval_is_the_identity(backend_name):
    be = B.get_backend(backend_name)
    drop = Dropout(0.5, generator=B.Generator(0))
    x = B.Generator(1).normal((6, 7), be, "float32")
    drop.eval()
    assert not drop.training
    np.testing.assert_array_equal(B.to_numpy(drop(x)), B.to_numpy(x))
    dy = B.Generator(2).normal((6, 7), be, "float32")
    np.testing.assert_array_equal(B.to_numpy(drop.backward(dy)), B.to_numpy(dy))
    drop.train()
    assert (B.to_numpy(drop(x)) == 0.0).any()


def test_backward_reuses_the_forward_mask():
    be = B.get_backend("numpy")
    drop = Dropout(0.4, generator=B.Generator(3))
    x = B.Generator(4).uniform(0.5, 1.5, (30, 20), be, "float64")
    y = drop(x)
    dy = B.Generator(5).normal((30, 20), be, "float64")
    dx = drop.backward(dy)
    np.testing.assert_allclose(dx, dy * (y / x), rtol=1e-14)   # same zeros, same 1/(1-p)
    assert (dx == 0.0).sum() == (y == 0.0).sum() > 0
    np.testing.assert_array_equal(drop.backward(dy), dx)      # backward draws nothing


def test_each_forward_draws_a_new_mask_and_a_seed_fixes_it():
    be = B.get_backend("numpy")
    x = be.asarray(np.ones((40, 40)), "float64")
    drop = Dropout(0.5, generator=B.Generator(6))
    first, second = drop(x), drop(x)
    assert (first != second).any()
    again = Dropout(0.5, generator=B.Generator(6))
    np.testing.assert_array_equal(again(x), first)
    B.manual_seed(12)
    d1 = Dropout(0.5)(x)
    B.manual_seed(12)
    np.testing.assert_array_equal(Dropout(0.5)(x), d1)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_expectation_is_preserved(p):
    be = B.get_backend("numpy")
    n = 200_000
    drop = Dropout(p, generator=B.Generator(7))
    y = drop(be.asarray(np.ones(n), "float64"))
    # mean of n iid values with variance p/(1-p): 6 standard errors of slack
    assert abs(float(y.mean()) - 1.0) < 6.0 * np.sqrt(p / (1.0 - p) / n)
    assert abs(float((y == 0).mean()) - p) < 6.0 * np.sqrt(p * (1 - p) / n)


def test_gradient_with_a_fixed_mask(backend_name):
    be = B.get_backend(backend_name)
    drop = Dropout(0.3)
    gen = B.Generator(8)
    x = gen.normal((4, 3, 5), be, "float64")
    R = gen.normal((4, 3, 5), be, "float64")

    def loss() -> float:
        drop.generator = B.Generator(9)          # the same mask every call
        y = drop(x)
        return B.to_scalar(B.namespace(y).sum(y * R))

    loss()
    dx = drop.backward(R)
    assert tuple(dx.shape) == (4, 3, 5)
    errors = check_gradients(loss, {"input": x}, {"input": dx})
    assert errors["input"] < BOUND, errors


def test_p_zero_and_one():
    be = B.get_backend("numpy")
    x = B.Generator(10).normal((5, 5), be, "float64")
    np.testing.assert_array_equal(Dropout(0.0)(x), x)
    drop = Dropout(1.0)
    assert not drop(x).any()
    assert not drop.backward(x).any()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_strict_backend_equals_numpy(dtype):
    results = []
    for name in ("numpy", "strict"):
        be = B.get_backend(name)
        drop = Dropout(0.5, generator=B.Generator(11))
        x = B.Generator(12).normal((7, 3, 4), be, dtype)
        y = drop(x)
        dx = drop.backward(B.Generator(13).normal((7, 3, 4), be, dtype))
        assert B.dtype_name(y) == B.dtype_name(dx) == dtype
        results.append([B.to_numpy(y), B.to_numpy(dx)])
    for a, b in zip(*results):
        np.testing.assert_array_equal(b, a)


def test_bad_arguments_name_the_argument():
    for bad in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="p: expected a probability in"):
            Dropout(bad)
    drop = Dropout(0.5)
    with pytest.raises(TypeError, match="input: expected a floating-point array.*int64"):
        drop(np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match="input: expected an array, got list"):
        drop([1.0, 2.0])
    with pytest.raises(RuntimeError, match="backward called before forward"):
        drop.backward(np.zeros(3))
    drop(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3\).*got \(3, 2\)"):
        drop.backward(np.ones((3, 2)))


@pytest.mark.parametrize("training", [True, False])
def test_backward_checks_dy_like_every_upstream_gradient(training):
    """dy: the forward's dtype (no int, bool, float16, complex), shape and backend, and
    finite when checks are on -- in eval mode (dx = dy) too."""
    drop = Dropout(0.5, generator=B.Generator(0))
    drop.train(training)
    drop(np.ones((2, 3), dtype="float32"))
    for bad, text in [(np.ones((2, 3)), "expected dtype float32 .*got float64"),
                      (np.ones((2, 3), dtype=np.int64), "expected a floating-point array"),
                      (np.ones((2, 3), dtype=np.float16), "expected dtype float32"),
                      (np.ones((2, 3), dtype=np.complex64), "expected a floating-point array"),
                      ([[1.0] * 3] * 2, "expected an array, got list")]:
        with pytest.raises(TypeError, match="dy: " + text):
            drop.backward(bad)
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3\).*got \(3, 2\)"):
        drop.backward(np.ones((3, 2), dtype="float32"))
    nan = np.full((2, 3), np.nan, dtype="float32")
    old = B.set_check_finite(True)
    try:
        with pytest.raises(ValueError, match="dy: .*NaN"):
            drop.backward(nan)
    finally:
        B.set_check_finite(old)
    assert drop.backward(np.ones((2, 3), dtype="float32")).dtype == np.float32
