"""What every cell shares: parameters, the cell interface, the full step.

A cell is written as its *recurrence*: given the input projection
``xw = x W_ih^T + b_ih`` (B, G·H), already computed for all T steps by one
matrix product before the time loop, and the carried state, it computes the
new state. Its backward returns the gradient of the loss with respect to
that pre-activation twice over:

* ``da_x`` (B, G·H) -- with respect to the input projection ``xw``;
* ``da_h`` (B, G·H) -- with respect to the recurrent projection
  ``h_prev W_hh^T + b_hh``. For Elman and LSTM both are one array; the GRU
  differs in its candidate block, where the reset gate multiplies only the
  recurrent part.

The sequence layer turns those into weight gradients with one product over
all steps after the time loop (``dW_ih = Σ_t da_x_t^T x_t``), and the
per-step functions below do the same for a single step, for reading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import backend as B
from ..backend import Array

Carry = tuple  # (h,) for Elman and GRU, (h, c) for LSTM -- each (B, H)


@dataclass(slots=True)
class CellParams:
    """One direction of one layer, PyTorch's layout (gate blocks stacked on rows)."""

    w_ih: Array         # (G·H, I)
    w_hh: Array         # (G·H, H)
    b_ih: Array | None  # (G·H,)  None when bias=False
    b_hh: Array | None  # (G·H,)


@dataclass(frozen=True)
class CellSpec:
    """A cell as the generic time loop sees it.

    ``forward(xw, carry, p) -> (carry, cache)`` and
    ``backward(dcarry, cache, p) -> (da_x, da_h, dcarry_prev)``, where
    ``dcarry_prev`` already includes the path through ``W_hh``.
    """

    name: str
    gates: int        # G: 1 Elman, 3 GRU, 4 LSTM
    carry_size: int   # 1: (h,), 2: (h, c)
    forward: Callable[..., tuple[Carry, Any]]
    backward: Callable[..., tuple[Array, Array, Carry]]


def sigmoid(a: Array) -> Array:
    """σ(a) = 1 / (1 + e^-a), computed as (1 + tanh(a/2)) / 2: no overflow for any a."""
    xp = B.namespace(a)
    return 0.5 * (xp.tanh(0.5 * a) + 1.0)


def recurrent_projection(h_prev: Array, p: CellParams) -> Array:
    """h_prev W_hh^T + b_hh   (B, G·H)"""
    hw = h_prev @ p.w_hh.T
    return hw if p.b_hh is None else hw + p.b_hh


# --------------------------------------------------------------------------- #
# The full single step (input projection + recurrence), for people studying
# the math and for the step-level gradient tests.
# --------------------------------------------------------------------------- #
@dataclass(slots=True)
class StepCache:
    x: Array          # (B, I)
    params: CellParams
    recur: Any        # the cell's own cache
    h_prev: Array     # (B, H)


def step_forward(spec: CellSpec, x: Array, carry: Carry, p: CellParams) -> tuple[Carry, StepCache]:
    """xw = x W_ih^T + b_ih, then the cell's recurrence."""
    xw = x @ p.w_ih.T
    if p.b_ih is not None:
        xw = xw + p.b_ih                                       # (B, G·H)
    new_carry, recur = spec.forward(xw, carry, p)
    return new_carry, StepCache(x, p, recur, carry[0])


def step_backward(spec: CellSpec, dcarry: Carry, cache: StepCache
                  ) -> tuple[Array, Carry, CellParams]:
    """Returns ``dx`` (B, I), ``dcarry_prev`` and the parameter gradients."""
    xp = B.namespace(cache.x)
    p = cache.params
    da_x, da_h, dcarry_prev = spec.backward(dcarry, cache.recur, p)
    grads = CellParams(
        w_ih=da_x.T @ cache.x,                                 # (G·H, I)
        w_hh=da_h.T @ cache.h_prev,                            # (G·H, H)
        b_ih=None if p.b_ih is None else xp.sum(da_x, axis=0),  # (G·H,)
        b_hh=None if p.b_hh is None else xp.sum(da_h, axis=0),
    )
    return da_x @ p.w_ih, dcarry_prev, grads
