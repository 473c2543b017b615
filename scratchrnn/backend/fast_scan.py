"""The fused CPU path of the time loop: NumPy arrays + numba kernels.

Same contract as :func:`scratchrnn.nn.scan.scan_forward` / ``scan_backward``
(same equations, same results up to float rounding; ``tests/test_fast_paths.py``
holds them equal), organised for speed:

* one GEMM for the input projection of all steps, gate blocks per row
  ``(T, B, G, H)``; forward writes the activated gates (the cache) to one
  ``(T, B, H)`` array per gate and drops the projection;
* per step one BLAS product ``h_{t-1} W_hh^T`` into a buffer allocated once
  (``np.matmul(..., out=)``) and one fused kernel
  (:mod:`scratchrnn.backend.numba_cells`); backward the same, mirrored;
* states in one ``(T+1, B, H)`` array: step t reads slot ``rp``, writes ``wp``,
  so ``h_{t-1}`` for all t is a slice of it, ready for the weight gradient;
* weight gradients and ∂L/∂x as one GEMM each over all steps; bias gradients
  summed inside the backward kernels.

Picked automatically for NumPy float32/float64 inputs when numba is installed
(``pip install scratchrnn[fast]``). For CuPy arrays the kernels are
:mod:`scratchrnn.backend.cupy_cells` (same signatures, one CUDA elementwise
kernel per step each way); they have not yet run on a GPU, so they are
opt-in with ``SCRATCHRNN_CUPY_KERNELS=1`` until ``pytest -m gpu`` has passed
on a device, and CuPy otherwise runs the portable path. :func:`set_fast_paths`
or the environment variable ``SCRATCHRNN_FAST=0`` forces the portable path.
Checkpointed BPTT (``checkpoint_every``) runs this path segment by segment
(:mod:`scratchrnn.nn.scan`).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_SUPPORTED = ("rnn_tanh", "rnn_relu", "gru", "lstm")
_enabled = os.environ.get("SCRATCHRNN_FAST", "1").strip().lower() not in ("0", "false", "no", "")
_numba_ok: bool | None = None


def set_fast_paths(enabled: bool) -> bool:
    """Use (True) or bypass (False) the numba kernels; returns the old setting."""
    global _enabled
    old, _enabled = _enabled, bool(enabled)
    return old


def fast_paths_enabled() -> bool:
    return _enabled


def numba_available() -> bool:
    """True when numba can be imported (checked once, without importing it)."""
    global _numba_ok
    if _numba_ok is None:
        try:
            _numba_ok = importlib.util.find_spec("numba") is not None
        except (ImportError, ValueError):  # e.g. sys.modules["numba"] = None
            _numba_ok = False
    return _numba_ok


def _is_cupy(x: Any) -> bool:
    return type(x).__module__.startswith("cupy")


def cupy_kernels_enabled() -> bool:
    """The CuPy fused kernels are opt-in (``SCRATCHRNN_CUPY_KERNELS=1``) until
    verified on a GPU; see the module docstring."""
    return os.environ.get("SCRATCHRNN_CUPY_KERNELS", "0").strip() == "1"


def applies(cell_name: str, x: Any) -> bool:
    """Whether the fused path runs ``cell_name`` on ``x``: NumPy float32/64 arrays
    when numba is installed, or CuPy arrays when the CuPy kernels are opted in."""
    if not (_enabled and cell_name in _SUPPORTED and getattr(x, "ndim", 0) == 3
            and x.size > 0 and str(x.dtype) in ("float32", "float64")):
        return False
    if isinstance(x, np.ndarray):
        return numba_available()
    return _is_cupy(x) and cupy_kernels_enabled()


def _kernels(x: Any) -> Any:
    if _is_cupy(x):
        from . import cupy_cells

        return cupy_cells
    from . import numba_cells  # lazy: numba is an optional extra

    return numba_cells


def _xp(x: Any) -> Any:
    if _is_cupy(x):
        import cupy

        return cupy
    return np


# --------------------------------------------------------------------------- #
# Parameters in the kernels' layout
# --------------------------------------------------------------------------- #
@dataclass(slots=True)
class _Prepared:
    cell: str
    G: int
    H: int
    w_ih: np.ndarray       # (G·H, I)
    w_hh: np.ndarray       # (G·H, H)
    w_hh_t: np.ndarray     # (H, G·H) W_hh^T, contiguous: 15-25% faster per-step products
    bias: np.ndarray       # (G, H)  b_ih + b_hh (GRU candidate: b_ih only)
    b_hn: np.ndarray       # (H,)    GRU: b_hh of the candidate; unused otherwise
    has_bias: bool


def _prepare(cell: str, p: Any, dtype: Any) -> _Prepared:
    xp = _xp(p.w_hh)
    GH, H = p.w_hh.shape
    G = GH // H
    bias = xp.zeros((G, H), dtype=dtype)
    b_hn = xp.zeros(H, dtype=dtype)
    if p.b_ih is not None:
        b_ih, b_hh = p.b_ih.reshape(G, H), p.b_hh.reshape(G, H)
        if cell == "gru":
            bias[:2] = b_ih[:2] + b_hh[:2]
            bias[2] = b_ih[2]
            b_hn[:] = b_hh[2]
        else:
            bias[:] = b_ih + b_hh
    return _Prepared(cell, G, H, p.w_ih, p.w_hh, xp.ascontiguousarray(p.w_hh.T), bias, b_hn,
                     p.b_ih is not None)


# --------------------------------------------------------------------------- #
# Forward
# --------------------------------------------------------------------------- #
@dataclass(slots=True)
class FastTape:
    """What the fused path keeps from forward for backward."""

    cell: str
    x: np.ndarray                 # (T, B, I)
    mask: np.ndarray | None       # (T, B) bool
    reverse: bool
    hs: np.ndarray                # (T+1, B, H) states; slot 0 (reverse: T) is the entry carry
    cs: np.ndarray | None         # (T+1, B, H) LSTM cell states
    gates: tuple                  # G arrays (T, B, H): activated gates (() for Elman)
    extra: np.ndarray | None      # (T, B, H) LSTM tanh(c), GRU hn
    hidden_grads: np.ndarray | None = field(default=None)  # (T, B, H) ∂L/∂h_t if recorded


def _run(pp: _Prepared, x: np.ndarray, carry: tuple, mask: np.ndarray | None, reverse: bool,
         out: np.ndarray) -> FastTape:
    """Forward over x (T, B, I) from ``carry``, writing the outputs into ``out`` (T, B, H)."""
    nk, xp = _kernels(x), _xp(x)
    T, Bn, I = x.shape
    G, H, dt = pp.G, pp.H, x.dtype
    xw = xp.matmul(x.reshape(T * Bn, I), pp.w_ih.T).reshape(T, Bn, G, H)   # one GEMM
    hs = xp.empty((T + 1, Bn, H), dtype=dt)
    first = T if reverse else 0
    hs[first] = carry[0]
    cs = None
    if pp.cell == "lstm":
        cs = xp.empty((T + 1, Bn, H), dtype=dt)
        cs[first] = carry[1]
    gated = pp.cell in ("lstm", "gru")
    gates = tuple(xp.empty((T, Bn, H), dtype=dt) for _ in range(G)) if gated else ()
    extra = xp.empty((T, Bn, H), dtype=dt) if gated else None
    hw = xp.empty((Bn, G * H), dtype=dt)                                  # reused every step
    hw3 = hw.reshape(Bn, G, H)
    use_mask = mask is not None
    m = mask if use_mask else xp.ones((1, 1), dtype=bool)
    relu = pp.cell == "rnn_relu"
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        rp, wp = (t + 1, t) if reverse else (t, t + 1)
        xp.matmul(hs[rp], pp.w_hh_t, out=hw)                              # (B, G·H)
        if pp.cell == "lstm":
            nk.lstm_forward_step(t, xw, hw3, pp.bias, hs, cs, rp, wp, *gates, extra, out, m,
                                 use_mask)
        elif pp.cell == "gru":
            nk.gru_forward_step(t, xw, hw3, pp.bias, pp.b_hn, hs, rp, wp, *gates, extra, out,
                                m, use_mask)
        else:
            nk.elman_forward_step(t, xw, hw3, pp.bias, hs, rp, wp, out, m, use_mask, relu)
    return FastTape(pp.cell, x, mask, reverse, hs, cs, gates, extra)


def _final_carry(tape: FastTape) -> tuple:
    """Copies of the last states: a view would keep the whole (T+1, B, H) tape alive."""
    last = 0 if tape.reverse else tape.hs.shape[0] - 1
    return tuple(a[last].copy() for a in (tape.hs, tape.cs) if a is not None)


def _contiguous(a: Any, dtype: Any) -> Any:
    return _xp(a).ascontiguousarray(a, dtype=dtype)


def scan_forward(cell: str, x: np.ndarray, carry: tuple, p: Any, mask: Any = None,
                 reverse: bool = False) -> tuple[np.ndarray, tuple, FastTape]:
    """The fused twin of ``scratchrnn.nn.scan.scan_forward`` (same arguments and results)."""
    T, Bn, _ = x.shape
    xp = _xp(x)
    pp = _prepare(cell, p, x.dtype)
    x = _contiguous(x, x.dtype)
    mask2 = None if mask is None else xp.ascontiguousarray(mask[:, :, 0])    # (T, B)
    carry = tuple(_contiguous(c, x.dtype) for c in carry)
    out = xp.empty((T, Bn, pp.H), dtype=x.dtype)                            # (T, B, H)
    tape = _run(pp, x, carry, mask2, reverse, out)
    return out, _final_carry(tape), tape


# --------------------------------------------------------------------------- #
# Backward
# --------------------------------------------------------------------------- #
def scan_backward(tape: FastTape, dout: Any, dcarry: tuple, p: Any, record: bool = False
                  ) -> tuple[np.ndarray, tuple, Any]:
    """The fused twin of ``scratchrnn.nn.scan.scan_backward``."""
    from ..cells.base import CellParams

    x, cell = tape.x, tape.cell
    nk, xp = _kernels(x), _xp(x)
    T, Bn, I = x.shape
    dt = x.dtype
    pp = _prepare(cell, p, dt)
    G, H = pp.G, pp.H
    da_x = xp.empty((T, Bn, G, H), dtype=dt)                        # ∂L/∂(x W_ih^T)
    da_h = xp.empty_like(da_x) if cell == "gru" else da_x           # ∂L/∂(h W_hh^T)
    db_x = xp.zeros((G, H), dtype=dt)
    db_h = xp.zeros((G, H), dtype=dt) if cell == "gru" else db_x
    dh_rec = _contiguous(dcarry[0], dt).copy()                         # (B, H) da_h W_hh part
    dh_res = xp.zeros((Bn, H), dtype=dt)                            # (B, H) the rest
    dc = _contiguous(dcarry[1], dt).copy() if cell == "lstm" else None
    has_dout = dout is not None
    dout_a = _contiguous(dout, dt) if has_dout else xp.zeros((1, Bn, H), dtype=dt)
    use_mask = tape.mask is not None
    rec = xp.zeros((T, Bn, H), dtype=dt) if record else xp.zeros((1, 1, 1), dtype=dt)
    relu = cell == "rnn_relu"
    mk = tape.mask if use_mask else xp.ones((1, 1), dtype=bool)
    for t in (range(T) if tape.reverse else range(T - 1, -1, -1)):
        rp, wp = (t + 1, t) if tape.reverse else (t, t + 1)
        if cell == "lstm":
            nk.lstm_backward_step(t, dh_rec, dh_res, dc, dout_a, has_dout, *tape.gates,
                                  tape.extra, tape.cs, rp, da_x, db_x, mk, use_mask, rec, record)
        elif cell == "gru":
            nk.gru_backward_step(t, dh_rec, dh_res, dout_a, has_dout, *tape.gates, tape.extra,
                                 tape.hs, rp, da_x, da_h, db_x, db_h, mk, use_mask, rec, record)
        else:
            nk.elman_backward_step(t, dh_rec, dh_res, dout_a, has_dout, tape.hs, wp, da_x, db_x,
                                   mk, use_mask, relu, rec, record)
        xp.matmul(da_h[t].reshape(Bn, G * H), pp.w_hh, out=dh_rec)   # (B, H)

    h_prev = tape.hs[1:] if tape.reverse else tape.hs[:-1]              # (T, B, H)
    if cell == "gru":
        db_h[:2] = db_x[:2]
    da_x_flat, da_h_flat = da_x.reshape(T * Bn, G * H), da_h.reshape(T * Bn, G * H)
    grads = CellParams(
        w_ih=da_x_flat.T @ x.reshape(T * Bn, I),                          # (G·H, I)
        w_hh=da_h_flat.T @ h_prev.reshape(T * Bn, H),                     # (G·H, H)
        b_ih=db_x.reshape(G * H) if pp.has_bias else None,
        b_hh=db_h.reshape(G * H).copy() if pp.has_bias else None,
    )
    dx = (da_x_flat @ pp.w_ih).reshape(T, Bn, I)                          # (T, B, I)
    dh_rec += dh_res
    dcarry0 = (dh_rec,) if dc is None else (dh_rec, dc)
    if record:
        tape.hidden_grads = rec
    return dx, dcarry0, grads
