"""Batching: TBPTT windows carry across, padding and lengths, seeded shuffles, splits."""

from __future__ import annotations

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.data import (
    LMBatches,
    batch_indices,
    pad_batch,
    split_stream,
    train_val_split,
)


def test_lm_windows_continue_each_stream(backend_name):
    ids = list(range(50))
    lm = LMBatches(ids, batch_size=3, seq_len=4, backend=backend_name)   # n = 16 per stream
    assert len(lm) == 4 and lm.num_tokens == 45
    xs = [B.to_numpy(w.x) for w in lm]
    ys = [B.to_numpy(w.y) for w in lm]
    assert xs[0].shape == (4, 3) and xs[-1].shape == (3, 3)           # 15 inputs = 4+4+4+3
    stream = np.concatenate(xs, axis=0)                                # (15, 3)
    np.testing.assert_array_equal(stream[:, 1], np.arange(16, 31))    # column b continues
    np.testing.assert_array_equal(np.concatenate(ys)[:, 2], np.arange(33, 48))
    for x, y in zip(xs, ys):
        np.testing.assert_array_equal(y[:-1], x[1:])                   # shifted by one


def test_lm_errors():
    with pytest.raises(ValueError, match="too few for batch_size 8"):
        LMBatches([1, 2, 3], batch_size=8, seq_len=4)
    with pytest.raises(ValueError, match="seq_len: expected a positive int, got 0"):
        LMBatches(list(range(100)), 2, 0)


def test_pad_batch(backend_name):
    ids, lengths = pad_batch([[5, 6, 7], [8], [9, 1]], pad_id=0, backend=backend_name)
    np.testing.assert_array_equal(B.to_numpy(ids), [[5, 8, 9], [6, 0, 1], [7, 0, 0]])
    np.testing.assert_array_equal(B.to_numpy(lengths), [3, 1, 2])
    assert B.is_integer(ids) and B.is_integer(lengths)
    with pytest.raises(ValueError, match="at least one sequence"):
        pad_batch([])


def test_shuffle_depends_on_seed_and_epoch_only():
    a = batch_indices(10, 4, seed=1, epoch=0)
    assert a == batch_indices(10, 4, seed=1, epoch=0)
    assert a != batch_indices(10, 4, seed=1, epoch=1)
    assert sorted(sum(a, [])) == list(range(10)) and [len(b) for b in a] == [4, 4, 2]
    assert batch_indices(10, 4, shuffle=False, drop_last=True) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_splits():
    items = list(range(100))
    train, val = train_val_split(items, 0.1, seed=3)
    assert len(val) == 10 and sorted(train + val) == items
    assert (train, val) == train_val_split(items, 0.1, seed=3)
    assert val != train_val_split(items, 0.1, seed=4)[1]
    assert split_stream("abcdefghij", 0.2) == (list("abcdefgh"), list("ij"))
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(items, 1.5)
