"""Gradient clipping: global norm, value, and non-finite norms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.nn.module import Parameter
from scratchrnn.training import SGD, clip_grad_norm_, clip_grad_value_, grad_norm


def params(be, grads):
    ps = []
    for g in grads:
        p = Parameter(be.asarray(np.zeros_like(np.asarray(g, dtype="float64")), dtype="float64"))
        p.grad = be.asarray(np.asarray(g, dtype="float64"), dtype="float64")
        ps.append(p)
    return ps


def test_norm_is_global_and_returned_before_clipping(backend_name):
    be = B.get_backend(backend_name)
    ps = params(be, [[3.0, 0.0], [[4.0]]])                   # ‖g‖ = 5
    assert grad_norm(ps) == pytest.approx(5.0)
    assert clip_grad_norm_(ps, 1.0) == pytest.approx(5.0)
    assert grad_norm(ps) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(B.to_numpy(ps[0].grad), [0.6, 0.0], rtol=1e-5)


def test_below_max_norm_untouched():
    be = B.get_backend("numpy")
    ps = params(be, [[0.3, 0.4]])
    assert clip_grad_norm_(ps, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(B.to_numpy(ps[0].grad), [0.3, 0.4])


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    gs = [rng.standard_normal((5, 3)), rng.standard_normal(7)]
    ps = params(B.get_backend("numpy"), gs)
    ts = [torch.zeros(g.shape, dtype=torch.float64) for g in gs]
    for t, g in zip(ts, gs):
        t.grad = torch.tensor(g)
    n_ours = clip_grad_norm_(ps, 0.5)
    n_torch = float(torch.nn.utils.clip_grad_norm_(ts, 0.5))
    assert n_ours == pytest.approx(n_torch, rel=1e-12)
    for p, t in zip(ps, ts):
        np.testing.assert_allclose(B.to_numpy(p.grad), t.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_nonfinite_norm_never_writes_nan_weights(bad):
    be = B.get_backend("numpy")
    ps = params(be, [[1.0, bad], [2.0]])
    norm = clip_grad_norm_(ps, 1.0)
    assert not math.isfinite(norm)
    SGD(ps, lr=0.1).step()
    for p in ps:
        assert np.all(np.isfinite(B.to_numpy(p.data)))
    ps = params(be, [[1.0, bad]])
    with pytest.raises(FloatingPointError, match="gradient norm is"):
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)


def test_clip_value(backend_name):
    be = B.get_backend(backend_name)
    ps = params(be, [[-3.0, 0.2, 5.0]])
    clip_grad_value_(ps, 1.0)
    np.testing.assert_array_equal(B.to_numpy(ps[0].grad), [-1.0, 0.2, 1.0])


def test_bad_arguments():
    ps = params(B.get_backend("numpy"), [[1.0]])
    with pytest.raises(ValueError, match="max_norm: expected a number > 0, got 0"):
        clip_grad_norm_(ps, 0)
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value_(ps, -1)
    with pytest.raises(TypeError, match="params: expected Parameters"):
        clip_grad_norm_([1.0], 1.0)
