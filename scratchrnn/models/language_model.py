"""A sequence-to-sequence language model: tokens in, next-token logits out.

    ids (T, B) ─► Embedding (or one-hot) ─► e (T, B, E)
               ─► RNN/GRU/LSTM stack   ─► h (T, B, H)    carried state (h_n[, c_n])
               ─► Dropout              ─► h̃ (T, B, H)
               ─► Linear               ─► logits (T, B, V)

Backward runs the same chain in reverse; the recurrent layer receives no
gradient for its final state (∂L/∂h_n = 0): under truncated BPTT the state
carried into the next window is a constant there.
"""

from __future__ import annotations

from typing import Any

from .. import backend as B
from ..backend import Array, Generator
from ..cells import cell_name
from ..nn.dropout import Dropout
from ..nn.embedding import Embedding, one_hot
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.recurrent import GRU, LSTM, RNN

# The models' cells, under the names of scratchrnn.cells.CELLS: name -> (layer, its
# keyword arguments). The LSTM with a projection ("lstm_proj") needs a proj_size, which
# the models do not take; use sr.LSTM(..., proj_size=P) directly.
CELLS: dict[str, tuple[type[Module], dict[str, Any]]] = {
    "rnn_tanh": (RNN, {"nonlinearity": "tanh"}), "rnn_relu": (RNN, {"nonlinearity": "relu"}),
    "gru": (GRU, {}), "lstm": (LSTM, {}),
}


def model_cell(cell: object) -> str:
    """A model's cell name: one of :data:`CELLS`, or the alias ``"rnn"`` (``"rnn_tanh"``)."""
    if cell == "lstm_proj":
        raise ValueError("cell: 'lstm_proj' (the LSTM with proj_size) is not one of the "
                         f"models' cells {tuple(CELLS)}; use sr.LSTM(..., proj_size=P)")
    return cell_name(cell, CELLS)


def make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
             bidirectional: bool = False, **kwargs: Any) -> Module:
    """The recurrent layer for a cell name (see :data:`CELLS`; ``"rnn"`` = ``"rnn_tanh"``)."""
    cls, cell_kwargs = CELLS[model_cell(cell)]
    return cls(input_size, hidden_size, num_layers, dropout=dropout,
               bidirectional=bidirectional, **cell_kwargs, **kwargs)


class LanguageModel(Module):
    """Embedding (or one-hot) → recurrent stack → dropout → linear over the vocabulary."""

    kind = "language_model"

    def __init__(self, vocab_size: int, hidden_size: int = 256, num_layers: int = 1,
                 cell: str = "lstm", embedding_dim: int | None = None, dropout: float = 0.0,
                 *, dtype: str = "float32", device: Any = None,
                 generator: Generator | None = None) -> None:
        super().__init__()
        if not isinstance(vocab_size, int) or vocab_size < 1:
            raise ValueError(f"vocab_size: expected a positive int, got {vocab_size!r}")
        cell = model_cell(cell)
        self.config = dict(vocab_size=vocab_size, hidden_size=hidden_size,
                           num_layers=num_layers, cell=cell, embedding_dim=embedding_dim,
                           dropout=dropout, dtype=dtype)
        gen = generator or B.default_generator()
        kw = dict(dtype=dtype, device=device, generator=gen)
        self.vocab_size = vocab_size
        if embedding_dim:
            self.embedding = Embedding(vocab_size, embedding_dim, **kw)
        else:
            self.embedding = None                 # one-hot inputs, as in min-char-rnn
        self.rnn = make_rnn(cell, embedding_dim or vocab_size, hidden_size, num_layers,
                            dropout, **kw)
        self.drop = Dropout(dropout, generator=kw["generator"])
        self.head = Linear(hidden_size, vocab_size, **kw)

    def _embed(self, ids: Array) -> Array:
        if self.embedding is not None:
            return self.embedding(ids)                                     # (T, B, E)
        dtype = self.head.weight.data.dtype
        return one_hot(ids, self.vocab_size, dtype, self.backend)          # (T, B, V)

    def forward(self, ids: Array, state: Any = None) -> tuple[Array, Any]:
        """ids (T, B) -> logits (T, B, V), final state (h_n or (h_n, c_n))."""
        if ids.ndim != 2:
            raise ValueError(f"ids: expected a 2-D array (seq_len, batch), got shape "
                             f"{tuple(ids.shape)}")
        e = self._embed(ids)                                               # (T, B, E)
        h, state = self.rnn(e, state)                                      # (T, B, H)
        return self.head(self.drop(h)), state                              # (T, B, V)

    def backward(self, dlogits: Array) -> None:
        """∂L/∂logits (T, B, V) -> parameter gradients (accumulated)."""
        dh = self.drop.backward(self.head.backward(dlogits))               # (T, B, H)
        de, _ = self.rnn.backward(dh)                                      # (T, B, E)
        if self.embedding is not None:
            self.embedding.backward(de)
