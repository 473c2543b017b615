"""Batches for the two kinds of training data.

**Language modelling (truncated BPTT).** The token stream of length N is cut
into ``batch_size`` contiguous streams of n = ⌊N / B⌋ tokens, laid out
time-major as ``streams`` (n, B): column b is tokens ``b·n … b·n + n - 1``.
Window w holds inputs ``streams[w·L : w·L + L]`` and targets shifted by one,
``streams[w·L + 1 : w·L + L + 1]`` (the last window may be shorter). Because
row t + L of window w continues row t of window w - 1 in every column, the
final hidden state of one window is the right initial state of the next.

**Sequences of different lengths.** :func:`pad_batch` pads a list of token
lists to the longest one, time-major (T, B), and returns the ``lengths``
vector the recurrent layers take. :func:`batch_indices` orders examples into
batches, shuffled by a permutation that depends only on (seed, epoch), so a
resumed run sees the same order as an uninterrupted one.

**Many processes.** :func:`shard_range` gives rank r of N its contiguous share
[lo, hi) of n items, as even as can be; :meth:`LMBatches.shard` keeps rank r's
share of the B streams, so the N shares of a window are that window.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import backend as B
from ..backend import Array, Backend

T_ = TypeVar("T_")


@dataclass(slots=True)
class LMWindow:
    """One TBPTT window."""

    x: Array   # (L, B) int input ids
    y: Array   # (L, B) int target ids (x shifted one step ahead)


class LMBatches:
    """The TBPTT windows of one token stream (see the module docstring)."""

    def __init__(self, ids: Sequence[int] | Array, batch_size: int, seq_len: int,
                 backend: str | Backend | None = None) -> None:
        for name, v in (("batch_size", batch_size), ("seq_len", seq_len)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        be = B.get_backend(backend)
        data = be.asarray(B.to_numpy(ids) if B.is_array(ids) else list(ids))
        if data.ndim != 1 or not B.is_integer(data):
            raise ValueError(f"ids: expected a 1-D sequence of ints, got shape "
                             f"{tuple(data.shape)}, dtype {B.dtype_name(data)}")
        N = data.shape[0]
        n = N // batch_size
        if n < 2:
            raise ValueError(f"ids: {N} tokens are too few for batch_size {batch_size} "
                             f"(need at least {2 * batch_size})")
        xp = be.xp
        self.streams = xp.permute_dims(xp.reshape(data[:n * batch_size], (batch_size, n)),
                                       (1, 0))                               # (n, B)
        self.batch_size, self.seq_len = batch_size, seq_len
        self.starts = list(range(0, n - 1, seq_len))

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def num_tokens(self) -> int:
        """Target tokens per pass (every window's (L, B) counted)."""
        return (self.streams.shape[0] - 1) * self.batch_size

    def window(self, i: int) -> LMWindow:
        """Window ``i``: inputs (L, streams) and the targets one step ahead."""
        s = self.starts[i]
        L = min(self.seq_len, self.streams.shape[0] - 1 - s)
        return LMWindow(self.streams[s:s + L, ...], self.streams[s + 1:s + L + 1, ...])

    def __iter__(self) -> Iterator[LMWindow]:
        for i in range(len(self)):
            yield self.window(i)

    def shard(self, rank: int, size: int) -> LMBatches:
        """Rank ``rank`` of ``size``'s streams: columns [lo, hi) of every window."""
        lo, hi = shard_range(self.batch_size, rank, size)
        if hi == lo:
            raise ValueError(f"batch_size: expected at least one stream per process "
                             f"({size} processes), got {self.batch_size}")
        part = copy.copy(self)
        part.streams, part.batch_size = self.streams[:, lo:hi], hi - lo   # (n, hi - lo)
        return part


def shard_range(n: int, rank: int, size: int) -> tuple[int, int]:
    """Rank ``rank`` of ``size``'s share [lo, hi) of n items: lo = ⌊n·r/N⌋, hi = ⌊n·(r+1)/N⌋."""
    if not 0 <= rank < size:
        raise ValueError(f"rank: expected 0 <= rank < size = {size}, got {rank}")
    return n * rank // size, n * (rank + 1) // size


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int = 0,
              backend: str | Backend | None = None) -> tuple[Array, Array]:
    """Token lists -> ids (T, B) padded with ``pad_id``, lengths (B,) (both int64)."""
    if len(seqs) == 0:
        raise ValueError("seqs: expected at least one sequence, got none")
    lengths = [len(s) for s in seqs]
    T = max(lengths)
    rows = [[int(s[t]) if t < len(s) else pad_id for s in seqs] for t in range(T)]
    be = B.get_backend(backend)
    ids = be.asarray(rows) if T else be.xp.zeros((0, len(seqs)), dtype=be.xp.int64,
                                                 device=be.device)
    return ids, be.asarray(lengths)


def permutation(n: int, seed: int, epoch: int = 0) -> list[int]:
    """A permutation of range(n) that depends only on (seed, epoch)."""
    rng = B.Generator([int(seed), int(epoch)])
    return [int(i) for i in rng.host.permutation(n)]


def batch_indices(n: int, batch_size: int, shuffle: bool = True, seed: int = 0,
                  epoch: int = 0, drop_last: bool = False) -> list[list[int]]:
    """Example indices grouped into batches (shuffled per (seed, epoch) if asked)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    order = permutation(n, seed, epoch) if shuffle else list(range(n))
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def train_val_split(items: Sequence[T_], val_fraction: float = 0.1, seed: int = 0,
                    shuffle: bool = True) -> tuple[list[T_], list[T_]]:
    """Split into (train, validation); the validation part is ``val_fraction`` of the
    items (at least one when there are two or more), chosen by a seeded shuffle."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a value in [0, 1), got {val_fraction!r}")
    n = len(items)
    order = permutation(n, seed, -1 % 2**31) if shuffle else list(range(n))
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = max(1, n_val)
    val = [items[i] for i in order[n - n_val:]]
    train = [items[i] for i in order[:n - n_val]]
    return train, val


def split_stream(ids: Sequence[Any], val_fraction: float = 0.1) -> tuple[list, list]:
    """Split a token stream into its first (1 - f) and last f parts (no shuffle:
    language-model validation text must be contiguous)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a value in [0, 1), got {val_fraction!r}")
    cut = len(ids) - int(len(ids) * val_fraction)
    return list(ids[:cut]), list(ids[cut:])
