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


# --------------------------------------------------------------------------- #
# hostile and foreign files: checked before anything is built or assigned
# --------------------------------------------------------------------------- #
def small_export(tmp_path, vocab_size: int = 3, vocab: Vocab | None = None):
    """A float32 1-layer LSTM LM exported with its vocabulary: (path, tensors, metadata)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    m = LanguageModel(vocab_size, 4, 1, "lstm", generator=B.Generator(0))
    path = save_safetensors(m, tmp_path / "m.safetensors",
                            vocab=vocab or Vocab.build_chars("abc"[:vocab_size]))
    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
    return path, load_file(path), meta


def rewritten(tmp_path, tensors, meta, name="bad.safetensors", **change):
    from safetensors.numpy import save_file

    path = tmp_path / name
    save_file(tensors, str(path), metadata={**meta, **change})
    return path


def raw_safetensors(path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> None:
    """A .safetensors file written by hand (dtypes NumPy lacks: BF16, F8_E4M3)."""
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


def test_metadata_of_a_huge_model_is_refused_before_building(tmp_path, monkeypatch):
    """A 5 kB file whose config says hidden_size 100000: the stored shapes are compared
    with the config's before any model is built."""
    path, tensors, meta = small_export(tmp_path)
    config = {**json.loads(meta["model_config"]), "hidden_size": 100000}
    bad = rewritten(tmp_path, tensors, meta, model_config=json.dumps(config))

    def no_build(*args, **kwargs):
        raise AssertionError("a model was built from metadata the weights do not fit")

    monkeypatch.setattr("scratchrnn.models.build_model", no_build)
    with pytest.raises(ValueError, match=r"bad.safetensors: the weights do not fit the model "
                                         r"config \(.*config says \(3, 100000\), file has "
                                         r"\(3, 4\)"):
        load_safetensors_model(bad)


def test_a_vocabulary_that_is_not_vocab_size_is_refused(tmp_path):
    """17 output classes (the weights agree with the config) but a vocabulary of 3."""
    from safetensors.numpy import load_file

    m = LanguageModel(17, 4, 1, "lstm", generator=B.Generator(0))
    path = save_safetensors(m, tmp_path / "v.safetensors", vocab=Vocab.build_chars("abc"))
    assert load_file(path)["head.bias"].shape == (17,)
    with pytest.raises(ValueError, match=r"v.safetensors: the vocabulary has 3 tokens, the "
                                         r"model config says vocab_size 17"):
        load_safetensors_model(path)


CONFIG = {"vocab_size": 3, "hidden_size": 4, "num_layers": 1, "cell": "lstm",
          "embedding_dim": None, "dropout": 0.0, "dtype": "float32"}


@pytest.mark.parametrize("change, text", [
    ({"model_config": "[1, 2]"}, "model_config: expected a JSON object, got an array"),
    ({"model_config": "null"}, "model_config: expected a JSON object, got null"),
    ({"model_config": '"x"'}, "model_config: expected a JSON object, got a string"),
    ({"model_config": "{"}, "model_config: not valid JSON"),
    ({"model_config": json.dumps({**CONFIG, "hidden_size": "4"})},
     r"model_config\['hidden_size'\]: expected a positive int, got '4'"),
    ({"model_config": json.dumps({**CONFIG, "cell": "transformer"})},
     r"model_config\['cell'\]"),
    ({"model_config": json.dumps({**CONFIG, "layers": 2})},
     r"model_config does not fit a 'language_model': unexpected keys \['layers'\]"),
    ({"model_config": json.dumps({**CONFIG, "dtype": "float16"})},
     r"model_config\['dtype'\]: expected one of \('float32', 'float64'\), got 'float16'"),
    ({"model_config": json.dumps({**CONFIG, "dropout": "x"})}, "model_config: dropout"),
    ({"model_kind": "gan"}, r"model_kind: expected one of \['classifier', 'language_model', "
                            r"'regressor'\], got 'gan'"),
    ({"vocab": "null"}, "vocab: expected a JSON object, got null"),
    ({"vocab": "[[1, 2]]"}, "vocab: expected a JSON object, got an array"),
    ({"vocab": "{}"}, "vocab: expected keys itos"),
    ({"vocab": "{"}, "vocab: not valid JSON"),
])
def test_malformed_metadata_is_named_with_the_file_and_field(tmp_path, change, text):
    path, tensors, meta = small_export(tmp_path)
    bad = rewritten(tmp_path, tensors, meta, **change)
    with pytest.raises(ValueError, match=r"^safetensors .*bad.safetensors: " + text):
        load_safetensors_model(bad)


def test_a_future_format_version_is_refused_naming_it(tmp_path):
    path, tensors, meta = small_export(tmp_path)
    bad = rewritten(tmp_path, tensors, meta, version="999")
    with pytest.raises(ValueError, match=r"bad.safetensors: format version '999' is not "
                                         r"supported \(this scratchrnn reads version '1'"):
        load_safetensors_model(bad)


def bf16_bits(values: np.ndarray) -> bytes:
    """bfloat16 is the top half of a float32: exact for these values."""
    return (values.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()


def test_bfloat16_and_float16_weights_are_widened_exactly(tmp_path):
    m = LanguageModel(3, 4, 1, "lstm", generator=B.Generator(0))
    rng = np.random.default_rng(0)
    want = {k: (rng.integers(-64, 64, v.shape) / 32).astype(np.float32)    # exact in bf16
            for k, v in m.state_dict().items()}
    names = sorted(want)
    raw_safetensors(tmp_path / "bf16.safetensors", {
        k: ("BF16" if i % 2 else "F16", want[k].shape,
            bf16_bits(want[k]) if i % 2 else want[k].astype("<f2").tobytes())
        for i, k in enumerate(names)})
    m.load_state_dict(tmp_path / "bf16.safetensors")
    for k, v in m.state_dict().items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, want[k])


def test_a_dtype_this_library_cannot_read_is_named(tmp_path):
    m = LanguageModel(3, 4, 1, "lstm", generator=B.Generator(0))
    raw_safetensors(tmp_path / "f8.safetensors", {
        k: ("F8_E4M3", v.shape, bytes(v.size)) for k, v in m.state_dict().items()})
    with pytest.raises(ValueError, match=r"f8.safetensors: tensor '.*': dtype F8_E4M3 is not "
                                         r"supported"):
        m.load_state_dict(tmp_path / "f8.safetensors")


def test_bfloat16_from_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    m = LanguageModel(3, 4, 1, "lstm", generator=B.Generator(0))
    save_file({k: torch.from_numpy(np.array(v)).to(torch.bfloat16)
               for k, v in m.state_dict().items()}, str(tmp_path / "t.safetensors"))
    again = LanguageModel(3, 4, 1, "lstm", generator=B.Generator(1))
    again.load_state_dict(tmp_path / "t.safetensors")
    for k, v in again.state_dict().items():
        ref = torch.from_numpy(np.array(m.state_dict()[k])).to(torch.bfloat16).float().numpy()
        np.testing.assert_array_equal(v, ref)


def test_stored_shapes_are_checked_before_reading_and_name_the_file(tmp_path):
    from safetensors.numpy import save_file

    m = LanguageModel(3, 4, 1, "lstm", generator=B.Generator(0))
    before = {k: np.array(v) for k, v in m.state_dict().items()}
    state = dict(before, **{"head.weight": np.zeros((3, 5), np.float32)})
    save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match=r"w.safetensors: tensor 'head.weight': expected "
                                         r"shape \(3, 4\), got \(3, 5\)"):
        m.load_state_dict(tmp_path / "w.safetensors")
    assert all(np.array_equal(v, before[k]) for k, v in m.state_dict().items())


def test_float64_values_that_overflow_float32_are_refused_without_a_warning(tmp_path):
    import warnings

    from safetensors.numpy import save_file

    _, tensors, meta = small_export(tmp_path)                         # a float32 model
    huge = {k: np.full(v.shape, 1e300) for k, v in tensors.items()}    # finite in float64
    save_file(huge, str(tmp_path / "big.safetensors"))
    bad = rewritten(tmp_path, huge, meta)
    m = LanguageModel(3, 4, 1, "lstm", generator=B.Generator(0))
    before = {k: np.array(v) for k, v in m.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"state_dict\['.*'\]: expected values that fit "
                                             r"float32, got finite float64 values that "
                                             r"overflow it to Inf"):
            m.load_state_dict(tmp_path / "big.safetensors")
        with pytest.raises(ValueError, match=r"bad.safetensors: weights do not fit the model "
                                             r".*overflow it to Inf"):
            load_safetensors_model(bad)
    assert all(np.array_equal(v, before[k]) for k, v in m.state_dict().items())
