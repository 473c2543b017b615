"""The gated recurrent unit, with PyTorch's equations (gate order r, z, n).

    [xr, xz, xn] = x_t W_ih^T + b_ih        [hr, hz, hn] = h_{t-1} W_hh^T + b_hh
    r = σ(xr + hr)                          reset gate
    z = σ(xz + hz)                          update gate
    n = tanh(xn + r ⊙ hn)                   candidate; r scales W_hn h + b_hn
    h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

Backward, with δ = ∂L/∂h_t:

    dn = δ ⊙ (1 - z)            dz = δ ⊙ (h_{t-1} - n)
    dan = dn ⊙ (1 - n²)         dr = dan ⊙ hn
    dar = dr ⊙ r(1 - r)         daz = dz ⊙ z(1 - z)
    da_x = [dar, daz, dan]      da_h = [dar, daz, dan ⊙ r]
    ∂L/∂h_{t-1} = da_h W_hh + δ ⊙ z
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import backend as B
from ..backend import Array
from .base import Carry, CellParams, CellSpec, StepCache, recurrent_projection, sigmoid
from .base import step_backward as _step_backward
from .base import step_forward as _step_forward


@dataclass(slots=True)
class GRUCache:
    h_prev: Array  # (B, H)
    r: Array       # (B, H) reset gate
    z: Array       # (B, H) update gate
    n: Array       # (B, H) candidate
    hn: Array      # (B, H) W_hn h_prev + b_hn, before the reset gate


def gru_forward(xw: Array, carry: Carry, p: CellParams) -> tuple[Carry, GRUCache]:
    xp = B.namespace(xw)
    (h_prev,) = carry
    H = h_prev.shape[1]
    hw = recurrent_projection(h_prev, p)                      # (B, 3H)
    rz = sigmoid(xw[:, :2 * H] + hw[:, :2 * H])               # (B, 2H): both gates at once
    r, z = rz[:, :H], rz[:, H:]                               # (B, H) each
    hn = hw[:, 2 * H:]                                        # (B, H)
    n = xp.tanh(xw[:, 2 * H:] + r * hn)                       # (B, H)
    h = n + z * (h_prev - n)                                  # (1-z) n + z h_prev
    return (h,), GRUCache(h_prev, r, z, n, hn)


def gru_backward(dcarry: Carry, k: GRUCache, p: CellParams) -> tuple[Array, Array, Carry]:
    xp = B.namespace(k.h_prev)
    (dh,) = dcarry
    dn = dh * (1.0 - k.z)
    dz = dh * (k.h_prev - k.n)
    dan = dn * (1.0 - k.n * k.n)                              # tanh' = 1 - n²
    dar = dan * k.hn * k.r * (1.0 - k.r)                      # σ' = σ(1 - σ)
    daz = dz * k.z * (1.0 - k.z)
    da_x = xp.concat([dar, daz, dan], axis=1)                 # (B, 3H)
    da_h = xp.concat([dar, daz, dan * k.r], axis=1)           # (B, 3H)
    dh_prev = da_h @ p.w_hh + dh * k.z                        # (B, H)
    return da_x, da_h, (dh_prev,)


GRU_CELL = CellSpec("gru", gates=3, carry_size=1, forward=gru_forward, backward=gru_backward)


def gru_step_forward(x: Array, h_prev: Array, params: CellParams) -> tuple[Array, StepCache]:
    """One GRU step (equations in the module docstring): x (B, I), h_prev (B, H) -> h (B, H)."""
    (h,), cache = _step_forward(GRU_CELL, x, (h_prev,), params)
    return h, cache


def gru_step_backward(dh: Array, cache: StepCache) -> tuple[Array, Array, CellParams]:
    """Backward of :func:`gru_step_forward`: ``dx (B, I), dh_prev (B, H), grads``."""
    dx, (dh_prev,), grads = _step_backward(GRU_CELL, (dh,), cache)
    return dx, dh_prev, grads
