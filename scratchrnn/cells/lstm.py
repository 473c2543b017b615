"""The long short-term memory cell, with PyTorch's equations (gate order i, f, g, o).

    [xi, xf, xg, xo] = x_t W_ih^T + b_ih        [hi, hf, hg, ho] = h_{t-1} W_hh^T + b_hh
    i = σ(xi + hi)   f = σ(xf + hf)   g = tanh(xg + hg)   o = σ(xo + ho)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)                  with proj_size: h_t = (o ⊙ tanh(c_t)) W_hr^T

Backward, with δh = ∂L/∂h_t (∂L/∂(o ⊙ tanh c_t) = δh W_hr with a projection)
and δc = ∂L/∂c_t from step t+1:

    do = δh ⊙ tanh(c_t)
    dc = δc + δh ⊙ o ⊙ (1 - tanh²(c_t))
    da = [dc ⊙ g ⊙ i(1-i), dc ⊙ c_{t-1} ⊙ f(1-f), dc ⊙ i ⊙ (1-g²), do ⊙ o(1-o)]
    ∂L/∂h_{t-1} = da W_hh        ∂L/∂c_{t-1} = dc ⊙ f

``lstm_forward``/``lstm_backward`` below are these lines, pointwise over (B, H)
blocks; the engines compile the same two functions into their kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backend import Array
from .base import CellParams, CellSpec, StepCache, sigmoid, tanh
from .base import step_backward as _step_backward
from .base import step_forward as _step_forward


@dataclass(slots=True)
class LSTMCache:
    """The LSTM step's gates, each (B, H): ``i`` input, ``f`` forget, ``g`` cell
    candidate, ``o`` output, and ``tanh_c`` = tanh(c_t) (reused for tanh')."""

    i: Array       # (B, H) input gate
    f: Array       # (B, H) forget gate
    g: Array       # (B, H) cell candidate
    o: Array       # (B, H) output gate
    tanh_c: Array  # (B, H) tanh(c_t), reused for tanh'


def lstm_forward(xi, xf, xg, xo, hi, hf, hg, ho, h_prev, c_prev):
    """i, f, g, o from the gate blocks (B, H); c = f ⊙ c_prev + i ⊙ g, h = o ⊙ tanh c."""
    i = sigmoid(xi + hi)
    f = sigmoid(xf + hf)
    g = tanh(xg + hg)
    o = sigmoid(xo + ho)
    c = f * c_prev + i * g
    tanh_c = tanh(c)
    h = o * tanh_c
    return (h, c), LSTMCache(i, f, g, o, tanh_c)


def lstm_backward(dh, dc, h_prev, c_prev, k):
    """(dai, daf, dag, dao), None (same for W_hh), (direct dh_prev 0, dc_prev = dc ⊙ f)."""
    do = dh * k.tanh_c
    dc = dc + dh * k.o * (1.0 - k.tanh_c * k.tanh_c)
    dai = dc * k.g * k.i * (1.0 - k.i)
    daf = dc * c_prev * k.f * (1.0 - k.f)
    dag = dc * k.i * (1.0 - k.g * k.g)
    dao = do * k.o * (1.0 - k.o)
    return (dai, daf, dag, dao), None, (0.0, dc * k.f)


LSTM_CELL = CellSpec("lstm", gates=4, state=("h", "c"), cache=LSTMCache,
                     forward=lstm_forward, backward=lstm_backward)
# The same cell with PyTorch's proj_size: h_t = (o ⊙ tanh c_t) W_hr^T, of size P < H.
LSTM_PROJ_CELL = CellSpec("lstm_proj", gates=4, state=("h", "c"), cache=LSTMCache,
                          forward=lstm_forward, backward=lstm_backward, projection=True)


def lstm_step_forward(x: Array, h_prev: Array, c_prev: Array, params: CellParams
                      ) -> tuple[Array, Array, StepCache]:
    """One LSTM step (equations in the module docstring): x (B, I) -> h, c (B, H).

    With ``params.w_hr`` set, the step has PyTorch's projection and h is (B, P).
    """
    cell = LSTM_CELL if params.w_hr is None else LSTM_PROJ_CELL
    (h, c), cache = _step_forward(cell, x, (h_prev, c_prev), params)
    return h, c, cache


def lstm_step_backward(dh: Array, dc: Array, cache: StepCache
                       ) -> tuple[Array, Array, Array, CellParams]:
    """Backward of :func:`lstm_step_forward`: ``dx, dh_prev, dc_prev, grads``."""
    projected = isinstance(cache, StepCache) and cache.params.w_hr is not None
    cell = LSTM_PROJ_CELL if projected else LSTM_CELL       # (a bad cache: refused there)
    dx, (dh_prev, dc_prev), grads = _step_backward(cell, (dh, dc), cache)
    return dx, dh_prev, dc_prev, grads
