"""The one time loop: any cell, either direction, with or without lengths.

Forward over a sequence x (T, B, I) for one direction of one layer:

    xw = x W_ih^T + b_ih                  one matrix product for all T steps
    for t in 0..T-1 (T-1..0 in reverse):  only the recurrence is sequential
        carry_t, cache_t = cell(xw_t, carry_{t-1})
        where t >= length[b]:  carry_t[b] = carry_{t-1}[b],  out_t[b] = 0

so a padded sequence's state stops at its last valid step (forward) or is
still the initial state until its last valid step comes (reverse).

Backward runs the same loop in the opposite order ("backprop into h"),
carrying ``dcarry`` = ∂L/∂carry back through time, and only the recurrent
product ``da_h W_hh`` stays inside the loop; after it, the weight gradients
and ∂L/∂x are one product each over all steps:

    dW_ih = Σ_t da_x_t^T x_t      dW_hh = Σ_t da_h_t^T h_{t-1}      dx = da_x W_ih

Two variants sit beside this loop. For NumPy arrays with numba installed,
``backend.fast_scan`` runs the same equations with one fused kernel per step
(``backend.set_fast_paths(False)`` turns it off). ``checkpoint_every=k``
keeps only the carry entering every k-th step and replays each segment's
forward in backward (:class:`SegmentReplay`): the tape shrinks from T steps
to T/k carries + k steps, for one extra forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import backend as B
from ..backend import Array, fast_scan
from ..cells.base import Carry, CellParams, CellSpec


@dataclass(slots=True)
class Tape:
    """What one direction of one layer keeps from forward for backward."""

    x: Array                # (T, B, I) the layer's input
    h_prev: Array           # (T, B, H) the hidden state entering step t
    caches: list[Any]       # T cell caches, indexed by time t
    mask: Array | None      # (T, B, 1) bool: t < length[b]; None = all valid
    reverse: bool
    hidden_grads: Array | None = field(default=None)  # (T, B, H) ∂L/∂h_t, if recorded


def time_order(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def _flat(a: Array) -> Array:
    """(T, B, K) -> (T·B, K) for one big matrix product."""
    xp = B.namespace(a)
    return xp.reshape(a, (a.shape[0] * a.shape[1], a.shape[2]))


def input_projection(x: Array, p: CellParams) -> Array:
    """x W_ih^T + b_ih for every step at once: (T, B, I) -> (T, B, G·H)."""
    xp = B.namespace(x)
    T, Bn, _ = x.shape
    xw = _flat(x) @ p.w_ih.T
    if p.b_ih is not None:
        xw = xw + p.b_ih
    return xp.reshape(xw, (T, Bn, p.w_ih.shape[0]))


def scan_forward(cell: CellSpec, x: Array, carry: Carry, p: CellParams,
                 mask: Array | None = None, reverse: bool = False,
                 checkpoint_every: int | bool | str | None = None
                 ) -> tuple[Array, Carry, Tape]:
    """Run ``cell`` over x (T, B, I) from ``carry`` (each (B, H)).

    Returns the outputs (T, B, H), the final carry and the tape for backward.
    """
    if fast_scan.applies(cell.name, x):
        return fast_scan.scan_forward(cell.name, x, carry, p, mask, reverse, checkpoint_every)
    if checkpoint_every:
        return scan_forward_checkpointed(cell, x, carry, p, mask, reverse, checkpoint_every)
    xp = B.namespace(x)
    T, Bn, _ = x.shape
    H = p.w_hh.shape[1]
    dev = B.device_of(x)
    xw = input_projection(x, p)                                   # (T, B, G·H)
    out = xp.zeros((T, Bn, H), dtype=x.dtype, device=dev)         # (T, B, H)
    h_prev = xp.empty((T, Bn, H), dtype=x.dtype, device=dev)      # (T, B, H)
    caches: list[Any] = [None] * T
    for t in time_order(T, reverse):
        h_prev[t, ...] = carry[0]
        new, caches[t] = cell.forward(xw[t, ...], carry, p)
        if mask is not None:                                      # padding keeps the state
            m = mask[t, ...]                                      # (B, 1)
            new = tuple(xp.where(m, n, c) for n, c in zip(new, carry))
            out[t, ...] = xp.where(m, new[0], 0.0)
        else:
            out[t, ...] = new[0]
        carry = new
    return out, carry, Tape(x, h_prev, caches, mask, reverse)


def scan_backward(cell: CellSpec, dout: Array | None, dcarry: Carry, tape: Tape,
                  p: CellParams, record: bool = False
                  ) -> tuple[Array, Carry, CellParams]:
    """BPTT through one :func:`scan_forward`.

    ``dout`` (T, B, H) is ∂L/∂out (None for zero), ``dcarry`` ∂L/∂final carry.
    Returns ∂L/∂x (T, B, I), ∂L/∂initial carry and the parameter gradients.
    With ``record`` the tape keeps ∂L/∂h_t for every t (``tape.hidden_grads``).
    """
    if isinstance(tape, fast_scan.FastTape):
        return fast_scan.scan_backward(tape, dout, dcarry, p, record)
    xp = B.namespace(tape.x)
    T, Bn, _ = tape.x.shape
    G_H = p.w_hh.shape[0]
    dev = B.device_of(tape.x)
    da_x_all = xp.empty((T, Bn, G_H), dtype=tape.x.dtype, device=dev)  # (T, B, G·H)
    da_h_all = da_x_all                     # becomes its own array for the GRU
    if record:
        tape.hidden_grads = xp.zeros((T, Bn, p.w_hh.shape[1]), dtype=tape.x.dtype, device=dev)
    for t in time_order(T, not tape.reverse):
        dh = dcarry[0] if dout is None else dcarry[0] + dout[t, ...]  # (B, H)
        dstep = (dh,) + tuple(dcarry[1:])
        if tape.mask is not None:       # padded steps: gradient passes to the previous carry
            m = tape.mask[t, ...]
            dstep = tuple(xp.where(m, d, 0.0) for d in dstep)
            passthrough = tuple(xp.where(m, 0.0, d) for d in dcarry)
        if record:
            tape.hidden_grads[t, ...] = dstep[0]
        da_x, da_h, dcarry = cell.backward(dstep, tape.caches[t], p)
        if tape.mask is not None:
            dcarry = tuple(a + b for a, b in zip(dcarry, passthrough))
        if da_h is not da_x and da_h_all is da_x_all:
            da_h_all = xp.empty_like(da_x_all)
        da_x_all[t, ...] = da_x
        if da_h_all is not da_x_all:
            da_h_all[t, ...] = da_h
    da_x_flat, da_h_flat = _flat(da_x_all), _flat(da_h_all)       # (T·B, G·H)
    grads = CellParams(
        w_ih=da_x_flat.T @ _flat(tape.x),                          # (G·H, I)
        w_hh=da_h_flat.T @ _flat(tape.h_prev),                     # (G·H, H)
        b_ih=None if p.b_ih is None else xp.sum(da_x_flat, axis=0),
        b_hh=None if p.b_hh is None else xp.sum(da_h_flat, axis=0),
    )
    dx = xp.reshape(da_x_flat @ p.w_ih, tape.x.shape)             # (T, B, I)
    return dx, dcarry, grads


# --------------------------------------------------------------------------- #
# Checkpointed BPTT: keep every k-th carry, replay segments in backward.
# --------------------------------------------------------------------------- #
def scan_forward_checkpointed(cell: CellSpec, x: Array, carry: Carry, p: CellParams,
                              mask: Array | None, reverse: bool,
                              every: int | bool | str) -> tuple[Array, Carry, Tape]:
    """:func:`scan_forward` run segment by segment, keeping only each segment's entry carry.

    k = ``every`` (True or 'auto': ⌈√T⌉). The outputs and final carry are the
    normal ones; the tape's caches are a :class:`SegmentReplay`.
    """
    xp = B.namespace(x)
    T, Bn, _ = x.shape
    k = fast_scan.segment_length(T, every)
    out = xp.empty((T, Bn, p.w_hh.shape[1]), dtype=x.dtype, device=B.device_of(x))
    starts: dict[int, Carry] = {}
    for s0 in fast_scan.segment_starts(T, k, reverse):
        s1 = min(s0 + k, T)
        starts[s0] = carry
        seg_mask = None if mask is None else mask[s0:s1, ...]
        out[s0:s1, ...], carry, seg_tape = scan_forward(cell, x[s0:s1, ...], carry, p,
                                                        seg_mask, reverse)
    replay = SegmentReplay(cell, p, k, starts, kept=(s0, seg_tape))
    tape = Tape(x, None, replay, mask, reverse)
    replay.tape = tape
    return out, carry, tape


class SegmentReplay:
    """``tape.caches`` of a checkpointed scan: asked for step t, it reruns the
    forward of t's segment from its entry carry (the same computation, so the
    same numbers) and fills that segment's rows of ``tape.h_prev``.
    Backward visits segments in order, so each is replayed once."""

    def __init__(self, cell: CellSpec, p: CellParams, k: int, starts: dict[int, Carry],
                 kept: tuple[int, Tape]) -> None:
        self.cell, self.p, self.k, self.starts = cell, p, k, starts
        self.kept: tuple[int, Tape] | None = kept   # the last segment run, not replayed
        self.tape: Tape | None = None
        self.start, self.caches = -1, []

    def __getitem__(self, t: int) -> Any:
        s0 = t - t % self.k
        if s0 != self.start:
            self.caches = []                                  # free the previous segment
            self.start, self.caches = s0, self._replay(s0)
        return self.caches[t - s0]

    def _replay(self, s0: int) -> list[Any]:
        tape = self.tape
        xp = B.namespace(tape.x)
        s1 = min(s0 + self.k, tape.x.shape[0])
        if self.kept is not None and self.kept[0] == s0:
            seg, self.kept = self.kept[1], None
        else:
            seg_mask = None if tape.mask is None else tape.mask[s0:s1, ...]
            _, _, seg = scan_forward(self.cell, tape.x[s0:s1, ...], self.starts[s0], self.p,
                                     seg_mask, tape.reverse)
        if tape.h_prev is None:
            tape.h_prev = xp.empty(tape.x.shape[:2] + (seg.h_prev.shape[2],),
                                   dtype=tape.x.dtype, device=B.device_of(tape.x))
        tape.h_prev[s0:s1, ...] = seg.h_prev                  # (L, B, H)
        return seg.caches
