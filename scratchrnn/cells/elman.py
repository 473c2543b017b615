"""The Elman (vanilla) RNN cell.

    h_t = φ(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   φ = tanh or ReLU

Backward, with δ = ∂L/∂h_t (from the output and from step t+1):

    da          = δ ⊙ φ'(a)          tanh' = 1 - h_t²,  ReLU' = [h_t > 0]
    ∂L/∂h_{t-1} = da W_hh

The pointwise functions below are these lines over (B, H) blocks (xa and ha
are the input and recurrent parts of a); the engines compile the same
functions into their kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backend import Array
from .base import CellParams, CellSpec, StepCache, relu, relu_prime, tanh
from .base import step_backward as _step_backward
from .base import step_forward as _step_forward


@dataclass(slots=True)
class ElmanCache:
    """The Elman step's gate: ``h`` (B, H), φ's output (φ' is read off it)."""

    h: Array  # (B, H) φ's output, reused for φ'


def tanh_forward(xa, ha, h_prev):
    """h = tanh(xa + ha): the gate block (B, H) of each projection -> ((h,), cache)."""
    h = tanh(xa + ha)
    return (h,), ElmanCache(h)


def tanh_backward(dh, h_prev, k):
    """da = dh ⊙ (1 - h²), the same for both projections; nothing skips W_hh."""
    da = dh * (1.0 - k.h * k.h)
    return (da,), None, (0.0,)


def relu_forward(xa, ha, h_prev):
    """h = relu(xa + ha): the gate block (B, H) of each projection -> ((h,), cache)."""
    h = relu(xa + ha)
    return (h,), ElmanCache(h)


def relu_backward(dh, h_prev, k):
    """da = dh ⊙ relu'(h), the same for both projections; nothing skips W_hh."""
    da = dh * relu_prime(k.h)
    return (da,), None, (0.0,)


ELMAN_TANH = CellSpec("rnn_tanh", gates=1, state=("h",), cache=ElmanCache,
                      forward=tanh_forward, backward=tanh_backward)
ELMAN_RELU = CellSpec("rnn_relu", gates=1, state=("h",), cache=ElmanCache,
                      forward=relu_forward, backward=relu_backward)


def elman_spec(nonlinearity: str) -> CellSpec:
    """The Elman cell for ``nonlinearity`` 'tanh' or 'relu' (ValueError otherwise)."""
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
