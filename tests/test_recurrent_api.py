"""The user-facing API of RNN / GRU / LSTM: PyTorch's constructor arguments,
shapes, parameter names, state_dict, gradient bookkeeping, padding, modes and
hidden-state gradients."""

from __future__ import annotations

import numpy as np
import pytest

import scratchrnn as sr
from scratchrnn import backend as B

LAYERS = {"rnn_tanh": sr.RNN, "gru": sr.GRU, "lstm": sr.LSTM}
GATES = {"rnn_tanh": 1, "gru": 3, "lstm": 4}


def make(kind: str, I: int = 3, H: int = 4, seed: int = 0, **kw):
    return LAYERS[kind](I, H, dtype="float64", generator=B.Generator(seed), **kw)


def states(layer, hn):
    return tuple(hn) if isinstance(layer, sr.LSTM) else (hn,)


def pack(layer, parts):
    return tuple(parts) if isinstance(layer, sr.LSTM) else parts[0]


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --------------------------------------------------------------------------- #
# constructor and shapes
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (3, True), (2, False)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_shapes(kind, num_layers, bidirectional, batch_first):
    T, N, I, H = 5, 2, 3, 4
    D = 2 if bidirectional else 1
    layer = LAYERS[kind](I, H, num_layers, bias=True, batch_first=batch_first, dropout=0.0,
                         bidirectional=bidirectional, dtype="float64")
    x = rand(N, T, I) if batch_first else rand(T, N, I)
    out, hn = layer(x)
    assert out.shape == ((N, T, D * H) if batch_first else (T, N, D * H))
    assert out.dtype == np.float64
    for s in states(layer, hn):
        assert s.shape == (D * num_layers, N, H)      # states are never batch-first
    dx, dh0 = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape
    for s in states(layer, dh0):
        assert s.shape == (D * num_layers, N, H)


def test_positional_arguments_follow_pytorch():
    rnn = sr.RNN(3, 4, 2, "relu", False, True, 0.25, True)
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.nonlinearity) == (3, 4, 2, "relu")
    assert (rnn.bias, rnn.batch_first, rnn.dropout, rnn.bidirectional) == (False, True, 0.25, True)
    lstm = sr.LSTM(3, 4, 2, False, True, 0.5, True)
    assert (lstm.bias, lstm.batch_first, lstm.dropout, lstm.bidirectional) == (False, True, 0.5,
                                                                               True)
    assert "num_layers=2" in repr(lstm) and "bidirectional=True" in repr(lstm)


def test_default_dtype_is_float32():
    layer = sr.GRU(2, 3)
    assert all(p.data.dtype == np.float32 for p in layer.parameters())
    out, hn = layer(np.zeros((2, 1, 2), dtype=np.float32))
    assert out.dtype == hn.dtype == np.float32


@pytest.mark.parametrize("kind", LAYERS)
def test_parameter_names_and_shapes(kind):
    I, H, G = 3, 5, GATES[kind]
    layer = make(kind, I, H, num_layers=2, bidirectional=True)
    names = []
    for k in range(2):
        for sfx in ("", "_reverse"):
            names += [f"{w}_l{k}{sfx}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    params = dict(layer.named_parameters())
    assert list(params) == names                     # PyTorch's order
    assert params["weight_ih_l0"].shape == (G * H, I)
    assert params["weight_ih_l1_reverse"].shape == (G * H, 2 * H)
    assert params["weight_hh_l1"].shape == (G * H, H)
    assert params["bias_ih_l0_reverse"].shape == params["bias_hh_l1"].shape == (G * H,)
    assert layer.num_parameters() == sum(int(np.prod(p.shape)) for p in params.values())
    assert params["weight_hh_l0"] is layer.weight_hh_l0
    assert list(dict(make(kind, bias=False).named_parameters())) == ["weight_ih_l0",
                                                                     "weight_hh_l0"]


def test_nested_module_parameter_names():
    class Model(sr.Module):
        def __init__(self):
            super().__init__()
            self.rnn = make("lstm")

    names = [n for n, _ in Model().named_parameters()]
    assert names[:2] == ["rnn.weight_ih_l0", "rnn.weight_hh_l0"]


# --------------------------------------------------------------------------- #
# state_dict
# --------------------------------------------------------------------------- #


def test_state_dict_round_trip():
    a = make("gru", num_layers=2, bidirectional=True, seed=1)
    b = make("gru", num_layers=2, bidirectional=True, seed=2)
    x = rand(4, 2, 3)
    assert not np.allclose(a(x)[0], b(x)[0])
    a.backward(np.ones((4, 2, 8)))
    state = a.state_dict()
    assert list(state) == [n for n, _ in a.named_parameters()]
    b.load_state_dict({k: v.tolist() for k, v in state.items()})     # any array-like
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    assert all(np.all(p.grad == 0) for p in b.parameters())          # fresh gradients
    b.weight_hh_l0.data[0, 0] += 1.0                                 # copied, not aliased
    assert a.weight_hh_l0.data[0, 0] != b.weight_hh_l0.data[0, 0]


def test_load_state_dict_converts_dtype():
    a32 = LAYERS["lstm"](3, 4, generator=B.Generator(0))
    b64 = make("lstm")
    b64.load_state_dict(a32.state_dict())
    assert b64.weight_ih_l0.data.dtype == np.float64
    np.testing.assert_array_equal(b64.weight_ih_l0.data, a32.weight_ih_l0.data)


def test_load_state_dict_shape_mismatch_names_the_key():
    layer = make("lstm", 3, 4)
    state = dict(layer.state_dict())
    state["weight_hh_l0"] = np.zeros((16, 5))
    with pytest.raises(ValueError, match=r"state_dict\['weight_hh_l0'\]: expected shape "
                                         r"\(16, 4\), got \(16, 5\)"):
        layer.load_state_dict(state)


def test_load_state_dict_refuses_values_that_overflow_the_parameter_dtype():
    """Finite float64 values past float32's range would become Inf in the cast."""
    import warnings

    layer = LAYERS["lstm"](3, 4, generator=B.Generator(0))               # float32
    before = {k: np.array(v) for k, v in layer.state_dict().items()}
    huge = {k: np.full(v.shape, 1e300) for k, v in before.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                   # no RuntimeWarning
        with pytest.raises(ValueError, match=r"state_dict\['weight_ih_l0'\]: expected values "
                                             r"that fit float32, got finite float64 values "
                                             r"that overflow it to Inf"):
            layer.load_state_dict(huge)
    assert all(np.array_equal(v, before[k]) for k, v in layer.state_dict().items())
    make("lstm", 3, 4).load_state_dict(huge)                             # float64 holds them


def test_load_state_dict_missing_and_unexpected_keys():
    layer = make("gru")
    state = dict(layer.state_dict())
    del state["bias_hh_l0"]
    with pytest.raises(KeyError, match=r"missing keys \['bias_hh_l0'\]"):
        layer.load_state_dict(state)
    state = dict(layer.state_dict(), weight_ih_l9=np.zeros(1))
    with pytest.raises(KeyError, match=r"unexpected keys \['weight_ih_l9'\]"):
        layer.load_state_dict(state)
    # strict=False loads what matches and ignores the rest
    new = np.full((12,), 0.5)
    layer.load_state_dict({"bias_hh_l0": new, "other": np.zeros(2)}, strict=False)
    np.testing.assert_array_equal(layer.bias_hh_l0.data, new)


# --------------------------------------------------------------------------- #
# gradient bookkeeping
# --------------------------------------------------------------------------- #


def test_zero_grad_and_accumulation():
    layer = make("lstm", num_layers=2, bidirectional=True)
    x, R = rand(5, 2, 3), rand(5, 2, 8, seed=1)
    layer(x)
    dx1, _ = layer.backward(R)
    once = {n: p.grad.copy() for n, p in layer.named_parameters()}
    assert all(np.abs(g).max() > 0 for g in once.values())
    with pytest.raises(RuntimeError, match="backward called twice after one forward"):
        layer.backward(R)                      # one forward, one backward (issue 11)
    layer(x)
    dx2, _ = layer.backward(R)                 # the same batch again: gradients add up
    np.testing.assert_array_equal(dx1, dx2)
    for n, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[n], rtol=1e-14, atol=0)
    x2 = rand(5, 2, 3, seed=2)                 # a different batch accumulates its own
    layer.zero_grad()
    layer(x2)
    layer.backward(R)
    other = {n: p.grad.copy() for n, p in layer.named_parameters()}
    layer.zero_grad()
    assert all(np.all(p.grad == 0) for p in layer.parameters())
    layer(x)
    layer.backward(R)
    layer(x2)
    layer.backward(R)
    for n, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, once[n] + other[n], rtol=1e-13, atol=1e-15)


def test_backward_before_forward_raises():
    for kind in LAYERS:
        with pytest.raises(RuntimeError, match="backward called before forward"):
            make(kind).backward(np.zeros((2, 1, 4)))


def test_backward_with_only_state_gradient():
    layer = make("gru")
    layer(rand(3, 2, 3))
    dx, dh0 = layer.backward(None, np.ones((1, 2, 4)))
    assert dx.shape == (3, 2, 3) and np.abs(dx).max() > 0
    layer(rand(3, 2, 3))
    dx0, dh00 = layer.backward(None, None)       # nothing upstream: all zero
    assert np.all(dx0 == 0) and np.all(dh00 == 0)


# --------------------------------------------------------------------------- #
# padding
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_outputs_past_the_end_are_exactly_zero(kind, batch_first):
    layer = make(kind, num_layers=2, bidirectional=True, batch_first=batch_first)
    lengths = [5, 1, 3, 0]
    x = rand(4, 5, 3) if batch_first else rand(5, 4, 3)
    out, hn = layer(x, lengths=np.array(lengths))
    seq_major = np.swapaxes(out, 0, 1) if batch_first else out
    for b, n in enumerate(lengths):
        assert np.all(seq_major[n:, b] == 0.0)
        assert np.all(np.abs(seq_major[:n, b]) > 0)
    for s in states(layer, hn):                     # an empty sequence keeps h0 = 0
        assert np.all(s[:, 3] == 0.0)


@pytest.mark.parametrize("kind", LAYERS)
def test_no_gradient_flows_from_padded_outputs(kind):
    layer = make(kind, num_layers=2, bidirectional=True)
    lengths = [5, 2, 4]
    x, R = rand(5, 3, 3), rand(5, 3, 8, seed=1)
    n_state = 2 if kind == "lstm" else 1
    h0 = pack(layer, [rand(4, 3, 4, seed=2 + i) for i in range(n_state)])
    layer(x, h0, lengths=lengths)
    dx, dh0 = layer.backward(R)
    ref = {n: p.grad.copy() for n, p in layer.named_parameters()}
    noisy = R.copy()
    for b, n in enumerate(lengths):
        noisy[n:, b] = 1e3 * rand(5 - n, 8, seed=10 + b)        # junk at the padding
    layer.zero_grad()
    layer(x, h0, lengths=lengths)                                # one backward per forward
    dx2, dh02 = layer.backward(noisy)
    np.testing.assert_array_equal(dx, dx2)
    for a, b in zip(states(layer, dh0), states(layer, dh02)):
        np.testing.assert_array_equal(a, b)
    for n, p in layer.named_parameters():
        np.testing.assert_array_equal(p.grad, ref[n])
    # ...while junk at a valid position does change the gradients
    noisy[0, 1] += 1.0
    layer.zero_grad()
    layer(x, h0, lengths=lengths)
    dx3, _ = layer.backward(noisy)
    assert np.abs(dx3 - dx).max() > 1e-6


def test_lengths_of_full_length_equal_no_lengths():
    layer = make("lstm", bidirectional=True)
    x = rand(4, 3, 3)
    a, (ha, ca) = layer(x)
    b, (hb, cb) = layer(x, lengths=[4, 4, 4])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ha, hb)
    np.testing.assert_array_equal(ca, cb)


# --------------------------------------------------------------------------- #
# train / eval
# --------------------------------------------------------------------------- #


def test_train_eval_dropout():
    layer = make("gru", num_layers=3, dropout=0.5)
    x = rand(6, 4, 3)
    assert layer.training
    a, _ = layer(x)
    b, _ = layer(x)
    assert np.abs(a - b).max() > 1e-6               # fresh masks every call in training
    assert layer.eval() is layer and not layer.training
    c, _ = layer(x)
    d, _ = layer(x)
    np.testing.assert_array_equal(c, d)
    plain = make("gru", num_layers=3, dropout=0.0)
    plain.load_state_dict(layer.state_dict())
    np.testing.assert_allclose(c, plain(x)[0], rtol=0, atol=1e-15)   # eval = no dropout
    layer.train()
    assert layer.training
    # a seeded generator reproduces the training-mode masks
    layer.generator = B.Generator(5)
    e, _ = layer(x)
    layer.generator = B.Generator(5)
    f, _ = layer(x)
    np.testing.assert_array_equal(e, f)


def test_dropout_is_not_applied_after_the_last_layer():
    layer = make("rnn_tanh", num_layers=1, dropout=0.9)
    x = rand(3, 2, 3)
    a, _ = layer(x)
    layer.eval()
    np.testing.assert_array_equal(a, layer(x)[0])


def test_train_eval_reach_child_modules():
    class Model(sr.Module):
        def __init__(self):
            super().__init__()
            self.rnn = make("lstm", num_layers=2, dropout=0.2)

    m = Model().eval()
    assert not m.training and not m.rnn.training
    m.train()
    assert m.rnn.training


# --------------------------------------------------------------------------- #
# ∂L/∂h_t for every step
# --------------------------------------------------------------------------- #


def test_record_hidden_grads_shapes():
    layer = make("lstm", num_layers=2, bidirectional=True)
    layer.record_hidden_grads = True
    out, _ = layer(rand(5, 3, 3), lengths=[5, 2, 4])
    layer.backward(rand(*out.shape, seed=1))
    assert set(layer.hidden_grads) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    for key, g in layer.hidden_grads.items():
        assert g.shape == (5, 3, 4), key
        assert np.all(g[2:, 1] == 0.0)               # padded steps get no gradient
        assert np.abs(g[:2, 1]).max() > 0


@pytest.mark.parametrize("kind", LAYERS)
def test_record_hidden_grads_values(kind):
    """∂L/∂h_t equals R_t plus ∂L/∂h0 of the rest of the sequence run from h_t."""
    T = 5
    layer = make(kind, num_layers=1)
    rest = make(kind, num_layers=1)
    rest.load_state_dict(layer.state_dict())
    layer.record_hidden_grads = True
    x, R = rand(T, 2, 3), rand(T, 2, 4, seed=1)
    S = [rand(1, 2, 4, seed=2 + i) for i in range(2 if kind == "lstm" else 1)]
    layer(x)
    layer.backward(R, pack(layer, S))
    g = layer.hidden_grads[(0, 0)]
    assert g.shape == (T, 2, 4)
    np.testing.assert_allclose(g[T - 1], R[T - 1] + S[0][0], rtol=0, atol=1e-14)
    for t in range(T - 1):
        _, h_t = layer.forward(x[:t + 1])              # state after step t
        rest(x[t + 1:], h_t)
        _, dh = rest.backward(R[t + 1:], pack(layer, S))
        np.testing.assert_allclose(g[t], R[t] + states(layer, dh)[0][0], rtol=0, atol=1e-13)


def test_hidden_grads_not_recorded_by_default():
    layer = make("gru")
    layer(rand(3, 1, 3))
    layer.backward(np.ones((3, 1, 4)))
    assert layer.hidden_grads == {}
