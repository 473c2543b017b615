"""Bad input gets an exception of the right type whose message names the
argument and shows what was expected and what came."""

from __future__ import annotations

import re

import numpy as np
import pytest

import scratchrnn as sr
from scratchrnn import backend as B


def gru(**kw):
    return sr.GRU(3, 4, dtype="float64", **kw)


def lstm(**kw):
    return sr.LSTM(3, 4, dtype="float64", **kw)


X = np.zeros((5, 2, 3))                         # (T, B, I) = (5, 2, 3)


def esc(text: str) -> str:
    return re.escape(text)


# --------------------------------------------------------------------------- #
# the input sequence
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("shape", [(5, 3), (5, 2, 3, 1), (3,)])
def test_wrong_rank(shape):
    with pytest.raises(ValueError, match=esc("input: expected a 3-D array (seq_len, batch, "
                                             f"input_size), got shape {shape}")):
        gru()(np.zeros(shape))


def test_wrong_rank_batch_first_names_that_order():
    with pytest.raises(ValueError, match=esc("input: expected a 3-D array (batch, seq_len, "
                                             "input_size), got shape (2, 3)")):
        gru(batch_first=True)(np.zeros((2, 3)))


def test_wrong_feature_size():
    with pytest.raises(ValueError, match=esc("input: expected input_size (last dim) 3, got "
                                             "shape (5, 2, 7)")):
        lstm()(np.zeros((5, 2, 7)))


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8"])
def test_integer_tokens_point_to_embedding(dtype):
    with pytest.raises(TypeError, match=f"input: expected a floating-point array \\(float64\\), "
                                        f"got dtype {dtype} .*Embedding"):
        gru()(np.zeros((5, 2, 3), dtype=dtype))


def test_boolean_input():
    with pytest.raises(TypeError, match="input: expected a floating-point array .*got dtype bool"):
        gru()(np.zeros((5, 2, 3), dtype=bool))


def test_wrong_float_dtype():
    with pytest.raises(TypeError, match=esc("input: expected dtype float64 (the parameters' "
                                            "dtype), got float32")):
        gru()(X.astype(np.float32))
    with pytest.raises(TypeError, match="input: expected dtype float32 .* got float64"):
        sr.RNN(3, 4)(X)                        # float32 module, float64 input


def test_not_an_array():
    with pytest.raises(TypeError, match="input: expected an array, got list"):
        gru()(X.tolist())


def test_nan_input_with_checks_on():
    x = X.copy()
    x[1, 0, 2] = np.nan
    old = B.set_check_finite(True)
    try:
        with pytest.raises(ValueError, match="input: expected finite values, got NaN or Inf"):
            gru()(x)
        with pytest.raises(ValueError, match="h0: expected finite values, got NaN or Inf"):
            gru()(X, np.full((1, 2, 4), np.inf))
    finally:
        B.set_check_finite(old)
    if not old:                                # with checks off, NaN passes through
        out, _ = gru()(x)
        assert np.isnan(out[1:, 0]).all()


# --------------------------------------------------------------------------- #
# lengths
# --------------------------------------------------------------------------- #


def test_lengths_longer_than_T():
    with pytest.raises(ValueError, match=esc("lengths: expected values in [0, 5] (T = 5), got "
                                             "min 2, max 6")):
        gru()(X, lengths=[6, 2])


def test_lengths_negative():
    with pytest.raises(ValueError, match=esc("lengths: expected values in [0, 5] (T = 5), got "
                                             "min -1, max 3")):
        gru()(X, lengths=[3, -1])


@pytest.mark.parametrize("lengths, got", [([5], "(1,)"), ([5, 5, 5], "(3,)"),
                                          ([[5, 5]], "(1, 2)"), (5, "()")])
def test_lengths_wrong_shape(lengths, got):
    with pytest.raises(ValueError, match=esc(f"lengths: expected shape (2,) (one per sequence), "
                                             f"got {got}")):
        gru()(X, lengths=lengths)


def test_lengths_float():
    with pytest.raises(TypeError, match="lengths: expected integers, got dtype float64"):
        gru()(X, lengths=[5.0, 2.5])


def test_lengths_batch_first_counts_the_batch_axis():
    with pytest.raises(ValueError, match=esc("lengths: expected shape (5,)")):
        gru(batch_first=True)(X, lengths=[2, 3])       # X is (B=5, T=2, I=3) here


# --------------------------------------------------------------------------- #
# initial states
# --------------------------------------------------------------------------- #


def test_h0_wrong_shape():
    with pytest.raises(ValueError, match=esc("h0: expected shape (1, 2, 4) (num_layers·"
                                             "num_directions, batch, hidden_size), got "
                                             "(2, 2, 4)")):
        gru()(X, np.zeros((2, 2, 4)))


def test_h0_wrong_shape_bidirectional():
    with pytest.raises(ValueError, match=esc("h0: expected shape (4, 2, 4)") + ".*got "
                       + esc("(2, 2, 4)")):
        gru(num_layers=2, bidirectional=True)(X, np.zeros((2, 2, 4)))


def test_h0_wrong_dtype():
    with pytest.raises(TypeError, match="h0: expected dtype float64 .* got float32"):
        gru()(X, np.zeros((1, 2, 4), dtype=np.float32))


@pytest.mark.parametrize("h0, got", [(np.zeros((1, 2, 4)), "ndarray"),
                                     ([np.zeros((1, 2, 4))], "list"),
                                     ((np.zeros((1, 2, 4)),) * 3, "tuple")])
def test_lstm_h0_not_a_pair(h0, got):
    with pytest.raises(TypeError, match=esc(f"h0: expected a tuple (h0, c0) for an LSTM, got "
                                            f"{got}")):
        lstm()(X, h0)


def test_lstm_c0_wrong_shape():
    with pytest.raises(ValueError, match=esc("c0: expected shape (1, 2, 4)") + ".*"
                       + esc("got (1, 2, 5)")):
        lstm()(X, (np.zeros((1, 2, 4)), np.zeros((1, 2, 5))))


# --------------------------------------------------------------------------- #
# backward arguments
# --------------------------------------------------------------------------- #


def test_d_output_wrong_shape():
    layer = gru(bidirectional=True)
    layer(X)
    with pytest.raises(ValueError, match=esc("d_output: expected shape (5, 2, 8) (the forward "
                                             "output's shape), got (5, 2, 4)")):
        layer.backward(np.zeros((5, 2, 4)))


def test_dh_n_wrong_shape():
    layer = lstm()
    layer(X)
    with pytest.raises(ValueError, match=esc("dh_n: expected shape (1, 2, 4) (the final "
                                             "state's shape), got (2, 4)")):
        layer.backward(None, (np.zeros((2, 4)), None))
    with pytest.raises(ValueError, match=esc("dc_n: expected shape (1, 2, 4) (the final "
                                             "state's shape), got (2, 4)")):
        layer.backward(None, (None, np.zeros((2, 4))))


# --------------------------------------------------------------------------- #
# constructor arguments
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("kwargs, name, got", [
    (dict(hidden_size=0), "hidden_size", "0"),
    (dict(hidden_size=-3), "hidden_size", "-3"),
    (dict(hidden_size=2.5), "hidden_size", "2.5"),
    (dict(input_size=0), "input_size", "0"),
    (dict(num_layers=0), "num_layers", "0"),
    (dict(num_layers=True), "num_layers", "True"),
])
def test_bad_sizes(kwargs, name, got):
    with pytest.raises(ValueError, match=esc(f"{name}: expected a positive int, got {got}")):
        sr.LSTM(**{"input_size": 3, "hidden_size": 4, **kwargs})


@pytest.mark.parametrize("dropout", [1.5, 1.0, -0.1, "0.5"])
def test_bad_dropout(dropout):
    with pytest.raises(ValueError, match=esc(f"dropout: expected a float in [0, 1), got "
                                             f"{dropout!r}")):
        sr.GRU(3, 4, dropout=dropout)


def test_bad_nonlinearity():
    with pytest.raises(ValueError, match=esc("nonlinearity: expected 'tanh' or 'relu', got "
                                             "'sigmoid'")):
        sr.RNN(3, 4, nonlinearity="sigmoid")


def test_bad_dtype_and_device():
    with pytest.raises(ValueError, match=esc("dtype: expected one of ('float32', 'float64'), "
                                             "got 'float16'")):
        sr.GRU(3, 4, dtype="float16")
    with pytest.raises(ValueError, match="device: expected one of .* got 'tpu'"):
        sr.GRU(3, 4, device="tpu")


# --------------------------------------------------------------------------- #
# backward-side inputs (issue 11, item 9): the same rules as forward
# --------------------------------------------------------------------------- #
BAD_GRADS = [("int64", TypeError, "expected a floating-point array"),
             ("bool", TypeError, "expected a floating-point array"),
             ("float16", TypeError, "expected dtype float64"),
             ("float32", TypeError, "expected dtype float64"),
             ("complex128", TypeError, "expected a floating-point array"),
             ("object", TypeError, "expected a floating-point array")]


def _grad_layers():
    """(name of the upstream argument, forward+backward runner) for each layer."""
    def rnn(g):
        layer = gru()
        layer(X)
        return layer.backward(g)

    def rnn_dh(g):
        layer = gru()
        layer(X)
        return layer.backward(None, g)

    def lstm_dc(g):
        layer = lstm()
        layer(X)
        return layer.backward(None, (None, g))

    def linear(g):
        layer = sr.Linear(3, 4, dtype="float64")
        layer(X)
        return layer.backward(g)

    def mean_pool(g):
        pool = sr.MeanPool()
        pool(X)
        return pool.backward(g[0])

    def attention(g):
        pool = sr.AttentionPool(3, dtype="float64")
        pool(X)
        return pool.backward(g[0])

    def embedding(g):
        emb = sr.Embedding(7, 3, dtype="float64")
        emb(np.zeros((5, 2), dtype=np.int64))
        return emb.backward(g)

    return {"d_output": (rnn, (5, 2, 4)), "dh_n": (rnn_dh, (1, 2, 4)),
            "dc_n": (lstm_dc, (1, 2, 4)), "dy": (linear, (5, 2, 4)),
            "dpooled": (mean_pool, (1, 2, 3)), "dpooled ": (attention, (1, 2, 3)),
            "dy ": (embedding, (5, 2, 3))}


@pytest.mark.parametrize("dtype, err, text", BAD_GRADS)
@pytest.mark.parametrize("arg", list(_grad_layers()))
def test_backward_input_dtype_is_checked(arg, dtype, err, text):
    run, shape = _grad_layers()[arg]
    g = np.ones(shape, dtype=dtype)
    with pytest.raises(err, match=f"{arg.strip()}: {text}.*got.*{dtype}"):
        run(g)


@pytest.mark.parametrize("arg", list(_grad_layers()))
def test_backward_input_nan_refused_with_check_finite(arg):
    run, shape = _grad_layers()[arg]
    g = np.ones(shape)
    g.flat[1] = np.nan
    run(g)                                          # off by default: passes
    old = B.set_check_finite(True)
    try:
        with pytest.raises(ValueError, match=f"{arg.strip()}: expected finite values"):
            run(g)
    finally:
        B.set_check_finite(old)


def test_backward_input_on_another_backend_is_named():
    layer = gru()
    layer(X)
    with pytest.raises(TypeError, match="d_output: expected an array on cpu"):
        layer.backward(B.get_backend("strict").asarray(np.ones((5, 2, 4))))


def test_float64_upstream_does_not_turn_a_float32_model_into_float64():
    layer = sr.Linear(3, 4)                              # float32
    opt = sr.Adam(layer.parameters(), lr=0.1)
    layer(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="dy: expected dtype float32"):
        layer.backward(np.ones((2, 4)))
    opt.step()
    assert layer.weight.data.dtype == np.float32


@pytest.mark.parametrize("bad", [(np.zeros((1, 2, 4)),), [np.zeros((1, 2, 4))] * 3,
                                 np.zeros((1, 2, 4))])
def test_lstm_dh_n_must_be_a_pair(bad):
    layer = lstm()
    layer(X)
    with pytest.raises(TypeError, match=r"dh_n: expected a tuple \(dh_n, dc_n\)"):
        layer.backward(None, bad)


def _twice(name):
    if name == "lstm":
        layer, x = lstm(), X
    elif name == "linear":
        layer, x = sr.Linear(3, 4, dtype="float64"), X
    elif name == "attention":
        layer, x = sr.AttentionPool(3, dtype="float64"), X
    elif name == "last":
        layer, x = sr.LastPool(), X
    else:
        layer, x = sr.Embedding(7, 3, dtype="float64"), np.zeros((5, 2), dtype=np.int64)
    out = layer(x)
    out = out[0] if isinstance(out, tuple) else out
    return layer, np.ones(out.shape)


@pytest.mark.parametrize("name", ["lstm", "linear", "attention", "last", "embedding"])
def test_backward_twice_after_one_forward_is_refused(name):
    layer, g = _twice(name)
    layer.backward(g)
    grads = [np.copy(p.grad) for p in layer.parameters()]
    with pytest.raises(RuntimeError, match="backward called twice after one forward"):
        layer.backward(g)
    for p, before in zip(layer.parameters(), grads):    # nothing added the second time
        np.testing.assert_array_equal(p.grad, before)


def test_a_refused_backward_input_leaves_the_forward_usable():
    layer = lstm()
    layer(X)
    with pytest.raises(ValueError):
        layer.backward(np.zeros((5, 2, 3)))
    dx, _ = layer.backward(np.ones((5, 2, 4)))          # the right one still works
    assert dx.shape == (5, 2, 3)


# --------------------------------------------------------------------------- #
# environment variables: an error names the variable
# --------------------------------------------------------------------------- #
def test_backend_variable_is_named(monkeypatch):
    monkeypatch.setenv("SCRATCHRNN_BACKEND", "tpu")
    with pytest.raises(ValueError, match="SCRATCHRNN_BACKEND: expected one of .*got 'tpu'"):
        sr.LSTM(3, 4)
    with pytest.raises(ValueError, match="^device: expected one of .*got 'tpu'"):
        sr.LSTM(3, 4, device="tpu")


def test_distributed_variable_is_named(monkeypatch):
    from scratchrnn.training import distributed

    monkeypatch.setenv("SCRATCHRNN_DISTRIBUTED", "bogus")
    with pytest.raises(ValueError, match="SCRATCHRNN_DISTRIBUTED: expected one of .*'bogus'"):
        distributed.world()
    with pytest.raises(ValueError, match="^kind: expected one of .*'nope'"):
        distributed.world("nope")


@pytest.mark.parametrize("name, call", [
    ("SCRATCHRNN_ENGINE", lambda: sr.GRU(3, 4)),
    ("SCRATCHRNN_FAST", lambda: sr.GRU(3, 4)),
    ("SCRATCHRNN_THREADS", lambda: B.set_thread_policy(None)),
])
def test_other_variables_are_named(monkeypatch, name, call):
    monkeypatch.delenv("SCRATCHRNN_ENGINE", raising=False)    # (it overrides SCRATCHRNN_FAST)
    monkeypatch.setenv(name, "bogus")
    with pytest.raises(ValueError, match=f"{name}: expected .*'bogus'"):
        call()


def test_on_off_variables_read_one_way(monkeypatch):
    from scratchrnn.backend import nccl
    from scratchrnn.backend.blas_tuning import tune_openblas_env
    from scratchrnn.backend.env import env_flag

    for text, value in (("1", True), ("Yes", True), ("on", True), ("0", False),
                        ("no", False), ("OFF", False), ("", True)):
        assert env_flag("X", True, {"X": text}) is value
    monkeypatch.setattr(B, "_check_finite", None)
    monkeypatch.setenv("SCRATCHRNN_CHECK_FINITE", "no")          # was: on
    assert B.check_finite_enabled() is False
    monkeypatch.setattr(B, "_check_finite", None)
    monkeypatch.setenv("SCRATCHRNN_CHECK_FINITE", "maybe")
    with pytest.raises(ValueError, match="SCRATCHRNN_CHECK_FINITE: expected one of .*'maybe'"):
        gru()(X)
    monkeypatch.setattr(B, "_check_finite", False)
    monkeypatch.setenv("SCRATCHRNN_NCCL", "maybe")
    with pytest.raises(ValueError, match="SCRATCHRNN_NCCL: expected one of"):
        nccl.available()
    with pytest.warns(UserWarning, match="SCRATCHRNN_TUNE_BLAS: expected one of .*'maybe'"):
        assert tune_openblas_env({"SCRATCHRNN_TUNE_BLAS": "maybe"}, {}) is None


def test_debug_variable_off_means_off(monkeypatch, capsys):
    from scratchrnn._command import one_line_errors

    def fail():
        raise ValueError("boom")

    monkeypatch.setenv("SCRATCHRNN_DEBUG", "0")
    assert one_line_errors("train", fail) == 1
    assert capsys.readouterr().err == "scratchrnn train: error: boom\n"
    monkeypatch.setenv("SCRATCHRNN_DEBUG", "1")
    with pytest.raises(ValueError, match="boom"):
        one_line_errors("train", fail)


# --------------------------------------------------------------------------- #
# boolean layer options take booleans
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("layer", [sr.RNN, sr.GRU, sr.LSTM])
@pytest.mark.parametrize("name, value", [("allow_tf32", "no"), ("allow_tf32", 1),
                                         ("bias", "no"), ("batch_first", "yes"),
                                         ("bidirectional", 0)])
def test_boolean_options_take_booleans(layer, name, value):
    expected = "True, False or None" if name == "allow_tf32" else "True or False"
    with pytest.raises(TypeError, match=esc(f"{name}: expected {expected}, got {value!r}")):
        layer(3, 4, **{name: value})


@pytest.mark.parametrize("value", [None, True, False])
def test_allow_tf32_takes_none_and_booleans(value):
    assert sr.LSTM(3, 4, allow_tf32=value).allow_tf32 is value
