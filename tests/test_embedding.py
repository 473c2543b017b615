"""Embedding and one_hot: gradients with repeated ids and padding_idx, PyTorch's
values, input conversion, portability, and errors that name the argument."""

from __future__ import annotations

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.gradcheck import BOUND, check_gradients, numerical_gradient, relative_error
from scratchrnn.nn import Embedding, one_hot

# (T, B) ids over V = 6 with repeats (1 three times, 4 twice) and the pad id 0 twice
IDS = [[1, 4, 0], [3, 1, 2], [1, 0, 5], [4, 2, 3]]


def contract(y, R) -> float:
    return B.to_scalar(B.namespace(y).sum(y * R))


def make(V: int, E: int, be: B.Backend, padding_idx=None, dtype: str = "float64",
         seed: int = 0) -> Embedding:
    return Embedding(V, E, padding_idx, dtype=dtype, device=be, generator=B.Generator(seed))


@pytest.mark.parametrize("case", ["T4B3V6E5", "1d", "V1E1"])
def test_gradients_with_repeated_ids(case, backend_name):
    be = B.get_backend(backend_name)
    if case == "T4B3V6E5":
        V, E, ids = 6, 5, IDS
    elif case == "1d":
        V, E, ids = 4, 3, [2, 2, 0, 2]
    else:
        V, E, ids = 1, 1, [[0]]
    emb = make(V, E, be)
    idx = be.asarray(np.array(ids))
    R = B.Generator(1).normal(tuple(idx.shape) + (E,), be, "float64")

    def loss() -> float:
        return contract(emb(idx), R)

    y = emb(idx)
    assert tuple(y.shape) == tuple(idx.shape) + (E,)
    assert emb.backward(R) is None
    assert tuple(emb.weight.grad.shape) == (V, E)
    errors = check_gradients(loss, {"weight": emb.weight.data}, {"weight": emb.weight.grad})
    assert errors["weight"] < BOUND, errors


def test_repeated_ids_accumulate():
    """Token 1 appears three times: its gradient row is the sum of the three."""
    be = B.get_backend("numpy")
    emb = make(6, 5, be)
    idx = np.array(IDS)
    R = B.Generator(2).normal((4, 3, 5), be, "float64")
    emb(idx)
    emb.backward(R)
    np.testing.assert_allclose(emb.weight.grad[1], R[0, 0] + R[1, 1] + R[2, 0], rtol=1e-14)
    np.testing.assert_allclose(emb.weight.grad[4], R[0, 1] + R[3, 0], rtol=1e-14)
    assert emb.weight.grad[1].any()


def test_padding_row_is_zero_and_gets_no_gradient(backend_name):
    """PyTorch's rule: the pad row starts at 0 and its gradient is 0, although the
    finite difference of the loss with respect to it is not (the row is used)."""
    be = B.get_backend(backend_name)
    emb = make(6, 5, be, padding_idx=0)
    assert not B.to_numpy(emb.weight.data)[0].any()
    emb.weight.data = B.Generator(3).normal((6, 5), be, "float64")   # a used, non-zero row
    idx = be.asarray(np.array(IDS))
    R = B.Generator(4).normal((4, 3, 5), be, "float64")

    def loss() -> float:
        return contract(emb(idx), R)

    emb(idx)
    emb.backward(R)
    analytic = B.to_numpy(emb.weight.grad)
    numeric = B.to_numpy(numerical_gradient(loss, emb.weight.data))
    assert not analytic[0].any()
    assert np.abs(numeric[0]).max() > 0.1
    assert relative_error(analytic[1:], numeric[1:]) < BOUND


def test_negative_padding_idx_means_the_last_row():
    emb = make(5, 3, B.get_backend("numpy"), padding_idx=-1)
    assert emb.padding_idx == 4
    assert not emb.weight.data[4].any() and emb.weight.data[:4].all()


def test_matches_pytorch_with_padding_idx():
    torch = pytest.importorskip("torch")
    be = B.get_backend("numpy")
    emb = make(6, 5, be, padding_idx=0, seed=5)
    emb.weight.data[0] = 0.75          # a non-zero pad row: lookups still return it
    ref = torch.nn.Embedding(6, 5, padding_idx=0).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(emb.weight.data))
    idx = np.array(IDS)
    dy = B.Generator(6).normal((4, 3, 5), be, "float64")
    out = ref(torch.from_numpy(idx))
    out.backward(torch.from_numpy(dy))
    y = emb(idx)
    emb.backward(dy)
    np.testing.assert_array_equal(y, out.detach().numpy())
    np.testing.assert_allclose(emb.weight.grad, ref.weight.grad.numpy(), rtol=1e-14, atol=0)


def test_init_is_standard_normal():
    emb = Embedding(400, 50, generator=B.Generator(7))
    w = B.to_numpy(emb.weight.data)
    assert w.shape == (400, 50) and w.dtype == np.float32
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1.0) < 0.02


def test_accepts_lists_and_numpy_ids_on_any_backend(backend_name):
    be = B.get_backend(backend_name)
    emb = make(6, 3, be)
    from_backend = B.to_numpy(emb(be.asarray(np.array(IDS))))
    np.testing.assert_array_equal(B.to_numpy(emb(IDS)), from_backend)
    np.testing.assert_array_equal(B.to_numpy(emb(np.array(IDS, dtype=np.int32))),
                                  from_backend)
    np.testing.assert_array_equal(from_backend[2, 0], B.to_numpy(emb.weight.data)[1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_strict_backend_equals_numpy(dtype):
    results = []
    for name in ("numpy", "strict"):
        be = B.get_backend(name)
        emb = make(6, 4, be, padding_idx=2, dtype=dtype, seed=9)
        dy = B.Generator(10).normal((4, 3, 4), be, dtype)
        y = emb(be.asarray(np.array(IDS)))
        emb.backward(dy)
        assert B.dtype_name(y) == B.dtype_name(emb.weight.grad) == dtype
        results.append([B.to_numpy(y), B.to_numpy(emb.weight.grad)])
    tol = 1e-6 if dtype == "float32" else 1e-14
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


def test_bad_inputs_name_the_argument():
    be = B.get_backend("numpy")
    emb = make(10, 3, be)
    with pytest.raises(TypeError, match="input: expected an integer array.*float64"):
        emb(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="input: expected an integer array.*bool"):
        emb(np.array([True, False]))
    with pytest.raises(ValueError, match=r"input: .*in \[0, 10\), got 12"):
        emb([[1, 12], [3, 4]])
    with pytest.raises(ValueError, match=r"input: .*in \[0, 10\), got -1"):
        emb([0, -1])
    with pytest.raises(RuntimeError, match="backward called before forward"):
        emb.backward(be.zeros((2, 3), "float64"))
    emb([1, 2])
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3\).*got \(3, 2\)"):
        emb.backward(be.zeros((3, 2), "float64"))
    with pytest.raises(ValueError, match=r"padding_idx: expected an int in \[-10, 9\].*got 10"):
        Embedding(10, 3, padding_idx=10)
    with pytest.raises(ValueError, match="embedding_dim: expected a positive int, got 0"):
        Embedding(10, 0)


def test_one_hot(backend_name):
    be = B.get_backend(backend_name)
    idx = be.asarray(np.array(IDS))
    oh = one_hot(idx, 6, dtype="float64")
    assert tuple(oh.shape) == (4, 3, 6) and B.dtype_name(oh) == "float64"
    np.testing.assert_array_equal(B.to_numpy(oh), np.eye(6)[np.array(IDS)])
    assert B.backend_of(oh).name == be.name
    on_be = one_hot([0, 2], 3, backend=be)
    assert B.backend_of(on_be).name == be.name and B.dtype_name(on_be) == "float32"
    np.testing.assert_array_equal(B.to_numpy(on_be), [[1, 0, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match=r"idx: .*in \[0, 3\), got 3"):
        one_hot([0, 3], 3)
    with pytest.raises(TypeError, match="idx: expected an integer array"):
        one_hot([0.0, 1.0], 3)
    with pytest.raises(ValueError, match="num_classes: expected a positive int"):
        one_hot([0], 0)
