"""The fused engines: per step one matrix product and one generated kernel, each way.

Same contract and results as the reference engine (``engines/reference.py``),
organised for speed. One driver serves every cell and two targets:

* ``numba``: NumPy arrays, kernels from :mod:`~scratchrnn.engines.numba_kernels`;
* ``cupy``: CuPy arrays, kernels from :mod:`~scratchrnn.engines.cupy_kernels`.

What the driver does, for any cell:

* one GEMM for the input projection of all steps, gate blocks per row
  ``(T, B, G, H)``; the kernels fold the biases in;
* states in one ``(T+1, B, ·)`` array each: step t reads slot ``rp`` and
  writes ``wp``, so h_{t-1} for every t is a slice, ready for dW_hh; the
  cell's cache in one ``(T, B, H)`` array per field;
* per step one product ``h_{t-1} W_hh^T`` into a buffer allocated once, then
  the cell's forward kernel (and, with a projection, ``h = m W_hr^T``);
  backward the same, mirrored, with ``da_h W_hh`` into a buffer;
* weight gradients and ∂L/∂x as one GEMM each over all steps; bias
  gradients summed in the numba kernels, or by one reduction after the
  loop on CuPy.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..cells.base import Carry, CellParams, CellSpec
from .base import Engine


# --------------------------------------------------------------------------- #
# Targets: where the arrays live and who compiles the kernels
# --------------------------------------------------------------------------- #
class NumbaTarget:
    name = "numba"
    bias_in_kernel = True     # the kernels add each step's da rows into db

    @staticmethod
    def available() -> bool:
        try:
            return importlib.util.find_spec("numba") is not None
        except (ImportError, ValueError):  # e.g. sys.modules["numba"] = None
            return False

    @staticmethod
    def owns(x: Any) -> bool:
        return isinstance(x, np.ndarray)

    xp = np

    @staticmethod
    def kernels(cell: CellSpec) -> Any:
        from . import numba_kernels

        return numba_kernels.kernels(cell)

    @staticmethod
    def shared() -> Any:
        from . import numba_kernels

        return numba_kernels


class CupyTarget:
    name = "cupy"
    bias_in_kernel = False    # one reduction after the loop

    @staticmethod
    def available() -> bool:
        from .. import backend as B

        return B.cuda_available()

    @staticmethod
    def owns(x: Any) -> bool:
        return type(x).__module__.startswith("cupy")

    @property
    def xp(self) -> Any:
        import cupy

        return cupy

    @staticmethod
    def kernels(cell: CellSpec) -> Any:
        from . import cupy_kernels

        return cupy_kernels.kernels(cell)

    @staticmethod
    def shared() -> Any:
        from . import cupy_kernels

        return cupy_kernels


# --------------------------------------------------------------------------- #
# Parameters in the kernels' layout
# --------------------------------------------------------------------------- #
@dataclass(slots=True)
class _Prepared:
    G: int
    H: int
    w_ih: Any          # (G·H, I)
    w_hh: Any          # (G·H, P)
    w_hh_t: Any        # (P, G·H) W_hh^T, contiguous: 15-25% faster per-step products
    b_ih: Any          # (G, H)   zeros without bias
    b_hh: Any          # (G, H)
    w_hr: Any          # (P, H) or None
    w_hr_t: Any        # (H, P) or None


def _prepare(xp: Any, cell: CellSpec, p: CellParams, dtype: Any) -> _Prepared:
    GH, _ = p.w_hh.shape
    G = cell.gates
    H = GH // G
    zeros = xp.zeros((G, H), dtype=dtype)
    b_ih = zeros if p.b_ih is None else xp.ascontiguousarray(p.b_ih.reshape(G, H), dtype=dtype)
    b_hh = zeros if p.b_hh is None else xp.ascontiguousarray(p.b_hh.reshape(G, H), dtype=dtype)
    w_hr_t = None if p.w_hr is None else xp.ascontiguousarray(p.w_hr.T)
    return _Prepared(G, H, p.w_ih, p.w_hh, xp.ascontiguousarray(p.w_hh.T), b_ih, b_hh, p.w_hr,
                     w_hr_t)


@dataclass(slots=True)
class FusedTape:
    """What a fused engine keeps from forward for backward."""

    engine: Engine
    cell: CellSpec
    x: Any                        # (T, B, I)
    mask: Any                     # (T, B) bool, or None
    reverse: bool
    states: tuple                 # per state (T+1, B, ·); slot 0 (reverse: T) is the entry carry
    caches: tuple                 # per cache field (T, B, H)
    m: Any                        # (T, B, H) the state before the projection, or None
    hidden_grads: Any = field(default=None)  # (T, B, P) ∂L/∂h_t if recorded


class FusedEngine(Engine):
    """The fused time loop on one target (see the module docstring)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.name = target.name

    def supports(self, x: Any) -> bool:
        return (self.target.owns(x) and getattr(x, "ndim", 0) == 3
                and str(x.dtype) in ("float32", "float64"))

    def _check(self, x: Any) -> None:
        if not self.supports(x):
            raise TypeError(f"engine {self.name!r}: expected a 3-D float32/float64 "
                            f"{self.target.name} array, got {type(x).__name__} "
                            f"{getattr(x, 'dtype', '')}")

    # ---- forward --------------------------------------------------------- #
    def forward(self, cell: CellSpec, x: Any, carry: Carry, p: CellParams,
                mask: Any = None, reverse: bool = False) -> tuple[Any, Carry, FusedTape]:
        self._check(x)
        xp, kern = self.target.xp, self.target.kernels(cell)
        T, Bn, I = x.shape
        dt = x.dtype
        pp = _prepare(xp, cell, p, dt)
        G, H = pp.G, pp.H
        x = xp.ascontiguousarray(x)
        mask2 = None if mask is None else xp.ascontiguousarray(mask[:, :, 0])      # (T, B)
        xw = xp.matmul(x.reshape(T * Bn, I), pp.w_ih.T).reshape(T, Bn, G, H)  # one GEMM
        first = T if reverse else 0
        states = []
        for c in carry:
            s = xp.empty((T + 1,) + tuple(c.shape), dtype=dt)
            s[first] = c
            states.append(s)
        caches = tuple(xp.empty((T, Bn, H), dtype=dt) for _ in fields(cell.cache))
        P = states[0].shape[2]
        out = xp.empty((T, Bn, P), dtype=dt)                                  # (T, B, P)
        m = xp.empty((T, Bn, H), dtype=dt) if cell.projection else None       # (T, B, H)
        hout = m if cell.projection else out
        hw = xp.empty((Bn, G * H), dtype=dt)                                  # reused every step
        hw3 = hw.reshape(Bn, G, H)
        use_mask = mask2 is not None
        mk = mask2 if use_mask else xp.ones((1, 1), dtype=bool)
        shared = self.target.shared() if cell.projection else None
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            rp, wp = (t + 1, t) if reverse else (t, t + 1)
            xp.matmul(states[0][rp], pp.w_hh_t, out=hw)                      # (B, G·H)
            kern.forward_step(t, xw, hw3, pp.b_ih, pp.b_hh, *states, rp, wp, *caches, hout,
                              mk, use_mask)
            if cell.projection:                                              # h = m W_hr^T
                xp.matmul(m[t], pp.w_hr_t, out=states[0][wp])
                shared.finish_projection(t, states[0], rp, wp, out, mk, use_mask)
        last = 0 if reverse else T
        final = tuple(s[last].copy() for s in states)   # copies: a view keeps the tape alive
        tape = FusedTape(self, cell, x, mask2, reverse, tuple(states), caches, m)
        return out, final, tape

    # ---- backward -------------------------------------------------------- #
    def backward(self, tape: FusedTape, dout: Any, dcarry: Carry, p: CellParams,
                 record: bool = False) -> tuple[Any, Carry, CellParams]:
        xp, cell = self.target.xp, tape.cell
        kern = self.target.kernels(cell)
        x = tape.x
        T, Bn, I = x.shape
        dt = x.dtype
        pp = _prepare(xp, cell, p, dt)
        G, H = pp.G, pp.H
        P = tape.states[0].shape[2]
        da_x = xp.empty((T, Bn, G, H), dtype=dt)                   # ∂L/∂(x W_ih^T + b_ih)
        da_h = xp.empty_like(da_x) if cell.separate_h_grad else da_x  # ∂L/∂(h W_hh^T + b_hh)
        db_x = xp.zeros((G, H), dtype=dt)
        db_h = xp.zeros((G, H), dtype=dt) if cell.separate_h_grad else db_x
        dh_rec = xp.array(dcarry[0], dtype=dt, order="C")          # (B, P) the da_h W_hh part
        dh_res = xp.zeros((Bn, P), dtype=dt)                        # (B, P) the rest
        d_other = [xp.array(d, dtype=dt, order="C") for d in dcarry[1:]]  # (B, H) e.g. ∂L/∂c
        has_dout = dout is not None
        dout_a = xp.ascontiguousarray(dout, dtype=dt) if has_dout else \
            xp.zeros((1, Bn, P), dtype=dt)
        use_mask = tape.mask is not None
        mk = tape.mask if use_mask else xp.ones((1, 1), dtype=bool)
        keep = record or cell.projection                            # δh_t for every t
        rec = xp.zeros((T, Bn, P), dtype=dt) if keep else xp.zeros((1, 1, 1), dtype=dt)
        delta = xp.empty((Bn, P), dtype=dt) if cell.projection else None
        dm = xp.empty((Bn, H), dtype=dt) if cell.projection else xp.zeros((1, 1), dtype=dt)
        shared = self.target.shared() if cell.projection else None
        for t in (range(T) if tape.reverse else range(T - 1, -1, -1)):
            rp = t + 1 if tape.reverse else t
            if cell.projection:                                     # ∂L/∂m = δ W_hr
                shared.carry_in_step(t, dh_rec, dh_res, delta, dout_a, has_dout, mk, use_mask,
                                     rec)
                xp.matmul(delta, pp.w_hr, out=dm)
            kern.backward_step(t, dh_rec, dh_res, *d_other, dout_a, has_dout, *tape.states, rp,
                               *tape.caches, dm, da_x, da_h, db_x, db_h, mk, use_mask, rec,
                               keep)
            xp.matmul(da_h[t].reshape(Bn, G * H), pp.w_hh, out=dh_rec)   # (B, P)

        h_prev = tape.states[0][1:] if tape.reverse else tape.states[0][:-1]   # (T, B, P)
        da_x_flat, da_h_flat = da_x.reshape(T * Bn, G * H), da_h.reshape(T * Bn, G * H)
        if not self.target.bias_in_kernel:
            db_x = da_x_flat.sum(axis=0)
            db_h = da_h_flat.sum(axis=0) if cell.separate_h_grad else db_x
        has_bias = p.b_ih is not None
        grads = CellParams(
            w_ih=da_x_flat.T @ x.reshape(T * Bn, I),                          # (G·H, I)
            w_hh=da_h_flat.T @ h_prev.reshape(T * Bn, P),                     # (G·H, P)
            b_ih=db_x.reshape(G * H).copy() if has_bias else None,
            b_hh=db_h.reshape(G * H).copy() if has_bias else None,
            w_hr=rec.reshape(T * Bn, P).T @ tape.m.reshape(T * Bn, H) if cell.projection
            else None,                                                        # (P, H)
        )
        dx = (da_x_flat @ pp.w_ih).reshape(T, Bn, I)                          # (T, B, I)
        dh_rec += dh_res
        if record:
            tape.hidden_grads = rec
        return dx, (dh_rec, *d_other), grads
