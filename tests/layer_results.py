"""Shared by the tests that compare two ways of running a recurrent layer."""

from __future__ import annotations

import numpy as np

import scratchrnn as sr
from scratchrnn import backend as B

CELLS = {   # cell name -> layer constructor taking the keyword arguments
    "rnn_tanh": lambda **kw: sr.RNN(**kw),
    "rnn_relu": lambda **kw: sr.RNN(nonlinearity="relu", **kw),
    "gru": lambda **kw: sr.GRU(**kw),
    "lstm": lambda **kw: sr.LSTM(**kw),
    "lstm_proj": lambda **kw: sr.LSTM(proj_size=max(1, kw["hidden_size"] // 2), **kw),
}


def collect_results(layer, out, h_n, dx, dh0) -> dict[str, np.ndarray]:
    """Every array one forward + backward produced, by name, as host float64:
    output, final states, ∂L/∂x, ∂L/∂initial states, parameter gradients and
    (with ``record_hidden_grads``) ∂L/∂h_t per layer and direction."""
    res = {"out": out, "dx": dx}
    for j, a in enumerate(h_n if isinstance(h_n, tuple) else (h_n,)):
        res[f"h_n{j}"] = a
    for j, a in enumerate(dh0 if isinstance(dh0, tuple) else (dh0,)):
        res[f"dh0_{j}"] = a
    for name, p in layer.named_parameters():
        res["grad " + name] = p.grad
    for key, g in layer.hidden_grads.items():
        res[f"dh_t {key}"] = g
    return {k: B.to_numpy(v).astype(np.float64) for k, v in res.items()}


def assert_close(a: dict, b: dict, rtol: float, atol: float) -> None:
    """Every array of ``b`` within ``rtol`` and ``atol · max(1, max|a|)`` of ``a``'s."""
    assert a.keys() == b.keys()
    for key in a:
        scale = max(1.0, float(np.abs(a[key]).max(initial=0.0)))
        np.testing.assert_allclose(b[key], a[key], rtol=rtol, atol=atol * scale, err_msg=key)


ULP = {"float64": np.finfo(np.float64).eps, "float32": np.finfo(np.float32).eps}


def assert_same(a: dict, b: dict, dtype: str) -> None:
    """Outputs and final states bit-for-bit; gradients within 64 ulp of the largest entry."""
    keys = [k for k in a if not k.startswith("_")]
    assert keys == [k for k in b if not k.startswith("_")]
    for k in keys:
        if k == "out" or k.startswith("h_n"):
            assert np.array_equal(a[k], b[k]), f"{k}: max diff {np.abs(a[k] - b[k]).max()}"
        else:
            bound = 64 * ULP[dtype] * max(1.0, float(np.abs(a[k]).max(initial=0.0)))
            diff = float(np.abs(a[k] - b[k]).max(initial=0.0))
            assert diff <= bound, f"{k}: max diff {diff:.3g} > {bound:.3g}"
