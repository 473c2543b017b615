"""Linear: gradients (float64 central differences, random non-zero bias), any
leading dims, PyTorch's values and init, portability, and errors that name
the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.gradcheck import BOUND, check_gradients
from scratchrnn.nn import Linear


def contract(y, R) -> float:
    """Σ y ⊙ R: a scalar loss whose upstream gradient is the random R."""
    return B.to_scalar(B.namespace(y).sum(y * R))


def make(I: int, O: int, be: B.Backend, bias: bool = True, seed: int = 0,
         dtype: str = "float64") -> Linear:
    layer = Linear(I, O, bias, dtype=dtype, device=be, generator=B.Generator(seed))
    gen = B.Generator(seed + 100)
    for _, p in layer.named_parameters():      # random, clearly non-zero (bias too)
        p.data = gen.uniform(-0.8, 0.8, p.shape, be, dtype)
    return layer


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("x_shape, O", [((4, 3), 5), ((2, 3, 4), 2), ((3,), 2), ((1, 1), 1)],
                         ids=["N4I3O5", "T2B3I4O2", "1d", "N1I1O1"])
def test_gradients(x_shape, O, bias, backend_name):
    be = B.get_backend(backend_name)
    layer = make(x_shape[-1], O, be, bias)
    gen = B.Generator(1)
    x = gen.normal(x_shape, be, "float64")
    R = gen.normal(x_shape[:-1] + (O,), be, "float64")

    def loss() -> float:
        return contract(layer(x), R)

    layer.zero_grad()
    y = layer(x)
    assert tuple(y.shape) == x_shape[:-1] + (O,)
    dx = layer.backward(R)
    assert tuple(dx.shape) == x_shape
    wrt = {"input": x, "weight": layer.weight.data}
    analytic = {"input": dx, "weight": layer.weight.grad}
    if bias:
        assert tuple(layer.bias.grad.shape) == (O,)
        wrt["bias"], analytic["bias"] = layer.bias.data, layer.bias.grad
    else:
        assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    errors = check_gradients(loss, wrt, analytic)
    assert max(errors.values()) < BOUND, errors


def test_gradients_accumulate_over_calls():
    be = B.get_backend("numpy")
    layer = make(3, 2, be)
    x = B.Generator(2).normal((4, 3), be, "float64")
    R = B.Generator(3).normal((4, 2), be, "float64")
    layer(x)
    layer.backward(R)
    once = (layer.weight.grad.copy(), layer.bias.grad.copy())
    layer(x)
    layer.backward(R)
    np.testing.assert_allclose(layer.weight.grad, 2 * once[0], rtol=1e-14)
    np.testing.assert_allclose(layer.bias.grad, 2 * once[1], rtol=1e-14)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


def test_leading_dims_equal_the_flattened_product():
    be = B.get_backend("numpy")
    layer = make(4, 3, be)
    x = B.Generator(4).normal((5, 2, 4), be, "float64")
    y = layer(x)
    flat = x.reshape(10, 4) @ layer.weight.data.T + layer.bias.data
    np.testing.assert_allclose(y.reshape(10, 3), flat, rtol=1e-14)


def test_default_init_is_pytorchs_uniform():
    I, O = 16, 200
    layer = Linear(I, O, generator=B.Generator(5))
    k = 1.0 / math.sqrt(I)
    w, b = B.to_numpy(layer.weight.data), B.to_numpy(layer.bias.data)
    assert w.shape == (O, I) and b.shape == (O,) and w.dtype == np.float32
    assert np.abs(w).max() <= k and np.abs(b).max() <= k
    assert np.abs(w).max() > 0.95 * k           # spans the interval, not a narrower one
    assert abs(w.mean()) < 0.05 * k and abs(w.std() - k / math.sqrt(3)) < 0.05 * k
    again = Linear(I, O, generator=B.Generator(5))
    np.testing.assert_array_equal(B.to_numpy(again.weight.data), w)
    B.manual_seed(11)
    d1 = B.to_numpy(Linear(I, O).weight.data)
    B.manual_seed(11)
    np.testing.assert_array_equal(B.to_numpy(Linear(I, O).weight.data), d1)


def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    be = B.get_backend("numpy")
    layer = make(5, 4, be)
    ref = torch.nn.Linear(5, 4).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.weight.data))
        ref.bias.copy_(torch.from_numpy(layer.bias.data))
    gen = B.Generator(6)
    x = gen.normal((3, 2, 5), be, "float64")
    dy = gen.normal((3, 2, 4), be, "float64")
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = ref(xt)
    yt.backward(torch.from_numpy(dy))
    y = layer(x)
    dx = layer.backward(dy)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.weight.grad, ref.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, ref.bias.grad.numpy(), rtol=1e-12)
    # and the state_dict moves into torch unchanged
    ref2 = torch.nn.Linear(5, 4).double()
    ref2.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    np.testing.assert_allclose(ref2(torch.from_numpy(x)).detach().numpy(), y, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_strict_backend_equals_numpy(dtype):
    results = []
    for name in ("numpy", "strict"):
        be = B.get_backend(name)
        layer = make(4, 3, be, dtype=dtype, seed=8)
        gen = B.Generator(9)
        x = gen.normal((2, 5, 4), be, dtype)
        dy = gen.normal((2, 5, 3), be, dtype)
        y = layer(x)
        dx = layer.backward(dy)
        assert B.dtype_name(y) == B.dtype_name(dx) == dtype
        results.append([B.to_numpy(a) for a in (y, dx, layer.weight.grad, layer.bias.grad)])
    tol = 1e-6 if dtype == "float32" else 1e-14
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


def test_zero_size_batch():
    be = B.get_backend("numpy")
    layer = make(3, 2, be)
    x = be.zeros((0, 3), "float64")
    y = layer(x)
    assert y.shape == (0, 2)
    assert layer.backward(be.zeros((0, 2), "float64")).shape == (0, 3)
    assert not layer.weight.grad.any()


def test_bad_inputs_name_the_argument():
    be = B.get_backend("numpy")
    layer = make(3, 2, be)
    with pytest.raises(ValueError, match=r"input: expected shape \(\.\.\., 3\).*got \(4, 5\)"):
        layer(be.zeros((4, 5), "float64"))
    with pytest.raises(TypeError, match="input: expected a floating-point array.*int64"):
        layer(np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="input: expected dtype float64.*got float32"):
        layer(be.zeros((4, 3), "float32"))
    with pytest.raises(TypeError, match="input: expected an array, got list"):
        layer([[0.0, 1.0, 2.0]])
    strict_layer = make(3, 2, B.get_backend("strict"))
    with pytest.raises(TypeError, match="input: expected an array on strict"):
        strict_layer(be.zeros((4, 3), "float64"))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(be.zeros((4, 2), "float64"))
    layer(be.zeros((4, 3), "float64"))
    with pytest.raises(ValueError, match=r"dy: expected shape \(4, 2\).*got \(4, 3\)"):
        layer.backward(be.zeros((4, 3), "float64"))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="in_features: expected a positive int"):
            Linear(bad, 2)
    with pytest.raises(ValueError, match="out_features: expected a positive int, got 0"):
        Linear(2, 0)
