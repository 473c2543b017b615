"""The long short-term memory cell, with PyTorch's equations (gate order i, f, g, o).

    a = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh        (B, 4H)
    i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

Backward, with δh = ∂L/∂h_t and δc = ∂L/∂c_t from step t+1:

    do = δh ⊙ tanh(c_t)
    dc = δc + δh ⊙ o ⊙ (1 - tanh²(c_t))
    di = dc ⊙ g     df = dc ⊙ c_{t-1}     dg = dc ⊙ i
    da = [di ⊙ i(1-i), df ⊙ f(1-f), dg ⊙ (1-g²), do ⊙ o(1-o)]
    ∂L/∂h_{t-1} = da W_hh        ∂L/∂c_{t-1} = dc ⊙ f
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import backend as B
from ..backend import Array
from .base import Carry, CellParams, CellSpec, StepCache, recurrent_projection, sigmoid
from .base import step_backward as _step_backward
from .base import step_forward as _step_forward


@dataclass(slots=True)
class LSTMCache:
    c_prev: Array  # (B, H)
    i: Array       # (B, H) input gate
    f: Array       # (B, H) forget gate
    g: Array       # (B, H) cell candidate
    o: Array       # (B, H) output gate
    tanh_c: Array  # (B, H) tanh(c_t), reused for tanh'


def lstm_forward(xw: Array, carry: Carry, p: CellParams) -> tuple[Carry, LSTMCache]:
    xp = B.namespace(xw)
    h_prev, c_prev = carry
    H = h_prev.shape[1]
    a = xw + recurrent_projection(h_prev, p)                  # (B, 4H)
    i_f = sigmoid(a[:, :2 * H])                               # (B, 2H): i and f at once
    i, f = i_f[:, :H], i_f[:, H:]
    g = xp.tanh(a[:, 2 * H:3 * H])
    o = sigmoid(a[:, 3 * H:])
    c = f * c_prev + i * g                                    # (B, H)
    tanh_c = xp.tanh(c)
    h = o * tanh_c                                            # (B, H)
    return (h, c), LSTMCache(c_prev, i, f, g, o, tanh_c)


def lstm_backward(dcarry: Carry, k: LSTMCache, p: CellParams) -> tuple[Array, Array, Carry]:
    xp = B.namespace(k.c_prev)
    dh, dc_next = dcarry
    do = dh * k.tanh_c
    dc = dc_next + dh * k.o * (1.0 - k.tanh_c * k.tanh_c)     # (B, H)
    da = xp.concat([
        dc * k.g * k.i * (1.0 - k.i),                          # input gate
        dc * k.c_prev * k.f * (1.0 - k.f),                     # forget gate
        dc * k.i * (1.0 - k.g * k.g),                          # candidate
        do * k.o * (1.0 - k.o),                                # output gate
    ], axis=1)                                                 # (B, 4H)
    return da, da, (da @ p.w_hh, dc * k.f)


LSTM_CELL = CellSpec("lstm", gates=4, carry_size=2, forward=lstm_forward, backward=lstm_backward)


def lstm_step_forward(x: Array, h_prev: Array, c_prev: Array, params: CellParams
                      ) -> tuple[Array, Array, StepCache]:
    """One LSTM step (equations in the module docstring): x (B, I) -> h, c (B, H)."""
    (h, c), cache = _step_forward(LSTM_CELL, x, (h_prev, c_prev), params)
    return h, c, cache


def lstm_step_backward(dh: Array, dc: Array, cache: StepCache
                       ) -> tuple[Array, Array, Array, CellParams]:
    """Backward of :func:`lstm_step_forward`: ``dx, dh_prev, dc_prev, grads``."""
    dx, (dh_prev, dc_prev), grads = _step_backward(LSTM_CELL, (dh, dc), cache)
    return dx, dh_prev, dc_prev, grads
