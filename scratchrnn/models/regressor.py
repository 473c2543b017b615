"""A regressor for real-valued series, many-to-one or many-to-many.

    x (T, B, I) ─► RNN/GRU/LSTM ─► h (T, B, H) ─┬─ many-to-many: Linear ─► y (T, B, O)
                                                └─ many-to-one: last valid h (B, H),
                                                   Linear ─► y (B, O)
"""

from __future__ import annotations

from typing import Any

from .. import backend as B
from ..backend import Array, Generator
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.pooling import LastPool
from .language_model import make_rnn, model_cell


class SequenceRegressor(Module):
    """Real-valued sequences -> real-valued outputs per sequence or per step."""

    kind = "regressor"

    def __init__(self, input_size: int, output_size: int = 1, hidden_size: int = 64,
                 num_layers: int = 1, cell: str = "lstm", many_to_many: bool = False,
                 dropout: float = 0.0, *, dtype: str = "float32", device: Any = None,
                 generator: Generator | None = None) -> None:
        super().__init__()
        cell = model_cell(cell)
        self.config = dict(input_size=input_size, output_size=output_size,
                           hidden_size=hidden_size, num_layers=num_layers, cell=cell,
                           many_to_many=many_to_many, dropout=dropout, dtype=dtype)
        kw = dict(dtype=dtype, device=device, generator=generator or B.default_generator())
        self.many_to_many = many_to_many
        self.rnn = make_rnn(cell, input_size, hidden_size, num_layers, dropout, **kw)
        self.pool = None if many_to_many else LastPool()
        self.head = Linear(hidden_size, output_size, **kw)

    def forward(self, x: Array, lengths: Any = None) -> Array:
        """x (T, B, I) -> y (T, B, O) (many-to-many) or (B, O)."""
        h, _ = self.rnn(x, None, lengths)                                  # (T, B, H)
        if self.pool is not None:
            h = self.pool(h, lengths)                                      # (B, H)
        return self.head(h)

    def backward(self, dy: Array) -> Array:
        """∂L/∂y -> ∂L/∂x (T, B, I); parameter gradients accumulate."""
        dh = self.head.backward(dy)
        if self.pool is not None:
            dh = self.pool.backward(dh)                                    # (T, B, H)
        dx, _ = self.rnn.backward(dh)
        return dx
