"""The Elman (vanilla) RNN cell.

    h_t = φ(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   φ = tanh or ReLU

Backward, with δ = ∂L/∂h_t (from the output and from step t+1):

    da        = δ ⊙ φ'(a)          tanh' = 1 - h_t²,  ReLU' = [h_t > 0]
    ∂L/∂h_{t-1} = da W_hh
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import backend as B
from ..backend import Array
from .base import Carry, CellParams, CellSpec, StepCache, recurrent_projection
from .base import step_backward as _step_backward
from .base import step_forward as _step_forward


@dataclass(slots=True)
class ElmanCache:
    h: Array  # (B, H) φ's output, reused for φ'


def _forward(xw: Array, carry: Carry, p: CellParams, relu: bool) -> tuple[Carry, ElmanCache]:
    xp = B.namespace(xw)
    a = xw + recurrent_projection(carry[0], p)             # (B, H)
    h = xp.maximum(a, 0.0) if relu else xp.tanh(a)         # (B, H)
    return (h,), ElmanCache(h)


def _backward(dcarry: Carry, k: ElmanCache, p: CellParams, relu: bool
              ) -> tuple[Array, Array, Carry]:
    xp = B.namespace(k.h)
    (dh,) = dcarry
    da = xp.where(k.h > 0, dh, 0.0) if relu else dh * (1.0 - k.h * k.h)  # (B, H)
    return da, da, (da @ p.w_hh,)


def tanh_forward(xw: Array, carry: Carry, p: CellParams) -> tuple[Carry, ElmanCache]:
    return _forward(xw, carry, p, relu=False)


def tanh_backward(dcarry: Carry, k: ElmanCache, p: CellParams) -> tuple[Array, Array, Carry]:
    return _backward(dcarry, k, p, relu=False)


def relu_forward(xw: Array, carry: Carry, p: CellParams) -> tuple[Carry, ElmanCache]:
    return _forward(xw, carry, p, relu=True)


def relu_backward(dcarry: Carry, k: ElmanCache, p: CellParams) -> tuple[Array, Array, Carry]:
    return _backward(dcarry, k, p, relu=True)


ELMAN_TANH = CellSpec("rnn_tanh", gates=1, carry_size=1,
                      forward=tanh_forward, backward=tanh_backward)
ELMAN_RELU = CellSpec("rnn_relu", gates=1, carry_size=1,
                      forward=relu_forward, backward=relu_backward)


def elman_spec(nonlinearity: str) -> CellSpec:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return ELMAN_TANH if nonlinearity == "tanh" else ELMAN_RELU


def rnn_step_forward(x: Array, h_prev: Array, params: CellParams,
                     nonlinearity: str = "tanh") -> tuple[Array, StepCache]:
    """One Elman step: h = φ(x W_ih^T + b_ih + h_prev W_hh^T + b_hh).

    x (B, I), h_prev (B, H) -> h (B, H) and the cache for the backward step.
    """
    (h,), cache = _step_forward(elman_spec(nonlinearity), x, (h_prev,), params)
    return h, cache


def rnn_step_backward(dh: Array, cache: StepCache, nonlinearity: str = "tanh"
                      ) -> tuple[Array, Array, CellParams]:
    """Backward of :func:`rnn_step_forward`: ``dx (B, I), dh_prev (B, H), grads``."""
    dx, (dh_prev,), grads = _step_backward(elman_spec(nonlinearity), (dh,), cache)
    return dx, dh_prev, grads
