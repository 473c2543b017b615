"""safetensors interop (issue 12, item 5): ``scratchrnn export`` writes weights under
PyTorch's names that load straight into the equivalent torch.nn model, and
``model.load_state_dict`` takes a ``.safetensors`` path (or dict) written by torch.
The torch parts are skipped without torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.cli import main
from scratchrnn.data import Vocab
from scratchrnn.models import LanguageModel, SequenceClassifier
from scratchrnn.training import Adam, save_checkpoint
from scratchrnn.training.export import load_safetensors_model, save_safetensors

safetensors = pytest.importorskip("safetensors")

V, H, E = 7, 6, 4
IDS = np.array([[0, 3], [5, 1], [2, 6], [4, 4]])            # (T, B)


def trained_lm(cell: str, embedding_dim: int | None, layers: int = 2) -> LanguageModel:
    """A float64 LM moved off its initialisation: random nudges and two Adam steps."""
    m = LanguageModel(V, H, layers, cell, embedding_dim, dtype="float64",
                      generator=B.Generator(3))
    rng = np.random.default_rng(0)
    m.load_state_dict({k: v + 0.1 * rng.standard_normal(v.shape)
                       for k, v in m.state_dict().items()})
    opt = Adam(m.named_parameters(), lr=0.05)
    for _ in range(2):
        opt.zero_grad()
        logits, _ = m(IDS)
        m.backward(np.sin(logits))
        opt.step()
    return m


def logits_of(m) -> np.ndarray:
    m.eval()
    return B.to_numpy(m(IDS)[0])


def test_export_cli_round_trip_without_torch(tmp_path, capsys):
    m = trained_lm("gru", E)
    vocab = Vocab.build_chars("abcdefg")
    ck = save_checkpoint(tmp_path / "ck.npz", m, vocab=vocab)
    out = tmp_path / "model.safetensors"
    assert main(["export", str(ck), str(out)]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    from safetensors import safe_open
    from safetensors.numpy import load_file

    arrays = load_file(out)
    assert sorted(arrays) == sorted(m.state_dict())           # PyTorch's names, no prefix
    assert all(a.dtype == np.float64 for a in arrays.values())
    with safe_open(str(out), framework="numpy") as f:
        meta = f.metadata()
    assert json.loads(meta["model_config"]) == m.config and meta["model_kind"] == \
        "language_model" and Vocab.from_dict(json.loads(meta["vocab"])) == vocab
    again, vocab2 = load_safetensors_model(out)
    assert vocab2 == vocab
    np.testing.assert_array_equal(logits_of(again), logits_of(m))
    fresh = LanguageModel(V, H, 2, "gru", E, dtype="float64", generator=B.Generator(9))
    fresh.load_state_dict(out)                                 # a path is accepted
    np.testing.assert_array_equal(logits_of(fresh), logits_of(m))


def test_export_errors_are_one_line(tmp_path, capsys):
    m = trained_lm("rnn_tanh", None, 1)
    ck = save_checkpoint(tmp_path / "ck.npz", m)
    assert main(["export", str(ck), str(tmp_path / "model.npz")]) == 1
    assert "expected a file name ending in .safetensors" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "absent.npz"), str(tmp_path / "m.safetensors")]) == 1
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="bad.safetensors: not a readable .safetensors"):
        m.load_state_dict(bad)


def test_classifier_exports_its_pool_weight(tmp_path):
    m = SequenceClassifier(3, vocab_size=V, embedding_dim=E, hidden_size=H,
                           pooling="attention", dtype="float64")
    path = save_safetensors(m, tmp_path / "clf.safetensors")
    again, vocab = load_safetensors_model(path)
    assert vocab is None and isinstance(again, SequenceClassifier)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v)


# --------------------------------------------------------------------------- #
# against torch
# --------------------------------------------------------------------------- #
def torch_lm(cell: str, embedding_dim: int | None, layers: int):
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class TorchLM(nn.Module):
        """The same model in torch.nn: embedding (or one-hot), rnn, head."""

        def __init__(self) -> None:
            super().__init__()
            if embedding_dim:
                self.embedding = nn.Embedding(V, embedding_dim)
            rnn, kw = {"lstm": (nn.LSTM, {}), "gru": (nn.GRU, {}),
                       "rnn_tanh": (nn.RNN, {"nonlinearity": "tanh"}),
                       "rnn_relu": (nn.RNN, {"nonlinearity": "relu"})}[cell]
            self.rnn = rnn(embedding_dim or V, H, layers, **kw)
            self.head = nn.Linear(H, V)

        def forward(self, ids):
            x = self.embedding(ids) if embedding_dim else \
                nn.functional.one_hot(ids, V).to(torch.float64)
            out, _ = self.rnn(x)
            return self.head(out)

    return TorchLM().double()


@pytest.mark.parametrize("cell, embedding_dim", [("lstm", E), ("gru", None), ("rnn_tanh", E),
                                                   ("rnn_relu", None)])
def test_exported_file_loads_into_torch_with_the_same_logits(tmp_path, cell, embedding_dim):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    m = trained_lm(cell, embedding_dim)
    ck = save_checkpoint(tmp_path / "ck.npz", m, vocab=Vocab.build_chars("abcdefg"))
    out = tmp_path / "model.safetensors"
    assert main(["export", str(ck), str(out)]) == 0
    t = torch_lm(cell, embedding_dim, 2)
    t.load_state_dict(load_file(out), strict=True)            # straight in, no renaming
    with torch.no_grad():
        theirs = t(torch.from_numpy(IDS)).numpy()
    np.testing.assert_allclose(theirs, logits_of(m), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell, embedding_dim", [("lstm", E), ("gru", None)])
def test_weights_trained_in_torch_load_here(tmp_path, cell, embedding_dim):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    t = torch_lm(cell, embedding_dim, 2)
    opt = torch.optim.Adam(t.parameters(), lr=0.05)
    for _ in range(2):                                         # off its initialisation
        opt.zero_grad()
        t(torch.from_numpy(IDS)).sin().sum().backward()
        opt.step()
    path = tmp_path / "torch.safetensors"
    save_file({k: v.contiguous() for k, v in t.state_dict().items()}, str(path))
    with torch.no_grad():
        theirs = t(torch.from_numpy(IDS)).numpy()
    for source in (path, {k: v for k, v in t.state_dict().items()}):   # a path or a dict
        m = LanguageModel(V, H, 2, cell, embedding_dim, dtype="float64")
        m.load_state_dict(source)
        np.testing.assert_allclose(logits_of(m), theirs, rtol=0, atol=1e-12)
