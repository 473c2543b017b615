"""Properties of the recurrent layers over random sizes and cells (hypothesis).

(a) padding is invisible: each sequence of a padded batch with ``lengths``
    gets the outputs, final state and gradients it gets when run alone;
(b) truncated BPTT is exact when nothing is truncated: two chunks with the
    state carried forward and ∂L/∂h carried back equal one whole run;
(c) the reverse direction of a bidirectional layer is a unidirectional layer
    (with the reverse weights) run on each sequence reversed in time.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchrnn as sr
from scratchrnn import backend as B

SETTINGS = settings(max_examples=25, deadline=None, database=None)
CELLS = ("rnn_tanh", "rnn_relu", "gru", "lstm")
TOL = 1e-12


def make_layer(cell: str, I: int, H: int, seed: int, **kw):
    common = dict(dtype="float64", generator=B.Generator(seed), **kw)
    if cell.startswith("rnn_"):
        layer = sr.RNN(I, H, nonlinearity=cell[4:], **common)
    else:
        layer = {"gru": sr.GRU, "lstm": sr.LSTM}[cell](I, H, **common)
    rng = np.random.default_rng(seed)
    for _, p in layer.named_parameters():
        p.data = rng.uniform(-0.8, 0.8, p.shape)
    return layer


def clone(layer):
    """A second layer with the same weights (each layer keeps one forward tape)."""
    twin = make_layer(layer.cell.name, layer.input_size, layer.hidden_size, seed=0,
                      num_layers=layer.num_layers, bidirectional=layer.bidirectional)
    twin.load_state_dict(layer.state_dict())
    return twin


def as_state(layer, parts):
    """(h,) -> h for RNN/GRU, (h, c) stays a tuple for an LSTM."""
    return tuple(parts) if isinstance(layer, sr.LSTM) else parts[0]


def as_tuple(layer, state):
    return tuple(state) if isinstance(layer, sr.LSTM) else (state,)


def grads(layer) -> dict[str, np.ndarray]:
    return {n: p.grad.copy() for n, p in layer.named_parameters()}


def assert_close(a, b, what: str, tol: float = TOL) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    diff = float(np.abs(a - b).max()) if a.size else 0.0
    assert diff <= tol, f"{what}: max |diff| {diff:.3e}"


@st.composite
def problems(draw, min_T: int = 1, cells=CELLS, bidirectional=None, max_layers: int = 2):
    cell = draw(st.sampled_from(cells))
    T = draw(st.integers(min_T, 6))
    N = draw(st.integers(1, 4))
    I, H = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    L = draw(st.integers(1, max_layers))
    bi = draw(st.booleans()) if bidirectional is None else bidirectional
    lengths = draw(st.lists(st.integers(1, T), min_size=N, max_size=N))
    seed = draw(st.integers(0, 2**31 - 1))
    layer = make_layer(cell, I, H, seed, num_layers=L, bidirectional=bi)
    rng = np.random.default_rng(seed + 1)
    D = 2 if bi else 1
    n_state = 2 if cell == "lstm" else 1
    x = rng.standard_normal((T, N, I))
    h0 = tuple(rng.uniform(-0.9, 0.9, (D * L, N, H)) for _ in range(n_state))
    R = rng.standard_normal((T, N, D * H))
    S = tuple(rng.standard_normal((D * L, N, H)) for _ in range(n_state))
    return layer, x, h0, R, S, lengths


# --------------------------------------------------------------------------- #
# (a) a padded batch = each sequence alone
# --------------------------------------------------------------------------- #


@SETTINGS
@given(problems())
def test_padded_batch_equals_each_sequence_alone(problem):
    layer, x, h0, R, S, lengths = problem
    layer.zero_grad()
    out, hn = layer(x, as_state(layer, h0), lengths=lengths)
    dx, dh0 = layer.backward(R, as_state(layer, S))     # R is non-zero at padding too
    batched = grads(layer)
    summed = {n: np.zeros_like(g) for n, g in batched.items()}
    for b, n in enumerate(lengths):
        layer.zero_grad()
        out_b, hn_b = layer(x[:n, b:b + 1], as_state(layer, [h[:, b:b + 1] for h in h0]))
        dx_b, dh0_b = layer.backward(R[:n, b:b + 1],
                                     as_state(layer, [s[:, b:b + 1] for s in S]))
        assert_close(out[:n, b:b + 1], out_b, f"output of sequence {b}")
        assert np.all(out[n:, b] == 0.0), "outputs past the end must be exactly zero"
        for f, f_b in zip(as_tuple(layer, hn), as_tuple(layer, hn_b)):
            assert_close(f[:, b:b + 1], f_b, f"final state of sequence {b}")
        assert_close(dx[:n, b:b + 1], dx_b, f"dx of sequence {b}")
        assert np.all(dx[n:, b] == 0.0), "no gradient reaches padded inputs"
        for d, d_b in zip(as_tuple(layer, dh0), as_tuple(layer, dh0_b)):
            assert_close(d[:, b:b + 1], d_b, f"dh0 of sequence {b}")
        for name, g in grads(layer).items():
            summed[name] += g
    for name, g in batched.items():
        assert_close(g, summed[name], f"{name}: batched vs sum over sequences", tol=1e-11)


# --------------------------------------------------------------------------- #
# (b) two chunks with the state carried = one whole run (truncated BPTT)
# --------------------------------------------------------------------------- #


@SETTINGS
@given(problems(min_T=2, bidirectional=False, max_layers=3), st.data())
def test_chunked_run_equals_whole_run(problem, data):
    layer, x, h0, R, S, lengths = problem
    T = x.shape[0]
    k = data.draw(st.integers(1, T - 1), label="split")
    use_lengths = data.draw(st.booleans(), label="use lengths")
    lens = np.array(lengths) if use_lengths else np.full(len(lengths), T)

    layer.zero_grad()
    out, hn = layer(x, as_state(layer, h0), lengths=lens)
    dx, dh0 = layer.backward(R, as_state(layer, S))
    whole = grads(layer)

    first, second = layer, clone(layer)
    first.zero_grad()
    lens1 = np.minimum(lens, k)
    lens2 = np.clip(lens - k, 0, T - k)           # 0 for a sequence that ended in chunk 1
    out1, h_mid = first(x[:k], as_state(layer, h0), lengths=lens1)
    out2, hn2 = second(x[k:], h_mid, lengths=lens2)
    dx2, dh_mid = second.backward(R[k:], as_state(layer, S))
    dx1, dh0_chunks = first.backward(R[:k], dh_mid)

    assert_close(np.concatenate([out1, out2]), out, "output")
    for a, b in zip(as_tuple(layer, hn2), as_tuple(layer, hn)):
        assert_close(a, b, "final state")
    assert_close(np.concatenate([dx1, dx2]), dx, "dx")
    for a, b in zip(as_tuple(layer, dh0_chunks), as_tuple(layer, dh0)):
        assert_close(a, b, "dh0")
    g1, g2 = grads(first), grads(second)
    for name, g in whole.items():
        assert_close(g1[name] + g2[name], g, name, tol=1e-11)


# --------------------------------------------------------------------------- #
# (c) the reverse direction = a forward layer on time-reversed sequences
# --------------------------------------------------------------------------- #


def reverse_each(a: np.ndarray, lengths) -> np.ndarray:
    """a[t, b] -> a[len_b - 1 - t, b] for t < len_b; padding left where it is."""
    out = a.copy()
    for b, n in enumerate(lengths):
        out[:n, b] = a[:n, b][::-1]
    return out


@SETTINGS
@given(problems(bidirectional=True, max_layers=1))
def test_reverse_direction_is_forward_on_reversed_sequences(problem):
    bi, x, h0, R, S, lengths = problem
    H = bi.hidden_size
    R = R.copy()
    R[:, :, :H] = 0.0                          # only the reverse direction gets a gradient
    S = tuple(np.concatenate([np.zeros_like(s[:1]), s[1:]]) for s in S)
    uni = make_layer(bi.cell.name, bi.input_size, H, seed=0)
    uni.load_state_dict({name: bi.state_dict()[name + "_reverse"]
                         for name in uni.state_dict()})

    bi.zero_grad()
    out, hn = bi(x, as_state(bi, h0), lengths=lengths)
    dx, dh0 = bi.backward(R, as_state(bi, S))
    out_u, hn_u = uni(reverse_each(x, lengths), as_state(uni, [h[1:] for h in h0]),
                      lengths=lengths)
    dx_u, dh0_u = uni.backward(reverse_each(R[:, :, H:], lengths),
                               as_state(uni, [s[1:] for s in S]))

    assert_close(out[:, :, H:], reverse_each(out_u, lengths), "reverse output")
    for a, b in zip(as_tuple(bi, hn), as_tuple(uni, hn_u)):
        assert_close(a[1:], b, "reverse final state")
    assert_close(dx, reverse_each(dx_u, lengths), "dx")
    for a, b in zip(as_tuple(bi, dh0), as_tuple(uni, dh0_u)):
        assert_close(a[1:], b, "reverse dh0")
        assert np.all(a[:1] == 0.0)            # the forward direction got nothing
    for name, p in uni.named_parameters():
        assert_close(bi.state_dict()[name + "_reverse"], p.data, name)
        assert_close(getattr(bi, name + "_reverse").grad, p.grad, "grad " + name, tol=1e-11)
        assert np.all(getattr(bi, name).grad == 0.0)
