"""The engine interface: one direction of one layer over a whole sequence.

An engine runs the time loop of any cell (``scratchrnn.cells``):

    forward(cell, x, carry, p, mask, reverse) -> out, final carry, tape
    backward(tape, d_out, d_carry, p, record) -> dx, d_carry0, parameter gradients

with x (T, B, I), carry a tuple of (B, P) / (B, H) arrays, ``mask`` (T, B, 1)
bool (t < length[b]; None when every step is valid), out (T, B, P). The tape
is what forward keeps for backward; it names the engine that made it
(``tape.engine``), so a layer calls ``tape.engine.backward(tape, ...)`` and
never asks what kind of tape it holds. With ``record``, backward leaves
∂L/∂h_t (T, B, P) in ``tape.hidden_grads``.

Every engine gives the reference engine's results up to float rounding
(``tests/test_engines.py`` checks them all on one grid).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ..backend import Array
from ..cells.base import Carry, CellParams, CellSpec


class Engine(ABC):
    """A way to run the time loop. Subclasses set ``name`` and implement the pair."""

    name: str = "?"

    def supports(self, x: Array) -> bool:
        """Whether this engine can run on arrays like ``x`` (library, dtype)."""
        return True

    @abstractmethod
    def forward(self, cell: CellSpec, x: Array, carry: Carry, p: CellParams,
                mask: Array | None = None, reverse: bool = False) -> tuple[Array, Carry, Any]:
        """Run ``cell`` over x (T, B, I) from ``carry``; returns out (T, B, P), carry_T, tape."""

    @abstractmethod
    def backward(self, tape: Any, dout: Array | None, dcarry: Carry, p: CellParams,
                 record: bool = False) -> tuple[Array, Carry, CellParams]:
        """BPTT through one forward: ∂L/∂x (T, B, I), ∂L/∂carry_0, the parameter gradients.

        ``dout`` (T, B, P) is ∂L/∂out (None for zero), ``dcarry`` ∂L/∂carry_T.
        """

    def __repr__(self) -> str:
        return f"<engine {self.name!r}>"
