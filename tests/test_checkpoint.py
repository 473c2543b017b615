"""Checkpoints: round trip, atomic writes, version/corruption/mismatch errors."""

from __future__ import annotations

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.backend import serialize
from scratchrnn.data import Vocab
from scratchrnn.models import LanguageModel
from scratchrnn.training import Adam
from scratchrnn.training import checkpoint as C


def trained(seed: int = 0):
    m = LanguageModel(6, 5, 1, "gru", 3, generator=B.Generator(seed))
    opt = Adam(m.named_parameters(), lr=0.01)
    logits, _ = m(np.array([[0, 1], [2, 3]]))
    m.backward(np.ones(logits.shape, dtype="float32"))
    opt.step()
    return m, opt


def test_round_trip(tmp_path):
    m, opt = trained()
    vocab = Vocab.build_chars("abcdef")
    gen = B.Generator(7)
    path = C.save_checkpoint(tmp_path / "ck.npz", m, opt, vocab=vocab, step=42,
                             rng={"g": gen.get_state()}, info={"note": "hi"},
                             arrays={"state0": np.arange(3.0)})
    ck = C.load_checkpoint(path)
    assert ck.step == 42 and ck.vocab == vocab and ck.info == {"note": "hi"}
    assert ck.model_kind == "language_model" and ck.model_config == m.config
    np.testing.assert_array_equal(ck.arrays["state0"], np.arange(3.0))
    again = ck.build_model()
    for (n, a), (_, b) in zip(m.named_parameters(), again.named_parameters()):
        assert np.array_equal(B.to_numpy(a.data), B.to_numpy(b.data)), n
    opt2 = Adam(again.named_parameters(), lr=0.5)
    opt2.load_state_dict(ck.optimizer)
    assert opt2.steps == 1 and opt2.lr == 0.01
    np.testing.assert_array_equal(B.to_numpy(opt2.state["head.bias"]["exp_avg"]),
                                  B.to_numpy(opt.state["head.bias"]["exp_avg"]))
    g2 = B.Generator(0)
    g2.set_state(ck.rng["g"])
    assert g2.host.random() == gen.host.random()


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    m, opt = trained()
    path = C.save_checkpoint(tmp_path / "ck.npz", m, opt, step=1)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(serialize.np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        C.save_checkpoint(path, m, opt, step=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]     # no temp file left
    assert C.load_checkpoint(path).step == 1


def test_version_checked(tmp_path, monkeypatch):
    m, _ = trained()
    monkeypatch.setattr(C, "VERSION", 99)
    path = C.save_checkpoint(tmp_path / "ck.npz", m)
    monkeypatch.setattr(C, "VERSION", 1)
    with pytest.raises(ValueError, match="expected format version 1, got 99"):
        C.load_checkpoint(path)


def test_corrupt_and_foreign_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip file")
    with pytest.raises(ValueError, match="bad.npz: not a readable .npz file"):
        C.load_checkpoint(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, w=np.zeros(3))
    with pytest.raises(ValueError, match="missing __meta__.json"):
        C.load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match="no file at"):
        C.load_checkpoint(tmp_path / "absent.npz")
    m, _ = trained()
    path = C.save_checkpoint(tmp_path / "ck.npz", m)
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = b"\x00" * 64             # damage the middle
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="ck.npz"):
        C.load_checkpoint(path)


def test_mismatched_model(tmp_path):
    m, _ = trained()
    path = C.save_checkpoint(tmp_path / "ck.npz", m)
    ck = C.load_checkpoint(path)
    ck.model_config["hidden_size"] = 7
    with pytest.raises(ValueError, match="weights do not fit the model"):
        ck.build_model()
    ck.model_config["hidden_units"] = 7
    with pytest.raises(ValueError, match="does not fit"):
        ck.build_model()
