"""Vocabularies: build, encode/decode, unknown tokens, save/load."""

from __future__ import annotations

import json

import pytest

from scratchrnn.data import Vocab, words


def test_char_round_trip():
    v = Vocab.build_chars("hello world")
    assert v.itos == sorted(set("hello world"))
    ids = v.encode("hello")
    assert v.decode(ids) == "hello"
    assert ids[2] == ids[3] == v.stoi["l"]


def test_unknown_token():
    v = Vocab.build_chars("abc", unk="?")
    assert v.unk_id == 0
    assert v.encode("abz") == [v.stoi["a"], v.stoi["b"], 0]
    strict = Vocab.build_chars("abc")
    with pytest.raises(ValueError, match="token 'z' is not in the vocabulary"):
        strict.encode("az")
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, 3\), got 7"):
        strict.decode([7])


def test_words_frequency_order_and_limits():
    text = "the cat and the dog. The end!"
    assert words(text)[:3] == ["the", "cat", "and"]
    v = Vocab.build_words(text, max_size=2)
    assert v.itos == ["<unk>", "the", "!"]      # ties alphabetical: "!" < "."
    assert v.encode("the zebra") == [1, 0]
    v2 = Vocab.build_words([text, "cat cat"], min_freq=2, pad="<pad>")
    assert v2.itos[:2] == ["<pad>", "<unk>"] and v2.pad_id == 0 and "cat" in v2
    assert v2.decode(v2.encode("the cat")) == "the cat"


def test_save_load_json():
    v = Vocab.build_words("a b c a", unk="<unk>", pad="<pad>")
    again = Vocab.from_dict(json.loads(json.dumps(v.to_dict())))
    assert again == v and again.encode("a q") == v.encode("a q")
    with pytest.raises(ValueError, match="vocab: expected keys"):
        Vocab.from_dict({"tokens": []})
    with pytest.raises(ValueError, match="level"):
        Vocab(["a"], level="byte")
