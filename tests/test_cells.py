"""The single-step functions of scratchrnn.functional: shapes, gradients
(float64 central differences, random non-zero parameters, biases and states),
and the sequence layer equal to stepping the cell by hand."""

from __future__ import annotations

import numpy as np
import pytest

import scratchrnn as sr
from scratchrnn import backend as B
from scratchrnn import functional as F
from scratchrnn.gradcheck import BOUND, check_gradients

CELLS = ("rnn_tanh", "rnn_relu", "gru", "lstm")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}
SIZES = [(3, 4, 5), (1, 1, 1)]            # (batch, input, hidden); T = B = H = 1 edge case


def random_params(gen: B.Generator, G: int, I: int, H: int, be: B.Backend,
                  bias: bool = True) -> F.CellParams:
    """Random, clearly non-zero weights and biases in float64."""
    def u(shape):
        return gen.uniform(-0.8, 0.8, shape, be, "float64")
    return F.CellParams(w_ih=u((G * H, I)), w_hh=u((G * H, H)),
                        b_ih=u((G * H,)) if bias else None,
                        b_hh=u((G * H,)) if bias else None)


def step(cell: str, x, state, p):
    """One forward step of ``cell``; returns (outputs tuple, cache)."""
    if cell == "lstm":
        h, c, cache = F.lstm_step_forward(x, state[0], state[1], p)
        return (h, c), cache
    if cell == "gru":
        h, cache = F.gru_step_forward(x, state[0], p)
    else:
        h, cache = F.rnn_step_forward(x, state[0], p, nonlinearity=cell[4:])
    return (h,), cache


def step_back(cell: str, douts, cache):
    """Backward of :func:`step`; returns (dx, dstate tuple, grads)."""
    if cell == "lstm":
        dx, dh, dc, grads = F.lstm_step_backward(douts[0], douts[1], cache)
        return dx, (dh, dc), grads
    if cell == "gru":
        dx, dh, grads = F.gru_step_backward(douts[0], cache)
    else:
        dx, dh, grads = F.rnn_step_backward(douts[0], cache, nonlinearity=cell[4:])
    return dx, (dh,), grads


def relu_margin(x, h_prev, p) -> float:
    """Smallest |pre-activation| of an Elman step (ReLU's kink is at 0)."""
    a = B.to_numpy(x @ p.w_ih.T + h_prev @ p.w_hh.T)
    if p.b_ih is not None:
        a = a + B.to_numpy(p.b_ih + p.b_hh)
    return float(np.abs(a).min())


def sum_product(arrays, weights) -> float:
    total = 0.0
    for a, w in zip(arrays, weights):
        total += B.to_scalar(B.namespace(a).sum(a * w))
    return total


# --------------------------------------------------------------------------- #
# step-level gradient checks
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("sizes", SIZES, ids=["B3I4H5", "B1I1H1"])
@pytest.mark.parametrize("cell", CELLS)
def test_step_gradients(cell, sizes, bias, backend_name):
    be = B.get_backend(backend_name)
    Bn, I, H = sizes
    G = GATES[cell]
    n_state = 2 if cell == "lstm" else 1
    for seed in range(100):     # ReLU: keep pre-activations away from the kink at 0
        gen = B.Generator(seed)
        p = random_params(gen, G, I, H, be, bias)
        x = gen.normal((Bn, I), be, "float64")
        state = tuple(gen.uniform(-0.9, 0.9, (Bn, H), be, "float64") for _ in range(n_state))
        upstream = tuple(gen.normal((Bn, H), be, "float64") for _ in range(n_state))
        if cell != "rnn_relu" or relu_margin(x, state[0], p) >= 0.01:
            break
    else:
        raise AssertionError("no seed keeps the ReLU pre-activations away from 0")

    def loss() -> float:
        outs, _ = step(cell, x, state, p)
        return sum_product(outs, upstream)

    outs, cache = step(cell, x, state, p)
    for o in outs:
        assert tuple(o.shape) == (Bn, H)
    dx, dstate, grads = step_back(cell, upstream, cache)
    assert tuple(dx.shape) == (Bn, I)
    assert all(tuple(d.shape) == (Bn, H) for d in dstate)
    assert tuple(grads.w_ih.shape) == (G * H, I)
    assert tuple(grads.w_hh.shape) == (G * H, H)
    if bias:
        assert tuple(grads.b_ih.shape) == tuple(grads.b_hh.shape) == (G * H,)
    else:
        assert grads.b_ih is None and grads.b_hh is None

    wrt = {"x": x, "w_ih": p.w_ih, "w_hh": p.w_hh}
    analytic = {"x": dx, "w_ih": grads.w_ih, "w_hh": grads.w_hh}
    for name, s, ds in zip(("h_prev", "c_prev"), state, dstate):
        wrt[name], analytic[name] = s, ds
    if bias:
        wrt.update(b_ih=p.b_ih, b_hh=p.b_hh)
        analytic.update(b_ih=grads.b_ih, b_hh=grads.b_hh)
    errors = check_gradients(loss, wrt, analytic)
    assert set(errors) == set(wrt)
    worst = max(errors, key=errors.get)
    print(f"step {cell} {sizes} bias={bias} {backend_name}: worst {worst} {errors[worst]:.2e}")
    assert errors[worst] < BOUND, errors


def test_gru_bias_gradients_differ_in_the_candidate_block():
    """The reset gate scales only W_hn h + b_hn, so db_hh != db_ih in the n block."""
    be = B.get_backend("numpy")
    gen = B.Generator(0)
    p = random_params(gen, 3, 2, 3, be)
    x, h = gen.normal((4, 2), be, "float64"), gen.uniform(-0.9, 0.9, (4, 3), be, "float64")
    _, cache = F.gru_step_forward(x, h, p)
    _, _, grads = F.gru_step_backward(gen.normal((4, 3), be, "float64"), cache)
    np.testing.assert_allclose(grads.b_ih[:6], grads.b_hh[:6], rtol=0, atol=1e-15)
    assert np.abs(grads.b_ih[6:] - grads.b_hh[6:]).min() > 1e-6


def test_relu_step_zeroes_negative_preactivations():
    be = B.get_backend("numpy")
    p = F.CellParams(w_ih=np.array([[1.0], [-1.0]]), w_hh=np.zeros((2, 2)),
                     b_ih=None, b_hh=None)
    h, cache = F.rnn_step_forward(np.array([[2.0]]), be.zeros((1, 2), "float64"), p,
                                  nonlinearity="relu")
    np.testing.assert_array_equal(h, [[2.0, 0.0]])
    dx, _, grads = F.rnn_step_backward(np.array([[1.0, 1.0]]), cache, nonlinearity="relu")
    np.testing.assert_array_equal(dx, [[1.0]])            # only the active unit passes
    np.testing.assert_array_equal(grads.w_ih, [[2.0], [0.0]])


def test_sigmoid_is_stable_and_correct():
    a = np.array([-800.0, -30.0, -1.0, 0.0, 1.0, 30.0, 800.0])
    s = F.sigmoid(a)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s[1:-1], 1.0 / (1.0 + np.exp(-a[1:-1])), rtol=1e-14, atol=1e-16)
    assert s[0] == 0.0 and s[-1] == 1.0


# --------------------------------------------------------------------------- #
# the sequence layer equals stepping the cell by hand
# --------------------------------------------------------------------------- #


def make_layer(cell: str, I: int, H: int, be: B.Backend, seed: int, **kw):
    common = dict(dtype="float64", device=be, generator=B.Generator(seed), **kw)
    if cell.startswith("rnn_"):
        layer = sr.RNN(I, H, nonlinearity=cell[4:], **common)
    else:
        layer = {"gru": sr.GRU, "lstm": sr.LSTM}[cell](I, H, **common)
    gen = B.Generator(seed + 100)
    for _, prm in layer.named_parameters():     # non-zero biases, larger than init
        prm.data = gen.uniform(-0.8, 0.8, prm.shape, be, "float64")
    return layer


@pytest.mark.parametrize("sizes", [(6, 3, 2, 4), (1, 1, 1, 1)], ids=["T6B3I2H4", "T1B1I1H1"])
@pytest.mark.parametrize("cell", CELLS)
def test_layer_equals_stepping_the_cell(cell, sizes, backend_name):
    be = B.get_backend(backend_name)
    xp = be.xp
    T, Bn, I, H = sizes
    layer = make_layer(cell, I, H, be, seed=7)
    gen = B.Generator(8)
    n_state = 2 if cell == "lstm" else 1
    x = gen.normal((T, Bn, I), be, "float64")
    state0 = tuple(gen.uniform(-0.9, 0.9, (1, Bn, H), be, "float64") for _ in range(n_state))
    R = gen.normal((T, Bn, H), be, "float64")
    S = tuple(gen.normal((1, Bn, H), be, "float64") for _ in range(n_state))

    # the layer
    out, hn = layer(x, state0 if cell == "lstm" else state0[0])
    finals = hn if cell == "lstm" else (hn,)
    assert tuple(out.shape) == (T, Bn, H)
    assert all(tuple(f.shape) == (1, Bn, H) for f in finals)
    dx, dh0 = layer.backward(R, S if cell == "lstm" else S[0])
    dstate0 = dh0 if cell == "lstm" else (dh0,)
    assert tuple(dx.shape) == (T, Bn, I)
    assert all(tuple(d.shape) == (1, Bn, H) for d in dstate0)

    # by hand, one step at a time
    p = layer.cell_params(0, 0)
    state = tuple(s[0, ...] for s in state0)
    outs, caches = [], []
    for t in range(T):
        state, cache = step(cell, x[t, ...], state, p)
        outs.append(state[0])
        caches.append(cache)
    final = state
    dstate = tuple(s[0, ...] for s in S)
    dxs = [None] * T
    total = None
    for t in reversed(range(T)):
        douts = (dstate[0] + R[t, ...],) + dstate[1:]
        dxs[t], dstate, grads = step_back(cell, douts, caches[t])
        parts = (grads.w_ih, grads.w_hh, grads.b_ih, grads.b_hh)
        total = parts if total is None else tuple(a + b for a, b in zip(total, parts))

    def close(a, b, what):
        diff = float(np.abs(B.to_numpy(a) - B.to_numpy(b)).max())
        assert diff <= 1e-12, f"{what}: max |diff| {diff:.2e}"

    close(out, xp.stack(outs, axis=0), "output")
    for f, s in zip(finals, final):
        close(f[0, ...], s, "final state")
    close(dx, xp.stack(dxs, axis=0), "dx")
    for d, s in zip(dstate0, dstate):
        close(d[0, ...], s, "dstate0")
    for name, g in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), total):
        close(getattr(layer, name).grad, g, name)



# --------------------------------------------------------------------------- #
# Bad input to the steps: refused as the layers refuse it (scratchrnn.nn.checks)
# --------------------------------------------------------------------------- #
def _step_inputs(cell: str, dtype: str = "float64"):
    be = B.get_backend("numpy")
    gen = B.Generator(0)
    p = random_params(gen, GATES[cell], 3, 4, be)
    x = gen.normal((2, 3), be, "float64")
    state = tuple(gen.normal((2, 4), be, "float64") for _ in range(2 if cell == "lstm" else 1))
    return x, state, p


@pytest.mark.parametrize("cell", CELLS)
def test_steps_refuse_mixed_dtypes(cell):
    x, state, p = _step_inputs(cell)
    with pytest.raises(TypeError, match=r"x: expected dtype float64 \(the parameters' dtype\), "
                                        r"got float32"):
        step(cell, x.astype("float32"), state, p)
    with pytest.raises(TypeError, match="h_prev: expected dtype float64 .*got float32"):
        step(cell, x, (state[0].astype("float32"),) + state[1:], p)
    half = F.CellParams(p.w_ih, p.w_hh.astype("float32"), p.b_ih, p.b_hh)
    with pytest.raises(TypeError, match="params.w_hh: expected dtype float64 .*got float32"):
        step(cell, x, state, half)
    if cell == "lstm":
        with pytest.raises(TypeError, match="c_prev: expected dtype float64 .*got float32"):
            step(cell, x, (state[0], state[1].astype("float32")), p)
    # the backward side: the upstream gradient must have the forward's dtype
    _, cache = step(cell, x, state, p)
    douts = tuple(np.ones((2, 4), dtype="float32") for _ in state)
    with pytest.raises(TypeError, match=r"dh: expected dtype float64 \(the forward's dtype\), "
                                        r"got float32"):
        step_back(cell, douts, cache)


@pytest.mark.parametrize("cell", CELLS)
def test_steps_refuse_wrong_shapes_and_non_arrays(cell):
    x, state, p = _step_inputs(cell)
    with pytest.raises(ValueError, match=r"x: expected shape \(\*, 3\) \(batch, input_size\), "
                                         r"got \(2, 5\)"):
        step(cell, np.zeros((2, 5)), state, p)
    with pytest.raises(ValueError, match=r"h_prev: expected shape \(2, 4\) \(batch, H\), "
                                         r"got \(3, 4\)"):
        step(cell, x, (np.zeros((3, 4)),) + state[1:], p)
    with pytest.raises(TypeError, match="x: expected an array, got list"):
        step(cell, [[0.0, 0.0, 0.0]] * 2, state, p)
    bad = F.CellParams(p.w_ih, p.w_hh[:, :3], p.b_ih, p.b_hh)
    with pytest.raises(ValueError, match=r"params.w_hh: expected shape \(.*, 4\) \(G·H, P\)"):
        step(cell, x, state, bad)
    _, cache = step(cell, x, state, p)
    with pytest.raises(ValueError, match=r"dh: expected shape \(2, 4\) \(batch, H\), "
                                         r"got \(2, 3\)"):
        step_back(cell, tuple(np.zeros((2, 3)) for _ in state), cache)
    with pytest.raises(TypeError, match="cache: expected the StepCache"):
        step_back(cell, tuple(np.zeros((2, 4)) for _ in state), (x, state))


# --------------------------------------------------------------------------- #
# help(scratchrnn.functional) holds what it promises
# --------------------------------------------------------------------------- #
def test_functional_help_has_every_cells_equations_and_shapes():
    import pydoc

    text = pydoc.render_doc(F, renderer=pydoc.plaintext)
    for line in ("xw = x W_ih^T + b_ih", "hw = h_prev W_hh^T + b_hh", "dx      = da_x W_ih",
                 "dW_ih = da_x^T x        (G·H, I)", "dW_hh   = da_h^T h_prev    (G·H, P)",
                 "h_t = φ(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)",        # Elman
                 "tanh' = 1 - h_t²", "n = tanh(xn + r ⊙ hn)",                  # GRU
                 "da_h = [dar, daz, dan ⊙ r]", "c_t = f ⊙ c_{t-1} + i ⊙ g",    # LSTM
                 "dc = δc + δh ⊙ o ⊙ (1 - tanh²(c_t))", "∂L/∂c_{t-1} = dc ⊙ f"):
        assert line in text, line
    assert "x (B, I)   h_prev (B, P)   c_prev (B, H)" in text


def test_public_caches_and_params_document_their_fields():
    from dataclasses import fields

    from scratchrnn.cells.base import RecurrenceCache
    from scratchrnn.cells.elman import ElmanCache
    from scratchrnn.cells.gru import GRUCache
    from scratchrnn.cells.lstm import LSTMCache

    assert {"StepCache", "CellParams"} <= set(F.__all__)
    for cls in (F.StepCache, F.CellParams, RecurrenceCache, ElmanCache, GRUCache, LSTMCache):
        doc = cls.__doc__ or ""
        missing = [f.name for f in fields(cls) if f"``{f.name}``" not in doc]
        assert not missing, f"{cls.__name__}: {missing}"
        assert "(B, " in doc or "(G·H" in doc, cls.__name__             # shapes named
    # the gates the StepCache docstring lists are the cells' cache fields
    for cell, names in (("lstm", "i, f, g, o, tanh_c"), ("gru", "r, z, n, hn"),
                        ("rnn_tanh", "h")):
        x, state, p = _step_inputs(cell)
        _, cache = step(cell, x, state, p)
        assert ", ".join(f.name for f in fields(cache.recur.cell)) == names
        assert f"``{names}``" in F.StepCache.__doc__
