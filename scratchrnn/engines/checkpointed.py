"""Checkpointed BPTT around any engine: keep every k-th carry, replay segments in backward.

Forward runs the wrapped engine segment by segment (k steps each, in time
order or reversed), keeping only the carry entering each segment and the
tape of the segment it ran last. Backward walks the segments latest first:
it replays a segment's forward from its stored entry carry (the same
computation as in forward, so the same numbers), runs the wrapped engine's
normal backward over it and adds the segment's weight gradients:

    dW = Σ_segments Σ_{t in segment} da_t^T [x_t | h_{t-1}]

Only one segment's tape is alive at a time, so the memory beyond x, the
outputs and dx is O(T/k + k) steps: O(√T) for k = ⌈√T⌉. Outputs, final
carry and the per-step gradients (∂L/∂x_t, ∂L/∂h0, ∂L/∂h_t) are the normal
path's; the weight gradients are the same sums in another order, so they
agree to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .. import backend as B
from ..backend import Array
from ..cells.base import Carry, CellParams, CellSpec
from .base import Engine


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
    """The carry entering each k-step segment, and the full tape of the segment
    forward ran last (backward starts there)."""

    engine: Engine
    cell: CellSpec
    x: Array                        # (T, B, I) the layer's input
    mask: Array | None              # (T, B, 1) bool, or None
    reverse: bool
    k: int                          # segment length
    starts: dict[int, Carry]        # segment start s0 -> carry entering step s0
    kept: tuple[int, Any] | None    # (s0, tape) of the last segment run in forward
    hidden_grads: Array | None = field(default=None)  # (T, B, P) ∂L/∂h_t, if recorded


class Checkpointed(Engine):
    """``inner`` run in k-step segments (k = ``every``; True or 'auto': ⌈√T⌉)."""

    def __init__(self, inner: Engine, every: int | bool | str) -> None:
        segment_length(1, every)                                   # validates it
        self.inner, self.every = inner, every
        self.name = f"{inner.name}+checkpointed"

    def supports(self, x: Array) -> bool:
        return self.inner.supports(x)

    def forward(self, cell: CellSpec, x: Array, carry: Carry, p: CellParams,
                mask: Array | None = None, reverse: bool = False
                ) -> tuple[Array, Carry, CheckpointTape]:
        xp = B.namespace(x)
        T, Bn, _ = x.shape
        k = segment_length(T, self.every)
        out = xp.zeros((T, Bn, p.w_hh.shape[1]), dtype=x.dtype, device=B.device_of(x))
        starts: dict[int, Carry] = {}
        kept = None
        for s0 in segment_starts(T, k, reverse):
            s1 = min(s0 + k, T)
            starts[s0] = carry
            seg_mask = None if mask is None else mask[s0:s1, ...]
            out[s0:s1, ...], carry, seg_tape = self.inner.forward(cell, x[s0:s1, ...], carry, p,
                                                                  seg_mask, reverse)
            kept = (s0, seg_tape)
        return out, carry, CheckpointTape(self, cell, x, mask, reverse, k, starts, kept)

    def backward(self, tape: CheckpointTape, dout: Array | None, dcarry: Carry,
                 p: CellParams, record: bool = False) -> tuple[Array, Carry, CellParams]:
        xp = B.namespace(tape.x)
        T, Bn, _ = tape.x.shape
        dev = B.device_of(tape.x)
        dx = xp.zeros(tape.x.shape, dtype=tape.x.dtype, device=dev)      # (T, B, I)
        if record:
            tape.hidden_grads = xp.zeros((T, Bn, p.w_hh.shape[1]), dtype=tape.x.dtype,
                                         device=dev)
        total: CellParams | None = None
        for s0 in segment_starts(T, tape.k, not tape.reverse):
            s1 = min(s0 + tape.k, T)
            if tape.kept is not None and tape.kept[0] == s0:
                seg_tape, tape.kept = tape.kept[1], None
            else:                                               # replay this segment's forward
                seg_mask = None if tape.mask is None else tape.mask[s0:s1, ...]
                _, _, seg_tape = self.inner.forward(tape.cell, tape.x[s0:s1, ...],
                                                    tape.starts[s0], p, seg_mask, tape.reverse)
            seg_dout = None if dout is None else dout[s0:s1, ...]
            dx[s0:s1, ...], dcarry, grads = self.inner.backward(seg_tape, seg_dout, dcarry, p,
                                                                record)
            if record:
                tape.hidden_grads[s0:s1, ...] = seg_tape.hidden_grads
            total = grads if total is None else total.plus(grads)
            del seg_tape, grads                                 # free the segment before the next
        if total is None:                                       # T = 0: nothing to replay
            total = CellParams(*(None if a is None else xp.zeros_like(a)
                                 for a in (p.w_ih, p.w_hh, p.b_ih, p.b_hh, p.w_hr)))
        return dx, dcarry, total
