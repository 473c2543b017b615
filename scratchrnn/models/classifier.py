"""A many-to-one sequence classifier.

    x (T, B) ids ─► Embedding/one-hot ─► (T, B, E)        (or x (T, B, I) real-valued)
                 ─► RNN/GRU/LSTM      ─► h (T, B, D·H)   padded steps masked by lengths
                 ─► pooling           ─► p (B, D·H)      last valid | mean | attention
                 ─► Dropout, Linear   ─► logits (B, C)
"""

from __future__ import annotations

from typing import Any

from .. import backend as B
from ..backend import Array, Generator
from ..nn.dropout import Dropout
from ..nn.embedding import Embedding, one_hot
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.pooling import AttentionPool, LastPool, MeanPool
from .language_model import make_rnn, model_cell

POOLINGS = ("last", "mean", "attention")


class SequenceClassifier(Module):
    """Token ids (or real vectors) of varying length -> class logits."""

    kind = "classifier"

    def __init__(self, num_classes: int, vocab_size: int | None = None,
                 input_size: int | None = None, hidden_size: int = 128, num_layers: int = 1,
                 cell: str = "gru", embedding_dim: int | None = None, pooling: str = "last",
                 bidirectional: bool = False, dropout: float = 0.0, *, dtype: str = "float32",
                 device: Any = None, generator: Generator | None = None) -> None:
        super().__init__()
        if (vocab_size is None) == (input_size is None):
            raise ValueError(f"vocab_size, input_size: expected exactly one (token ids or "
                             f"real vectors), got {vocab_size!r} and {input_size!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: expected one of {POOLINGS}, got {pooling!r}")
        cell = model_cell(cell)
        self.config = dict(num_classes=num_classes, vocab_size=vocab_size,
                           input_size=input_size, hidden_size=hidden_size,
                           num_layers=num_layers, cell=cell, embedding_dim=embedding_dim,
                           pooling=pooling, bidirectional=bidirectional, dropout=dropout,
                           dtype=dtype)
        kw = dict(dtype=dtype, device=device, generator=generator or B.default_generator())
        self.vocab_size = vocab_size
        self.embedding = Embedding(vocab_size, embedding_dim, **kw) \
            if vocab_size and embedding_dim else None
        rnn_in = input_size or embedding_dim or vocab_size
        self.rnn = make_rnn(cell, rnn_in, hidden_size, num_layers, dropout, bidirectional, **kw)
        width = hidden_size * (2 if bidirectional else 1)
        if pooling == "attention":
            self.pool = AttentionPool(width, **kw)
        else:
            self.pool = LastPool() if pooling == "last" else MeanPool()
        self.drop = Dropout(dropout, generator=kw["generator"])
        self.head = Linear(width, num_classes, **kw)

    def _embed(self, x: Array) -> Array:
        if self.vocab_size is None:
            return x                                                       # (T, B, I)
        if x.ndim != 2:
            raise ValueError(f"x: expected token ids (seq_len, batch), got shape "
                             f"{tuple(x.shape)}")
        if self.embedding is not None:
            return self.embedding(x)                                       # (T, B, E)
        return one_hot(x, self.vocab_size, self.head.weight.data.dtype, self.backend)

    def forward(self, x: Array, lengths: Any = None) -> Array:
        """x (T, B) ids or (T, B, I), lengths (B,) -> logits (B, C)."""
        h, _ = self.rnn(self._embed(x), None, lengths)                     # (T, B, D·H)
        pooled = self.pool(h, lengths)                                     # (B, D·H)
        return self.head(self.drop(pooled))                                # (B, C)

    def backward(self, dlogits: Array) -> Array | None:
        """∂L/∂logits (B, C) -> ∂L/∂x for real-valued inputs (None for ids)."""
        dpooled = self.drop.backward(self.head.backward(dlogits))         # (B, D·H)
        dh = self.pool.backward(dpooled)                                   # (T, B, D·H)
        dx, _ = self.rnn.backward(dh)                                      # (T, B, E)
        if self.embedding is not None:
            self.embedding.backward(dx)
        return dx if self.vocab_size is None else None
