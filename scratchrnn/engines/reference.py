"""The reference engine: the time loop to read, for any cell and either direction.

Forward over a sequence x (T, B, I) for one direction of one layer:

    xw = x W_ih^T + b_ih                  one matrix product for all T steps
    for t in 0..T-1 (T-1..0 in reverse):  only the recurrence is sequential
        carry_t, cache_t = recurrence(xw_t, carry_{t-1})     (cells/base.py)
        where t >= length[b]:  carry_t[b] = carry_{t-1}[b],  out_t[b] = 0

so a padded sequence's state stops at its last valid step (forward) or is
still the initial state until its last valid step comes (reverse).

Backward runs the same loop in the opposite order ("backprop into h"),
carrying ``dcarry`` = ∂L/∂carry back through time, and only the recurrent
product ``da_h W_hh`` stays inside the loop; after it, the weight gradients
and ∂L/∂x are one product each over all steps:

    dW_ih = Σ_t da_x_t^T x_t      dW_hh = Σ_t da_h_t^T h_{t-1}      dx = da_x W_ih
    dW_hr = Σ_t δh_t^T m_t        (a cell with an output projection)

Written against the Array API only: it runs on NumPy, CuPy and
array_api_strict alike, and every other engine is tested equal to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import backend as B
from ..backend import Array
from ..cells.base import (
    Carry,
    CellParams,
    CellSpec,
    RecurrenceCache,
    recurrence_backward,
    recurrence_forward,
)
from .base import Engine


@dataclass(slots=True)
class Tape:
    """What one direction of one layer keeps from forward for backward."""

    engine: Engine
    cell: CellSpec
    x: Array                       # (T, B, I) the layer's input
    h_prev: Array                  # (T, B, P) the hidden state entering step t
    caches: list[RecurrenceCache]  # T step caches, indexed by time t
    mask: Array | None             # (T, B, 1) bool: t < length[b]; None = all valid
    reverse: bool
    hidden_grads: Array | None = field(default=None)  # (T, B, P) ∂L/∂h_t, if recorded


def time_order(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def flat(a: Array) -> Array:
    """(T, B, K) -> (T·B, K) for one big matrix product."""
    return B.namespace(a).reshape(a, (a.shape[0] * a.shape[1], a.shape[2]))


def input_projection(x: Array, p: CellParams) -> Array:
    """x W_ih^T + b_ih for every step at once: (T, B, I) -> (T, B, G·H)."""
    xp = B.namespace(x)
    T, Bn, _ = x.shape
    xw = flat(x) @ p.w_ih.T
    if p.b_ih is not None:
        xw = xw + p.b_ih
    return xp.reshape(xw, (T, Bn, p.w_ih.shape[0]))


class ReferenceEngine(Engine):
    """The loop people read; every backend, every cell."""

    name = "reference"

    def forward(self, cell: CellSpec, x: Array, carry: Carry, p: CellParams,
                mask: Array | None = None, reverse: bool = False) -> tuple[Array, Carry, Tape]:
        xp = B.namespace(x)
        T, Bn, _ = x.shape
        P = p.w_hh.shape[1]
        dev = B.device_of(x)
        xw = input_projection(x, p)                                   # (T, B, G·H)
        out = xp.zeros((T, Bn, P), dtype=x.dtype, device=dev)         # (T, B, P)
        h_prev = xp.empty((T, Bn, P), dtype=x.dtype, device=dev)      # (T, B, P)
        caches: list[Any] = [None] * T
        for t in time_order(T, reverse):
            h_prev[t, ...] = carry[0]
            new, caches[t] = recurrence_forward(cell, xw[t, ...], carry, p)
            if mask is not None:                                      # padding keeps the state
                m = mask[t, ...]                                      # (B, 1)
                new = tuple(xp.where(m, n, c) for n, c in zip(new, carry))
                out[t, ...] = xp.where(m, new[0], 0.0)
            else:
                out[t, ...] = new[0]
            carry = new
        return out, carry, Tape(self, cell, x, h_prev, caches, mask, reverse)

    def backward(self, tape: Tape, dout: Array | None, dcarry: Carry, p: CellParams,
                 record: bool = False) -> tuple[Array, Carry, CellParams]:
        xp = B.namespace(tape.x)
        cell = tape.cell
        T, Bn, _ = tape.x.shape
        G_H, P = p.w_hh.shape
        dev = B.device_of(tape.x)
        da_x_all = xp.empty((T, Bn, G_H), dtype=tape.x.dtype, device=dev)  # (T, B, G·H)
        da_h_all = xp.empty_like(da_x_all) if cell.separate_h_grad else da_x_all
        dh_all = None                                                      # (T, B, P) δh_t
        if record or cell.projection:
            dh_all = xp.zeros((T, Bn, P), dtype=tape.x.dtype, device=dev)
        for t in time_order(T, not tape.reverse):
            dh = dcarry[0] if dout is None else dcarry[0] + dout[t, ...]  # (B, P)
            dstep = (dh,) + tuple(dcarry[1:])
            if tape.mask is not None:       # padded steps: gradient passes to the previous carry
                m = tape.mask[t, ...]
                dstep = tuple(xp.where(m, d, 0.0) for d in dstep)
                passthrough = tuple(xp.where(m, 0.0, d) for d in dcarry)
            if dh_all is not None:
                dh_all[t, ...] = dstep[0]
            da_x, da_h, dcarry = recurrence_backward(cell, dstep, tape.caches[t], p)
            if tape.mask is not None:
                dcarry = tuple(a + b for a, b in zip(dcarry, passthrough))
            da_x_all[t, ...] = da_x
            if cell.separate_h_grad:
                da_h_all[t, ...] = da_h
        da_x_flat, da_h_flat = flat(da_x_all), flat(da_h_all)         # (T·B, G·H)
        grads = CellParams(
            w_ih=da_x_flat.T @ flat(tape.x),                          # (G·H, I)
            w_hh=da_h_flat.T @ flat(tape.h_prev),                     # (G·H, P)
            b_ih=None if p.b_ih is None else xp.sum(da_x_flat, axis=0),
            b_hh=None if p.b_hh is None else xp.sum(da_h_flat, axis=0),
        )
        if cell.projection:                                           # (P, H)
            m_all = xp.stack([c.m for c in tape.caches], axis=0) if T else \
                xp.zeros((0, Bn, p.w_hr.shape[1]), dtype=tape.x.dtype, device=dev)
            grads.w_hr = flat(dh_all).T @ flat(m_all)
        if record:
            tape.hidden_grads = dh_all
        dx = xp.reshape(da_x_flat @ p.w_ih, tape.x.shape)             # (T, B, I)
        return dx, dcarry, grads
