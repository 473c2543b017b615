"""Sampling: filters, seeded draws, greedy, and one single step per generated token."""

from __future__ import annotations

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.data import Vocab
from scratchrnn.models import LanguageModel
from scratchrnn.training.sampling import draw, filter_probs, generate, next_token, sample


def test_filters(backend_name):
    be = B.get_backend(backend_name)
    p = be.asarray([[0.1, 0.4, 0.05, 0.3, 0.15]], dtype="float64")
    np.testing.assert_allclose(B.to_numpy(filter_probs(p, top_k=2)),
                               [[0, 0.4, 0, 0.3, 0]])
    # nucleus 0.7: 0.4 + 0.3 reaches it -> keep those two; 0.75 needs 0.15 too
    np.testing.assert_allclose(B.to_numpy(filter_probs(p, top_p=0.7)), [[0, 0.4, 0, 0.3, 0]])
    np.testing.assert_allclose(B.to_numpy(filter_probs(p, top_p=0.75)),
                               [[0, 0.4, 0, 0.3, 0.15]])
    np.testing.assert_allclose(B.to_numpy(filter_probs(p, top_p=1.0)), B.to_numpy(p))
    with pytest.raises(ValueError, match="top_k: expected a positive int, got 0"):
        filter_probs(p, top_k=0)
    with pytest.raises(ValueError, match=r"top_p: expected a value in \(0, 1\]"):
        filter_probs(p, top_p=1.5)


def test_draw_follows_the_distribution():
    be = B.get_backend("numpy")
    probs = np.tile([0.1, 0.0, 0.6, 0.3], (20000, 1))
    idx = B.to_numpy(draw(be.asarray(probs, dtype="float64"), B.Generator(0)))
    freq = np.bincount(idx, minlength=4) / len(idx)
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.6, 0.3], atol=0.015)
    assert freq[1] == 0.0


def test_greedy_and_temperature():
    logits = np.array([[0.0, 2.0, 1.0]])
    assert int(next_token(logits, temperature=0.0)[0]) == 1
    assert int(next_token(logits, top_k=1, generator=B.Generator(3))[0]) == 1
    with pytest.raises(ValueError, match="temperature"):
        next_token(logits, temperature=-1.0)


def model_and_vocab():
    vocab = Vocab.build_chars("abcdefgh\n")
    return LanguageModel(len(vocab), 16, 2, "lstm", 4, generator=B.Generator(0)), vocab


def test_seeded_and_reproducible():
    m, v = model_and_vocab()
    a = sample(m, v, "abc", 40, 1.0, seed=5)
    assert a.startswith("abc") and len(a) == 43
    assert a == sample(m, v, "abc", 40, 1.0, seed=5)
    assert a != sample(m, v, "abc", 40, 1.0, seed=6)
    assert sample(m, v, "abc", 20, 0.0, seed=1) == sample(m, v, "abc", 20, 0.0, seed=2)
    assert sample(m, v, "", 5, top_p=0.9, top_k=3, seed=0)


def test_n_tokens_cost_n_single_steps():
    m, v = model_and_vocab()
    calls = []
    forward = m.forward

    def counting(ids, state=None):
        calls.append((int(ids.shape[0]), state is None))
        return forward(ids, state)

    m.forward = counting
    out = generate(m, v.encode("abcd"), 10, seed=0)
    assert len(out) == 10
    assert calls == [(4, True)] + [(1, False)] * 9      # prompt once, then one step each


def test_matches_full_rerun():
    """Carrying the state gives the same greedy text as re-running the whole prefix."""
    m, v = model_and_vocab()
    ids = v.encode("hag")
    fast = generate(m, ids, 8, temperature=0.0)
    seq = list(ids)
    for _ in range(8):
        logits, _ = m(np.array([[i] for i in seq]))
        seq.append(int(np.argmax(B.to_numpy(logits)[-1, 0])))
    assert fast == seq[3:]


def test_on_strict_backend():
    m, v = model_and_vocab()
    m.to("strict")
    assert len(sample(m, v, "ab", 6, top_p=0.8, seed=0)) == 8


def test_word_level_sample_separates_prompt_and_words():
    v = Vocab(["i", "can", "see", "you"], level="word")
    m = LanguageModel(len(v), hidden_size=8, embedding_dim=4)
    text = sample(m, v, "i can", 3, seed=0)
    words = text.split(" ")
    assert words[:2] == ["i", "can"] and len(words) == 5, text
    assert all(w in v for w in words)


@pytest.mark.parametrize("dtype, temperatures", [
    ("float32", [1e-40, 1e-37, 1e-30, 1e-10]),
    ("float64", [1e-320, 1e-306, 1e-300, 1e-200]),
])
def test_tiny_temperatures_are_greedy(dtype, temperatures):
    logits = np.array([[0.1, 0.5, 0.3], [40.0, -30.0, 39.0]], dtype=dtype)
    for t in temperatures:
        with np.errstate(over="raise", invalid="raise", divide="raise"):  # no inf, no NaN
            got = next_token(logits, temperature=t, generator=B.Generator(0))
        assert list(B.to_numpy(got)) == [1, 0], t
