"""The gated recurrent unit, with PyTorch's equations (gate order r, z, n).

    [xr, xz, xn] = x_t W_ih^T + b_ih        [hr, hz, hn] = h_{t-1} W_hh^T + b_hh
    r = σ(xr + hr)                          reset gate
    z = σ(xz + hz)                          update gate
    n = tanh(xn + r ⊙ hn)                   candidate; r scales W_hn h + b_hn
    h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}         computed as n + z ⊙ (h_{t-1} - n)

Backward, with δ = ∂L/∂h_t:

    dan = δ ⊙ (1 - z) ⊙ (1 - n²)            tanh' = 1 - n²
    dar = dan ⊙ hn ⊙ r(1 - r)               σ' = σ(1 - σ)
    daz = δ ⊙ (h_{t-1} - n) ⊙ z(1 - z)
    da_x = [dar, daz, dan]      da_h = [dar, daz, dan ⊙ r]
    ∂L/∂h_{t-1} = da_h W_hh + δ ⊙ z

``gru_forward``/``gru_backward`` below are these lines, pointwise over (B, H)
blocks; the engines compile the same two functions into their kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backend import Array
from .base import CellParams, CellSpec, StepCache, sigmoid, tanh
from .base import step_backward as _step_backward
from .base import step_forward as _step_forward


@dataclass(slots=True)
class GRUCache:
    """The GRU step's gates, each (B, H): ``r`` reset, ``z`` update, ``n`` candidate,
    ``hn`` = h_{t-1} W_hn^T + b_hn (before the reset gate scales it)."""

    r: Array       # (B, H) reset gate
    z: Array       # (B, H) update gate
    n: Array       # (B, H) candidate
    hn: Array      # (B, H) W_hn h_prev + b_hn, before the reset gate


def gru_forward(xr, xz, xn, hr, hz, hn, h_prev):
    """r, z, n from the gate blocks (B, H); h = (1 - z) ⊙ n + z ⊙ h_prev -> ((h,), cache)."""
    r = sigmoid(xr + hr)
    z = sigmoid(xz + hz)
    n = tanh(xn + r * hn)
    h = n + z * (h_prev - n)
    return (h,), GRUCache(r, z, n, hn)


def gru_backward(dh, h_prev, k):
    """(da_x blocks), (da_h blocks: the candidate's scaled by r), (dh ⊙ z, the direct part)."""
    dan = dh * (1.0 - k.z) * (1.0 - k.n * k.n)
    dar = dan * k.hn * k.r * (1.0 - k.r)
    daz = dh * (h_prev - k.n) * k.z * (1.0 - k.z)
    return (dar, daz, dan), (dar, daz, dan * k.r), (dh * k.z,)


GRU_CELL = CellSpec("gru", gates=3, state=("h",), cache=GRUCache,
                    forward=gru_forward, backward=gru_backward, separate_h_grad=True)


def gru_step_forward(x: Array, h_prev: Array, params: CellParams) -> tuple[Array, StepCache]:
    """One GRU step (equations in the module docstring): x (B, I), h_prev (B, H) -> h (B, H)."""
    (h,), cache = _step_forward(GRU_CELL, x, (h_prev,), params)
    return h, cache


def gru_step_backward(dh: Array, cache: StepCache) -> tuple[Array, Array, CellParams]:
    """Backward of :func:`gru_step_forward`: ``dx (B, I), dh_prev (B, H), grads``."""
    dx, (dh_prev,), grads = _step_backward(GRU_CELL, (dh,), cache)
    return dx, dh_prev, grads
