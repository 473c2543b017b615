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
keeps only the carry entering every k-th step and, in backward, replays each
segment's forward and runs this same backward over it
(:func:`scan_backward_checkpointed`): the memory for backward shrinks from
T steps to T/k carries + k steps, for one extra forward pass.
"""

from __future__ import annotations

import math
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
    if checkpoint_every:
        return scan_forward_checkpointed(cell, x, carry, p, mask, reverse, checkpoint_every)
    if fast_scan.applies(cell.name, x):
        return fast_scan.scan_forward(cell.name, x, carry, p, mask, reverse)
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
    if isinstance(tape, CheckpointTape):
        return scan_backward_checkpointed(cell, dout, dcarry, tape, p, record)
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
def segment_length(T: int, every: int | bool | str | None) -> int:
    """k for ``checkpoint_every``: an int k >= 1, or True/'auto' for ⌈√T⌉."""
    if every is True or every == "auto":
        return max(1, math.ceil(math.sqrt(T)))
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"checkpoint_every: expected None, True, 'auto' or a positive int, "
                         f"got {every!r}")
    return every


def segment_starts(T: int, k: int, reverse: bool) -> list[int]:
    """First time index of each k-step segment, in processing order."""
    starts = list(range(0, T, k))
    return starts[::-1] if reverse else starts


@dataclass(slots=True)
class CheckpointTape:
    """What a checkpointed scan keeps: the carry entering each k-step segment,
    and the full tape of the segment forward ran last (backward starts there)."""

    x: Array                        # (T, B, I) the layer's input
    mask: Array | None              # (T, B, 1) bool, or None
    reverse: bool
    k: int                          # segment length
    starts: dict[int, Carry]        # segment start s0 -> carry entering step s0
    kept: tuple[int, Any] | None    # (s0, tape) of the last segment run in forward
    hidden_grads: Array | None = field(default=None)  # (T, B, H) ∂L/∂h_t, if recorded


def scan_forward_checkpointed(cell: CellSpec, x: Array, carry: Carry, p: CellParams,
                              mask: Array | None, reverse: bool,
                              every: int | bool | str) -> tuple[Array, Carry, CheckpointTape]:
    """:func:`scan_forward` run segment by segment, keeping only each segment's entry carry.

    k = ``every`` (True or 'auto': ⌈√T⌉). Segments run in time order (reverse
    order for ``reverse``), each a normal scan from the previous one's final
    carry, so outputs and final carry are those of one scan over all steps
    (up to the rounding of the input projection, done per segment).
    """
    xp = B.namespace(x)
    T, Bn, _ = x.shape
    k = segment_length(T, every)
    out = xp.empty((T, Bn, p.w_hh.shape[1]), dtype=x.dtype, device=B.device_of(x))
    starts: dict[int, Carry] = {}
    for s0 in segment_starts(T, k, reverse):
        s1 = min(s0 + k, T)
        starts[s0] = carry
        seg_mask = None if mask is None else mask[s0:s1, ...]
        out[s0:s1, ...], carry, seg_tape = scan_forward(cell, x[s0:s1, ...], carry, p,
                                                        seg_mask, reverse)
    return out, carry, CheckpointTape(x, mask, reverse, k, starts, kept=(s0, seg_tape))


def scan_backward_checkpointed(cell: CellSpec, dout: Array | None, dcarry: Carry,
                               tape: CheckpointTape, p: CellParams, record: bool = False
                               ) -> tuple[Array, Carry, CellParams]:
    """BPTT through a checkpointed scan, one segment at a time, latest first.

    For each segment: replay its forward from the stored entry carry (the same
    computation as in forward, so the same numbers), run the normal
    :func:`scan_backward` over it, and add its weight gradients to the total:

        dW = Σ_segments Σ_{t in segment} da_t^T [x_t | h_{t-1}]

    Only one segment's tape and gate gradients are alive at a time, so the
    memory beyond x, the outputs and dx is O(T/k + k) steps: O(√T) for
    k = ⌈√T⌉. The per-step gradients (∂L/∂h_t, ∂L/∂x_t, ∂L/∂h0) are the normal
    path's; the weight gradients are the same sums in a different order (per
    segment, then over segments), so they agree to float rounding.
    """
    xp = B.namespace(tape.x)
    T, Bn, _ = tape.x.shape
    dev = B.device_of(tape.x)
    dx = xp.empty(tape.x.shape, dtype=tape.x.dtype, device=dev)      # (T, B, I)
    if record:
        tape.hidden_grads = xp.zeros((T, Bn, p.w_hh.shape[1]), dtype=tape.x.dtype, device=dev)
    total: CellParams | None = None
    for s0 in segment_starts(T, tape.k, not tape.reverse):
        s1 = min(s0 + tape.k, T)
        if tape.kept is not None and tape.kept[0] == s0:
            seg_tape, tape.kept = tape.kept[1], None
        else:                                               # replay this segment's forward
            seg_mask = None if tape.mask is None else tape.mask[s0:s1, ...]
            _, _, seg_tape = scan_forward(cell, tape.x[s0:s1, ...], tape.starts[s0], p,
                                          seg_mask, tape.reverse)
        seg_dout = None if dout is None else dout[s0:s1, ...]
        dx[s0:s1, ...], dcarry, grads = scan_backward(cell, seg_dout, dcarry, seg_tape, p,
                                                      record)
        if record:
            tape.hidden_grads[s0:s1, ...] = seg_tape.hidden_grads
        total = grads if total is None else CellParams(*(
            None if getattr(total, f) is None else getattr(total, f) + getattr(grads, f)
            for f in ("w_ih", "w_hh", "b_ih", "b_hh")))
        del seg_tape, grads                                 # free the segment before the next
    return dx, dcarry, total
