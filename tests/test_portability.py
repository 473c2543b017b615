"""The same code on another Array API library: every layer run on the "strict"
backend (array_api_strict on its simulated device1, which refuses NumPy
values the way CuPy does) computes what it computes on NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import scratchrnn as sr
from scratchrnn import backend as B

CELLS = ("rnn_tanh", "rnn_relu", "gru", "lstm")
TOL = {"float64": 1e-12, "float32": 1e-6}


def make(cell: str, device: str, dtype: str, seed: int, **kw):
    common = dict(dtype=dtype, device=device, generator=B.Generator(seed), **kw)
    if cell.startswith("rnn_"):
        return sr.RNN(3, 4, nonlinearity=cell[4:], **common)
    return {"gru": sr.GRU, "lstm": sr.LSTM}[cell](3, 4, **common)


def run(layer, x, h0, lengths, R, S, dropout_seed: int):
    """Forward + backward; everything that comes out, on the host."""
    is_lstm = isinstance(layer, sr.LSTM)
    layer.generator = B.Generator(dropout_seed)     # the same dropout masks on both
    layer.zero_grad()
    out, hn = layer(x, None if h0 is None else (h0 if is_lstm else h0[0]), lengths=lengths)
    dx, dh0 = layer.backward(R, S if is_lstm else S[0])
    result = {"output": out, "dx": dx}
    for i, a in enumerate(hn if is_lstm else (hn,)):
        result[f"state_n[{i}]"] = a
    for i, a in enumerate(dh0 if is_lstm else (dh0,)):
        result[f"dstate0[{i}]"] = a
    for name, p in layer.named_parameters():
        result["grad " + name] = p.grad
    return result


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("extras", ["plain", "lengths+h0"])
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True)],
                         ids=["L1uni", "L2bi"])
@pytest.mark.parametrize("cell", CELLS)
def test_strict_equals_numpy(cell, num_layers, bidirectional, extras, dtype):
    kw = dict(num_layers=num_layers, bidirectional=bidirectional, dropout=0.3)
    ref = make(cell, "numpy", dtype, seed=1, **kw)
    dev = make(cell, "strict", dtype, seed=1, **kw)
    strict = B.get_backend("strict")
    assert dev.backend.name == "array_api_strict"

    T, N, H, D = 5, 3, 4, 2 if bidirectional else 1
    rng = np.random.default_rng(2)
    n_state = 2 if cell == "lstm" else 1
    x = rng.standard_normal((T, N, 3)).astype(dtype)
    R = rng.standard_normal((T, N, D * H)).astype(dtype)
    S = tuple(rng.standard_normal((D * num_layers, N, H)).astype(dtype) for _ in range(n_state))
    h0 = lengths = None
    if extras == "lengths+h0":
        h0 = tuple(rng.uniform(-1, 1, (D * num_layers, N, H)).astype(dtype)
                   for _ in range(n_state))
        lengths = [5, 2, 4]

    def to_dev(arrays):
        return None if arrays is None else tuple(strict.asarray(a) for a in arrays)

    want = run(ref, x, h0, lengths, R, S, dropout_seed=9)
    got = run(dev, strict.asarray(x), to_dev(h0),
              None if lengths is None else strict.asarray(np.array(lengths)),
              strict.asarray(R), to_dev(S), dropout_seed=9)
    assert set(got) == set(want)
    for key, value in got.items():
        assert B.backend_of(value).name == "array_api_strict", key
        assert B.dtype_name(value) == dtype, key
        host = B.to_numpy(value)
        assert host.shape == want[key].shape, key
        scale = max(1.0, float(np.abs(want[key]).max()))
        diff = float(np.abs(host - want[key]).max())
        assert diff <= TOL[dtype] * scale, f"{key}: max |diff| {diff:.2e}"


def test_dropout_is_active_in_the_comparison():
    """The 2-layer case above really draws a dropout mask (else it proves less)."""
    layer = make("gru", "strict", "float64", seed=1, num_layers=2, dropout=0.3)
    x = B.get_backend("strict").asarray(np.ones((4, 2, 3)))
    layer(x)
    assert list(layer._drop_masks) == [0]
    mask = B.to_numpy(layer._drop_masks[0])
    assert set(np.unique(mask)) == {0.0, 1.0 / 0.7}


# --------------------------------------------------------------------------- #
# no silent mixing of libraries
# --------------------------------------------------------------------------- #


def test_strict_module_refuses_numpy_input():
    layer = make("lstm", "strict", "float64", seed=0)
    with pytest.raises(TypeError, match=r"input: expected an array on strict "
                                        r"\(array_api_strict\), got one on cpu \(numpy\)"):
        layer(np.zeros((2, 1, 3)))


def test_strict_module_refuses_numpy_states_and_gradients():
    strict = B.get_backend("strict")
    layer = make("lstm", "strict", "float64", seed=0)
    x = strict.asarray(np.zeros((2, 1, 3)))
    h = strict.asarray(np.zeros((1, 1, 4)))
    with pytest.raises(TypeError, match="h0: expected an array on strict"):
        layer(x, (np.zeros((1, 1, 4)), h))
    with pytest.raises(TypeError, match="c0: expected an array on strict"):
        layer(x, (h, np.zeros((1, 1, 4))))
    out, _ = layer(x)
    with pytest.raises(TypeError, match="d_output: expected an array on strict"):
        layer.backward(np.zeros((2, 1, 4)))
    with pytest.raises(TypeError, match="dh_n: expected an array on strict"):
        layer.backward(None, (np.zeros((1, 1, 4)), None))


def test_numpy_module_refuses_strict_input():
    layer = make("gru", "numpy", "float64", seed=0)
    with pytest.raises(TypeError, match=r"input: expected an array on cpu \(numpy\), got one "
                                        r"on strict"):
        layer(B.get_backend("strict").asarray(np.zeros((2, 1, 3))))
