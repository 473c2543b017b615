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


# --------------------------------------------------------------------------- #
# loading hostile files (issue 11, items 7 and 8)
# --------------------------------------------------------------------------- #
def rewrite(path, tmp_path, meta_change=None, array_change=None, name="bad.npz"):
    """A copy of the checkpoint at ``path`` with its metadata / arrays edited."""
    _, meta = serialize.read_npz_index(path)
    arrays = serialize.read_npz_arrays(path)
    if meta_change:
        meta_change(meta)
    if array_change:
        array_change(arrays)
    return serialize.save_npz_atomic(tmp_path / name, arrays, meta)


def saved(tmp_path, **kw):
    m, opt = trained()
    return C.save_checkpoint(tmp_path / "ck.npz", m, opt, vocab=Vocab.build_chars("abcdef"),
                             step=3, **kw)


def test_npy_header_declaring_a_huge_array_is_refused_before_allocating(tmp_path):
    import zipfile

    path = saved(tmp_path)
    bad = tmp_path / "huge.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        header = {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
        import io

        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, header)
        dst.writestr("extra/junk.npy", buf.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match=r"huge.npz: array 'extra/junk' declares shape "
                                         r"\(1000000000000,\)"):
        C.load_checkpoint(bad)


def test_config_is_checked_against_the_stored_shapes_before_building(tmp_path):
    path = rewrite(saved(tmp_path), tmp_path,
                   lambda m: m["model_config"].update(hidden_size=30000))
    with pytest.raises(ValueError, match=r"bad.npz: the weights do not fit the model config "
                                         r"\(.*config says \(90000,\), file has \(15,\)"):
        C.load_checkpoint(path)


def test_unknown_members_are_refused(tmp_path):
    path = rewrite(saved(tmp_path), tmp_path,
                   array_change=lambda a: a.update(unused=np.zeros(10)))
    with pytest.raises(ValueError, match="bad.npz: unexpected member 'unused'"):
        C.load_checkpoint(path)
    path = rewrite(saved(tmp_path), tmp_path,
                   array_change=lambda a: a.update({"model/extra.weight": np.zeros(3)}))
    with pytest.raises(ValueError, match=r"do not fit the model config \(unexpected "
                                         r"\['extra.weight'\]"):
        C.load_checkpoint(path)


@pytest.mark.parametrize("change, text", [
    (lambda m: m.update(step="3"), "step: expected an int >= 0, got '3'"),
    (lambda m: m.update(step=-1), "step: expected an int >= 0"),
    (lambda m: m.update(model_config=[1, 2]), "model_config: expected a JSON object"),
    (lambda m: m.update(vocab=["a"]), "vocab: expected a JSON object"),
    (lambda m: m.update(vocab={"itos": "abcdef"}), "vocab: expected keys"),
    (lambda m: m["vocab"].update(itos=list("abc")), "the vocabulary has 3 tokens, the model "
                                                    "config says vocab_size 6"),
    (lambda m: m.update(rng={"default": {"state": 1}}), r"rng\['default'\]: expected a PCG64"),
    (lambda m: m.update(info=[]), "info: expected a JSON object"),
    (lambda m: m.pop("optimizer"), r"corrupt metadata \(missing \['optimizer'\]"),
    (lambda m: m["optimizer"].update(params=["nope"]), "optimizer: expected parameters"),
    (lambda m: m["model_config"].update(cell="tcn"), r"model_config\['cell'\]: expected one"),
    (lambda m: m["model_config"].update(hidden_size=True),
     r"model_config\['hidden_size'\]: expected a positive int, got True"),
])
def test_bad_metadata_is_named_with_the_file(tmp_path, change, text):
    path = rewrite(saved(tmp_path, rng={"default": B.Generator(1).get_state()}), tmp_path,
                   change)
    with pytest.raises(ValueError, match="bad.npz: " + text):
        C.load_checkpoint(path)


@pytest.mark.parametrize("change, text", [
    (lambda m: m.update(model_kind="gan"),
     r"model_kind: expected one of \['classifier', 'language_model', 'regressor'\], got 'gan'"),
    (lambda m: m["model_config"].update(dtype="float16"),
     r"model_config\['dtype'\]: expected one of \('float32', 'float64'\), got 'float16'"),
])
def test_unknown_kind_or_dtype_is_named_with_the_file(tmp_path, change, text):
    path = rewrite(saved(tmp_path), tmp_path, change)
    with pytest.raises(ValueError, match="bad.npz: " + text):
        C.load_checkpoint(path).build_model()


def test_a_checkpoint_edited_after_loading_names_its_file(tmp_path):
    ck = C.load_checkpoint(saved(tmp_path))
    ck.model_config = {**ck.model_config, "dtype": "float16"}
    with pytest.raises(ValueError, match=r"ck.npz: model_config\['dtype'\]"):
        ck.build_model()
    ck.model_kind = "gan"
    with pytest.raises(ValueError, match="ck.npz: model_kind: expected one of"):
        ck.build_model()


def test_a_field_the_model_refuses_is_named_with_the_file(tmp_path):
    path = rewrite(saved(tmp_path), tmp_path, lambda m: m["model_config"].update(dropout="x"))
    with pytest.raises(ValueError, match="bad.npz: model_config: dropout"):
        C.load_checkpoint(path).build_model()


def test_metadata_that_is_a_json_list(tmp_path):
    path = tmp_path / "list.npz"
    np.savez(path, **{serialize.META_KEY: np.frombuffer(b"[1, 2]", dtype=np.uint8)})
    with pytest.raises(ValueError, match="list.npz: corrupt metadata \\(expected a JSON object, "
                                         "got a JSON list\\)"):
        C.load_checkpoint(path)


@pytest.mark.parametrize("content, what", [(b'{"format": "scratchrnn-checkpoint"}', "JSON"),
                                           (b"hello world\n", "text"), (b"", "empty")])
def test_a_text_file_is_not_a_checkpoint(tmp_path, content, what):
    path = tmp_path / "ck.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"ck.npz: not a scratchrnn checkpoint \\(an? {what}"):
        C.load_checkpoint(path)


@pytest.mark.parametrize("value, text", [
    (lambda a: a.astype(np.complex128), "expected float weights, got dtype complex128"),
    (lambda a: np.full_like(a, np.nan), "expected finite values"),
    (lambda a: a.astype(np.int64), "expected float weights, got dtype int64"),
])
def test_complex_nan_or_integer_weights_are_refused(tmp_path, value, text):
    def change(arrays):
        arrays["model/head.weight"] = value(arrays["model/head.weight"])
    path = rewrite(saved(tmp_path), tmp_path, array_change=change)
    with pytest.raises(ValueError, match="bad.npz: model/head.weight: " + text):
        C.load_checkpoint(path)


def test_nan_optimizer_state_is_refused(tmp_path):
    def change(arrays):
        arrays["optim/head.bias/exp_avg"] = np.full(6, np.inf, dtype=np.float32)
    path = rewrite(saved(tmp_path), tmp_path, array_change=change)
    with pytest.raises(ValueError, match="optim/head.bias/exp_avg: expected finite"):
        C.load_checkpoint(path)


def test_carried_state_that_does_not_fit_is_named(tmp_path):
    path = saved(tmp_path, info={"trainer": {}, "run": {"batch_size": 2}},
                 arrays={"state0": np.zeros((1, 2, 5), np.float32)})
    assert C.load_checkpoint(path).arrays["state0"].shape == (1, 2, 5)
    path = rewrite(path, tmp_path, array_change=lambda a: a.update(
        {"extra/state0": np.zeros((1, 3, 5), np.float32)}))
    with pytest.raises(ValueError, match=r"carried state extra/state0: expected a float array "
                                         r"of shape \(1, 2, 5\)"):
        C.load_checkpoint(path)


def test_compressed_members_are_refused_so_arrays_are_bounded_by_the_file(tmp_path):
    path = tmp_path / "packed.npz"
    np.savez_compressed(path, **{serialize.META_KEY: np.frombuffer(b"{}", dtype=np.uint8),
                                 "extra/zeros": np.zeros(10**6)})
    assert path.stat().st_size < 20_000                      # 8 MB of zeros in a few kB
    with pytest.raises(ValueError, match="packed.npz: array '.*' is compressed"):
        C.load_checkpoint(path)


def test_a_checkpoint_of_the_old_rnn_cell_name_loads_as_rnn_tanh(tmp_path):
    """Checkpoints written before the cells had one name store cell "rnn" (issue 10, item 6):
    they load, rebuild the same tanh RNN, and a model saved now stores "rnn_tanh"."""
    m = LanguageModel(6, 5, 2, "rnn", 3, generator=B.Generator(0))      # the alias, as before
    state0 = np.zeros((2, 4, 5), dtype="float32")                      # carried (L, batch, H)
    path = C.save_checkpoint(tmp_path / "ck.npz", m, vocab=Vocab.build_chars("abcdef"), step=3,
                             info={"trainer": {}, "run": {"batch_size": 4}},
                             arrays={"state0": state0})
    assert serialize.read_npz_index(path)[1]["model_config"]["cell"] == "rnn_tanh"
    old = rewrite(path, tmp_path, lambda meta: meta["model_config"].update(cell="rnn"),
                  name="old.npz")
    assert serialize.read_npz_index(old)[1]["model_config"]["cell"] == "rnn"
    ck = C.load_checkpoint(old)
    assert ck.model_config == m.config and ck.model_config["cell"] == "rnn_tanh"
    again = ck.build_model()
    assert again.rnn.nonlinearity == "tanh"
    for (n, a), (_, b) in zip(m.named_parameters(), again.named_parameters()):
        assert np.array_equal(B.to_numpy(a.data), B.to_numpy(b.data)), n
    assert C.expected_weight_shapes("language_model", {**m.config, "cell": "rnn"}) == \
        C.expected_weight_shapes("language_model", m.config)
