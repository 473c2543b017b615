"""scratchrnn.study against independent computations, on every backend, in float64.

* Jacobians through time against central finite differences of the layer's
  own forward, restarted from a perturbed state;
* RTRL against the layer's BPTT (``layer.backward``), relative 1e-10;
* BPTT(k): k ≥ T is the full gradient (the same array; equal to the layer's
  BPTT to 1e-12), k < T equals a brute-force sum of short BPTT runs;
* chunked TBPTT (the layer run chunk by chunk) equals RTRL with its
  sensitivity reset at the chunk boundaries;
* bad input gets an error naming the argument.
"""

from __future__ import annotations

import numpy as np
import pytest

import scratchrnn as sr
from scratchrnn import backend as B
from scratchrnn import study

CELLS = ("rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_proj")


def make(cell: str, device: str = "numpy", seed: int = 1, **kw):
    common = dict(dtype="float64", device=device, generator=B.Generator(seed), **kw)
    if cell.startswith("rnn_"):
        return sr.RNN(3, 4, nonlinearity=cell[4:], **common)
    if cell == "gru":
        return sr.GRU(3, 4, **common)
    if cell == "lstm":
        return sr.LSTM(3, 4, **common)
    return sr.LSTM(3, 5, proj_size=2, **common)


def inputs(layer, T: int, N: int, seed: int = 2, h0: bool = True):
    """x (T, N, I), d_output (T, N, P) and h0 as the layer takes it, on its backend."""
    rng = np.random.default_rng(seed)
    be = layer.backend
    x = be.asarray(rng.standard_normal((T, N, layer.input_size)))
    d = be.asarray(rng.standard_normal((T, N, layer.output_size)))
    state = None
    if h0:
        h = be.asarray(0.5 * rng.standard_normal((1, N, layer.output_size)))
        state = (h, be.asarray(0.5 * rng.standard_normal((1, N, layer.hidden_size)))) \
            if isinstance(layer, sr.LSTM) else h
    return x, d, state


def bptt(layer, x, d, h0=None, lengths=None) -> dict[str, np.ndarray]:
    layer.zero_grad()
    layer(x, h0, lengths=lengths)
    layer.backward(d)
    return {n: B.to_numpy(p.grad) for n, p in layer.named_parameters()}


def rel(a: dict, b: dict) -> float:
    """max over parameters of max |a − b| / max |b|."""
    return max(float(np.abs(B.to_numpy(a[n]) - B.to_numpy(b[n])).max()
                     / np.abs(B.to_numpy(b[n])).max()) for n in b)


def final_state(layer, x, h0) -> np.ndarray:
    """The state after the last step of x, as one host vector per sequence (N, S)."""
    _, hn = layer(x, h0)
    parts = hn if isinstance(layer, sr.LSTM) else (hn,)
    return np.concatenate([B.to_numpy(p)[0] for p in parts], axis=1)


def split_state(layer, s: np.ndarray):
    """(N, S) host vector -> h0 as the layer takes it, on its backend."""
    be, P = layer.backend, layer.output_size
    h = be.asarray(s[None, :, :P])
    return (h, be.asarray(s[None, :, P:])) if isinstance(layer, sr.LSTM) else h


# --------------------------------------------------------------------------- #
# Jacobians through time
# --------------------------------------------------------------------------- #
def fd_jacobian(layer, x, s_s: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """∂s_t/∂s_s by the four-point stencil: run x (the steps s+1..t) from s_s ± ε e_j."""
    N, S = s_s.shape
    D = np.zeros((N, S, S))
    for j in range(S):
        vals = []
        for step in (2.0, 1.0, -1.0, -2.0):
            s = s_s.copy()
            s[:, j] += step * eps
            vals.append(final_state(layer, x, split_state(layer, s)))
        f2, f1, fm1, fm2 = vals
        D[:, :, j] = (-f2 + 8.0 * f1 - 8.0 * fm1 + fm2) / (12.0 * eps)
    return D


@pytest.mark.parametrize("cell", ("rnn_tanh", "gru", "lstm", "lstm_proj"))
def test_jacobians_equal_finite_differences(cell, backend_name):
    layer = make(cell, backend_name)
    T, N = 5, 2
    x, _, h0 = inputs(layer, T, N)
    D = B.to_numpy(study.jacobians(layer, x, h0))                     # (T, T, N, S, S)
    S = layer.output_size + (layer.hidden_size if isinstance(layer, sr.LSTM) else 0)
    assert D.shape == (T, T, N, S, S)
    for s in range(T):
        s_s = final_state(layer, x[:s + 1, ...], h0)
        np.testing.assert_array_equal(D[s, s], np.broadcast_to(np.eye(S), (N, S, S)))
        for t in range(s + 1, T):
            fd = fd_jacobian(layer, x[s + 1:t + 1, ...], s_s)
            assert np.abs(D[t, s] - fd).max() <= 1e-8 * max(1.0, np.abs(fd).max()), (t, s)
        for t in range(s):
            assert not D[t, s].any()                                  # causal: s > t is 0


def test_jacobians_of_padded_steps_are_identity():
    layer = make("gru")
    x, _, h0 = inputs(layer, 5, 2)
    D = B.to_numpy(study.jacobians(layer, x, h0, lengths=np.array([5, 2])))
    J = B.to_numpy(study.step_jacobians(layer, x, h0, lengths=np.array([5, 2])))
    for t in range(2, 5):
        np.testing.assert_array_equal(J[t, 1], np.eye(4))
        np.testing.assert_array_equal(D[t, 1, 1], np.eye(4))        # frozen past length 2
    full = B.to_numpy(study.jacobians(layer, x, h0))
    np.testing.assert_allclose(D[:, :, 0], full[:, :, 0], rtol=0, atol=1e-15)


def test_one_sequence_and_batch_first():
    layer = make("lstm")
    x, _, _ = inputs(layer, 4, 1, h0=False)
    D = B.to_numpy(study.jacobians(layer, x))
    D1 = B.to_numpy(study.jacobians(layer, x[:, 0, :]))              # one sequence (T, I)
    assert D1.shape == (4, 4, 8, 8)
    np.testing.assert_array_equal(D1, D[:, :, 0])
    bf = make("lstm", batch_first=True)
    np.testing.assert_array_equal(B.to_numpy(study.jacobians(bf, np.swapaxes(x, 0, 1))), D)


@pytest.mark.parametrize("cell", ("rnn_relu", "lstm"))
def test_jacobian_norms_are_spectral_norms_of_jacobians(cell, backend_name):
    layer = make(cell, backend_name)
    x, _, h0 = inputs(layer, 5, 3)
    D = B.to_numpy(study.jacobians(layer, x, h0))
    want = np.linalg.norm(D, ord=2, axis=(-2, -1))                   # (T, T, N)
    per_seq = B.to_numpy(study.jacobian_norms(layer, x, h0, reduce=None))
    assert per_seq.shape == (5, 5, 3)
    np.testing.assert_allclose(per_seq, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(B.to_numpy(study.jacobian_norms(layer, x, h0)),
                               want.mean(axis=2), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(B.to_numpy(study.jacobian_norms(layer, x, h0, reduce="max")),
                               want.max(axis=2), rtol=1e-12, atol=1e-14)
    mean = want.mean(axis=2)
    by_d = B.to_numpy(study.by_distance(B.backend_of(x).asarray(mean)))
    for d in range(5):
        diag = np.array([mean[t, t - d] for t in range(d, 5)])
        want_d = 0.0 if (diag <= 0).any() else np.exp(np.log(diag).mean())
        np.testing.assert_allclose(by_d[d], want_d, rtol=1e-12)
    assert by_d[0] == pytest.approx(1.0)                             # ∂s_t/∂s_t = I


# --------------------------------------------------------------------------- #
# RTRL equals BPTT
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("extras", ["plain", "h0+lengths"])
@pytest.mark.parametrize("cell", CELLS)
def test_rtrl_equals_bptt(cell, extras, backend_name):
    layer = make(cell, backend_name)
    x, d, h0 = inputs(layer, 6, 3, h0=extras != "plain")
    lengths = np.array([6, 2, 0]) if extras != "plain" else None
    grads = study.rtrl_gradients(layer, x, d, h0=h0, lengths=lengths)
    want = bptt(layer, x, d, h0, lengths)
    assert list(grads) == list(want)
    for n, g in grads.items():
        assert B.backend_of(g).name == layer.backend.name
        assert tuple(g.shape) == want[n].shape
    assert rel(grads, want) < 1e-10


def test_rtrl_batch_first_and_no_bias():
    layer = make("gru", batch_first=True, bias=False)
    x, d, h0 = inputs(layer, 5, 2)
    x, d = np.swapaxes(x, 0, 1), np.swapaxes(d, 0, 1)               # (B, T, ·)
    grads = study.rtrl_gradients(layer, x, d, h0=h0, lengths=np.array([3, 5]))
    assert sorted(grads) == ["weight_hh_l0", "weight_ih_l0"]
    assert rel(grads, bptt(layer, x, d, h0, np.array([3, 5]))) < 1e-10


def test_rtrl_leaves_the_layer_alone():
    layer = make("lstm")
    x, d, h0 = inputs(layer, 4, 2)
    before = bptt(layer, x, d, h0)
    study.rtrl_gradients(layer, x, d, h0=h0)
    for n, p in layer.named_parameters():
        np.testing.assert_array_equal(p.grad, before[n])


def test_cost_table_counts_what_each_method_holds():
    rows = study.rtrl_vs_bptt_cost([(6, 3), (12, 3)], cell="lstm")
    # |θ| = 4·3·(2 + 3 + 2): four gates of 3 units, input 2, two biases
    assert [(r.T, r.H, r.state, r.params) for r in rows] == [(6, 3, 6, 84), (12, 3, 6, 84)]
    for r in rows:
        assert r.rtrl_held_bytes == 8 * r.state * r.params         # B·S·|θ| float64 values
        assert r.rtrl_seconds > 0 and r.bptt_seconds > 0
        assert r.rtrl_peak_bytes > 0 and r.bptt_peak_bytes > 0
    assert rows[1].bptt_held_bytes == 2 * rows[0].bptt_held_bytes   # the tape grows with T
    assert rows[1].rtrl_held_bytes == rows[0].rtrl_held_bytes       # P_t does not
    table = study.cost_table(rows)
    assert table.splitlines()[0].split()[:3] == ["cell", "T", "H"] and len(table.splitlines()) == 3


# --------------------------------------------------------------------------- #
# Truncation
# --------------------------------------------------------------------------- #
def brute_force_truncated(layer, x, d, h0, k: int) -> dict[str, np.ndarray]:
    """Σ_t of the gradient of d_t · h_t through the last k steps only: the layer run
    from the exact state s_{t-k} (a constant) over x_{t-k+1..t}, its BPTT summed."""
    T = x.shape[0]
    total = None
    for t in range(T):
        lo = max(0, t - k + 1)
        start = h0 if lo == 0 else layer(x[:lo, ...], h0)[1]
        dt = np.zeros((t + 1 - lo,) + tuple(d.shape[1:]))
        dt[-1] = B.to_numpy(d[t, ...])
        g = bptt(layer, x[lo:t + 1, ...], layer.backend.asarray(dt), start)
        total = g if total is None else {n: total[n] + g[n] for n in g}
    return total


@pytest.mark.parametrize("cell", ("rnn_tanh", "gru", "lstm", "lstm_proj"))
def test_truncation_bias(cell, backend_name):
    layer = make(cell, backend_name)
    T = 6
    x, d, h0 = inputs(layer, T, 2)
    res = study.truncation_bias(layer, x, d, [1, 2, 4, T, T + 3], h0=h0)
    assert res.ks == [1, 2, 4, T, T + 3]
    assert rel(res.full, bptt(layer, x, d, h0)) < 1e-12
    for k in (T, T + 3):
        for n, g in res.full.items():
            np.testing.assert_array_equal(B.to_numpy(res.gradients[k][n]), B.to_numpy(g))
    assert res.rel_error[3:] == [0.0, 0.0]
    assert res.cosine[3] == pytest.approx(1.0, abs=1e-14)
    for i, k in enumerate((1, 2, 4)):
        assert rel(res.gradients[k], brute_force_truncated(layer, x, d, h0, k)) < 1e-12
        g = np.concatenate([B.to_numpy(v).ravel() for v in res.gradients[k].values()])
        f = np.concatenate([B.to_numpy(v).ravel() for v in res.full.values()])
        assert res.rel_error[i] == pytest.approx(np.linalg.norm(g - f) / np.linalg.norm(f))
        assert res.cosine[i] == pytest.approx(g @ f / np.linalg.norm(g) / np.linalg.norm(f))
        assert res.rel_error[i] > 1e-6                               # it is biased
    assert len(res.by_distance) == T
    assert sum(res.by_distance) >= np.linalg.norm(f) * (1 - 1e-12)   # ‖Σ_d C[d]‖ ≤ Σ_d ‖C[d]‖


def test_truncation_with_lengths_full_equals_bptt():
    layer = make("lstm")
    x, d, h0 = inputs(layer, 6, 3)
    lengths = np.array([6, 3, 1])
    res = study.truncation_bias(layer, x, d, [2, 6], h0=h0, lengths=lengths)
    assert rel(res.full, bptt(layer, x, d, h0, lengths)) < 1e-12
    assert res.rel_error[1] == 0.0


@pytest.mark.parametrize("cell", ("rnn_tanh", "lstm"))
def test_chunked_gradient_is_rtrl_reset_at_chunk_starts(cell, backend_name):
    layer = make(cell, backend_name)
    x, d, h0 = inputs(layer, 7, 2)
    for chunk in (1, 3):
        got = study.chunked_gradient(layer, x, d, chunk, h0=h0)
        want = study.rtrl_gradients(layer, x, d, h0=h0, reset_every=chunk)
        assert rel(got, want) < 1e-10
    assert rel(study.chunked_gradient(layer, x, d, 7, h0=h0), bptt(layer, x, d, h0)) < 1e-12
    # chunk 1 keeps each step's immediate effect only: BPTT(1)
    res = study.truncation_bias(layer, x, d, [1], h0=h0)
    assert rel(study.chunked_gradient(layer, x, d, 1, h0=h0), res.gradients[1]) < 1e-10


def test_chunked_gradient_restores_grads():
    layer = make("rnn_tanh")
    x, d, h0 = inputs(layer, 5, 2)
    before = bptt(layer, x, d, h0)
    study.chunked_gradient(layer, x, d, 2, h0=h0)
    for n, p in layer.named_parameters():
        np.testing.assert_array_equal(p.grad, before[n])


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #
def all_tools(layer, x, d):
    return [lambda: study.jacobians(layer, x), lambda: study.jacobian_norms(layer, x),
            lambda: study.step_jacobians(layer, x), lambda: study.rtrl_gradients(layer, x, d),
            lambda: study.truncation_bias(layer, x, d, [1]),
            lambda: study.chunked_gradient(layer, x, d, 2)]


@pytest.mark.parametrize("kw, word", [({"num_layers": 2}, "num_layers=2"),
                                      ({"bidirectional": True}, "bidirectional=True")])
def test_refuses_stacked_and_bidirectional_layers(kw, word):
    layer = make("gru", **kw)
    x, _, _ = inputs(layer, 3, 1, h0=False)
    d = np.zeros((3, 1, layer.hidden_size * layer.num_directions))
    for call in all_tools(layer, x, d):
        with pytest.raises(ValueError, match=word):
            call()


def test_refuses_what_is_not_a_layer():
    with pytest.raises(TypeError, match="layer: expected a scratchrnn RNN, GRU or LSTM"):
        study.jacobians(sr.Linear(3, 4), np.zeros((2, 1, 3)))


def test_memory_limit_names_the_memory_and_how_to_raise_it():
    layer = make("lstm")
    x, d, _ = inputs(layer, 30, 4, h0=False)
    need = 30 * 30 * 4 * 8 * 8 * 8
    with pytest.raises(MemoryError, match=f"would hold .*{need:,}.*max_bytes=100,000.*"
                       f"pass max_bytes={need:,}"):
        study.jacobians(layer, x, max_bytes=100_000)
    assert study.jacobians(layer, x, max_bytes=need).shape == (30, 30, 4, 8, 8)
    for call in (lambda: study.jacobian_norms(layer, x, max_bytes=1000),
                 lambda: study.rtrl_gradients(layer, x, d, max_bytes=1000),
                 lambda: study.truncation_bias(layer, x, d, [1], max_bytes=1000)):
        with pytest.raises(MemoryError, match="max_bytes=1,000"):
            call()


def test_wrong_shapes_and_values():
    layer = make("rnn_tanh")
    x, d, _ = inputs(layer, 4, 2, h0=False)
    with pytest.raises(ValueError, match="input: expected input_size"):
        study.jacobians(layer, np.zeros((4, 2, 5)))
    with pytest.raises(ValueError, match=r"h0: .*\(1, 2, 4\)"):
        study.jacobians(layer, x, np.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match=r"d_output: .*\(4, 2, 4\)"):
        study.rtrl_gradients(layer, x, d[:3])
    with pytest.raises(TypeError, match="d_output: expected dtype float64"):
        study.truncation_bias(layer, x, d.astype("float32"), [1])
    with pytest.raises(ValueError, match=r"lengths: expected values in \[0, 4\]"):
        study.rtrl_gradients(layer, x, d, lengths=np.array([5, 1]))
    with pytest.raises(ValueError, match="ks: expected positive ints .* got 0"):
        study.truncation_bias(layer, x, d, [1, 0])
    with pytest.raises(ValueError, match="reduce: expected 'mean', 'max' or None, got 'sum'"):
        study.jacobian_norms(layer, x, reduce="sum")
    with pytest.raises(ValueError, match="reset_every: expected a positive int"):
        study.rtrl_gradients(layer, x, d, reset_every=0)
    with pytest.raises(ValueError, match="chunk: expected a positive int, got 0"):
        study.chunked_gradient(layer, x, d, 0)
