"""Ready models: shapes, a directional gradient check of each whole model, rebuild."""

from __future__ import annotations

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.models import LanguageModel, SequenceClassifier, SequenceRegressor, build_model


def directional_check(model, loss_and_backward, eps: float = 1e-5) -> float:
    """|Σ grad·d - (L(θ+εd) - L(θ-εd)) / 2ε| relative, for a random direction d."""
    rng = np.random.default_rng(0)
    params = model.parameters()
    model.zero_grad()
    loss_and_backward(True)
    dirs = [rng.standard_normal(p.shape) for p in params]
    analytic = sum(float(np.sum(B.to_numpy(p.grad) * d)) for p, d in zip(params, dirs))
    base = [B.to_numpy(p.data).copy() for p in params]

    def at(sign: float) -> float:
        for p, b, d in zip(params, base, dirs):
            p.data = B.backend_of(p.data).asarray(b + sign * eps * d, dtype="float64")
        return loss_and_backward(False)

    numeric = (at(1.0) - at(-1.0)) / (2 * eps)
    at(0.0)
    return abs(analytic - numeric) / max(abs(analytic) + abs(numeric), 1e-8)


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru", "lstm"])
@pytest.mark.parametrize("embedding_dim", [None, 5])
def test_language_model(cell, embedding_dim, backend_name):
    be = B.get_backend(backend_name)
    V, T, Bn, H = 7, 4, 3, 6
    m = LanguageModel(V, H, 2, cell, embedding_dim, dtype="float64", device=be,
                      generator=B.Generator(1))
    rng = np.random.default_rng(2)
    ids = be.asarray(rng.integers(0, V, size=(T, Bn)))
    R = be.asarray(rng.standard_normal((T, Bn, V)), dtype="float64")
    logits, state = m(ids)
    assert tuple(logits.shape) == (T, Bn, V)
    h = state[0] if cell == "lstm" else state
    assert tuple(h.shape) == (2, Bn, H)
    h0 = state   # a carried, non-zero initial state

    def run(backward: bool) -> float:
        out, _ = m(ids, h0)
        if backward:
            m.backward(R)
        return B.to_scalar(be.xp.sum(out * R))

    assert directional_check(m, run) < 1e-7


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
def test_classifier(pooling):
    be = B.get_backend("numpy")
    m = SequenceClassifier(3, vocab_size=9, hidden_size=5, cell="gru", embedding_dim=4,
                           pooling=pooling, bidirectional=True, dtype="float64",
                           generator=B.Generator(3))
    rng = np.random.default_rng(4)
    ids = be.asarray(rng.integers(0, 9, size=(6, 4)))
    lengths = be.asarray([6, 2, 4, 1])
    R = be.asarray(rng.standard_normal((4, 3)), dtype="float64")
    assert tuple(m(ids, lengths).shape) == (4, 3)

    def run(backward: bool) -> float:
        out = m(ids, lengths)
        if backward:
            assert m.backward(R) is None
        return float(np.sum(B.to_numpy(out) * B.to_numpy(R)))

    assert directional_check(m, run) < 1e-7
    # padding does not matter: changing a padded id leaves the output unchanged
    out = B.to_numpy(m(ids, lengths))
    ids2 = B.to_numpy(ids).copy()
    ids2[3:, 1] = (ids2[3:, 1] + 1) % 9
    np.testing.assert_allclose(B.to_numpy(m(be.asarray(ids2), lengths)), out, atol=1e-12)


@pytest.mark.parametrize("many_to_many", [False, True])
def test_regressor(many_to_many):
    be = B.get_backend("numpy")
    m = SequenceRegressor(2, 3, 5, 1, "lstm", many_to_many, dtype="float64",
                          generator=B.Generator(5))
    rng = np.random.default_rng(6)
    x = be.asarray(rng.standard_normal((5, 4, 2)), dtype="float64")
    shape = (5, 4, 3) if many_to_many else (4, 3)
    R = be.asarray(rng.standard_normal(shape), dtype="float64")
    assert tuple(m(x).shape) == shape

    def run(backward: bool) -> float:
        out = m(x)
        if backward:
            dx = m.backward(R)
            assert tuple(dx.shape) == (5, 4, 2)
        return float(np.sum(B.to_numpy(out) * B.to_numpy(R)))

    assert directional_check(m, run) < 1e-7


def test_real_valued_classifier_returns_dx():
    m = SequenceClassifier(2, input_size=3, hidden_size=4, dtype="float64")
    x = B.get_backend("numpy").asarray(np.ones((5, 2, 3)), dtype="float64")
    m(x)
    assert tuple(m.backward(np.ones((2, 2))).shape) == (5, 2, 3)


def test_rebuild_from_config():
    m = LanguageModel(11, 8, 2, "gru", 4, 0.1, generator=B.Generator(0))
    again = build_model(m.kind, m.config)
    again.load_state_dict(m.state_dict())
    assert [n for n, _ in again.named_parameters()] == [n for n, _ in m.named_parameters()]
    with pytest.raises(ValueError, match="model kind: expected one of"):
        build_model("transformer", {})


def test_bad_arguments():
    with pytest.raises(ValueError, match="cell: expected one of .*, got 'rnm'"):
        LanguageModel(5, 4, cell="rnm")
    with pytest.raises(ValueError, match="vocab_size, input_size: expected exactly one"):
        SequenceClassifier(2, vocab_size=5, input_size=3)
    with pytest.raises(ValueError, match="pooling: expected one of"):
        SequenceClassifier(2, vocab_size=5, pooling="max")
    with pytest.raises(ValueError, match=r"ids: expected a 2-D array \(seq_len, batch\)"):
        LanguageModel(5, 4)(np.zeros((2, 3, 1), dtype="int64"))


# --------------------------------------------------------------------------- #
# Module.load_state_dict (issue 11, item 12)
# --------------------------------------------------------------------------- #
def _lm():
    return LanguageModel(6, 5, 1, "lstm", 3, dtype="float64", generator=B.Generator(0))


def test_load_state_dict_is_all_or_nothing():
    m = _lm()
    before = {k: np.copy(v) for k, v in m.state_dict().items()}
    new = {k: v + 1.0 for k, v in before.items()}
    new["head.bias"] = np.zeros(7)                          # the last one is misshaped
    with pytest.raises(ValueError, match=r"state_dict\['head.bias'\]: expected shape \(6,\)"):
        m.load_state_dict(new)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


@pytest.mark.parametrize("value, err, text", [
    (np.array([[None] * 3] * 6), TypeError, "expected real numbers.*got dtype object"),
    (np.ones((6, 3), dtype=np.complex128), TypeError, "got dtype complex128"),
    (np.full((6, 3), np.nan), ValueError, "expected finite values"),
    (np.array([["a"] * 3] * 6), TypeError, "got dtype <U1"),
])
def test_load_state_dict_refuses_non_numbers(value, err, text):
    m = _lm()
    sd = dict(m.state_dict())
    sd["embedding.weight"] = value
    with pytest.raises(err, match=text):
        m.load_state_dict(sd)


# --------------------------------------------------------------------------- #
# Cell names: those of scratchrnn.cells.CELLS, "rnn" an alias (issue 10, item 6)
# --------------------------------------------------------------------------- #
def test_the_models_name_cells_as_scratchrnn_cells_does():
    from scratchrnn.cells import CELLS as CELL_SPECS
    from scratchrnn.models import CELLS

    assert set(CELLS) <= set(CELL_SPECS)                   # one set of names, no other
    assert set(CELL_SPECS) - set(CELLS) == {"lstm_proj"}   # the LSTM with proj_size: layers only
    for name in CELLS:
        m = LanguageModel(5, 4, 1, name, generator=B.Generator(0))
        assert m.config["cell"] == name and m.rnn.cell is CELL_SPECS[name]


@pytest.mark.parametrize("make", [
    lambda cell: LanguageModel(5, 4, 1, cell, 3, generator=B.Generator(0)),
    lambda cell: SequenceClassifier(2, vocab_size=5, hidden_size=4, cell=cell,
                                    generator=B.Generator(0)),
    lambda cell: SequenceRegressor(2, 1, 4, cell=cell, generator=B.Generator(0)),
], ids=["language_model", "classifier", "regressor"])
def test_rnn_is_an_alias_of_rnn_tanh_and_the_config_stores_rnn_tanh(make):
    old, new = make("rnn"), make("rnn_tanh")
    assert old.config == new.config and new.config["cell"] == "rnn_tanh"
    assert old.rnn.nonlinearity == "tanh" and old.rnn.cell.name == "rnn_tanh"
    for (k, a), (_, b) in zip(old.state_dict().items(), new.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    again = build_model(old.kind, {**old.config, "cell": "rnn"})     # an old config
    assert again.config["cell"] == "rnn_tanh"


def test_rnn_relu_model_and_refused_cells():
    m = SequenceRegressor(2, 1, 4, cell="rnn_relu")
    assert m.rnn.nonlinearity == "relu" and m.config["cell"] == "rnn_relu"
    with pytest.raises(ValueError, match=r"cell: 'lstm_proj' .* use sr.LSTM\(\.\.\., proj_size"):
        LanguageModel(5, 4, cell="lstm_proj")
    with pytest.raises(ValueError, match="cell: expected one of 'rnn_tanh', 'rnn_relu', 'gru', "
                                         "'lstm' \\(or 'rnn' for 'rnn_tanh'\\), got 'tanh'"):
        SequenceClassifier(2, vocab_size=5, cell="tanh")
