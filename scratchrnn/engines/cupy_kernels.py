"""The CuPy target: each cell's pointwise math compiled into one CUDA kernel per step.

For a cell, :func:`kernels` prints two ``cupy.ElementwiseKernel`` bodies from
its pointwise functions (:mod:`~scratchrnn.engines.pointwise` restates each
line in C, names prefixed ``v_``) and wraps them with the numba target's
signatures, so :mod:`~scratchrnn.engines.fused` drives either. A kernel
runs one thread per (b, k) element of the batch (B·H threads); in the
(B, G, H) arrays (``xw``, ``hw``, ``da``) gate g of element (b, k) sits at
``b·G·H + g·H + k``; every other array is (B, H) or (B, P), one value per
thread. Padding, ∂L/∂out and the recording of ∂L/∂h_t are written once, in
the templates below; the bias gradients are one reduction after the loop
(the driver's). ``T`` in the C code is the float type.

Without a GPU, ``tests/cuda_on_cpu.py`` compiles these bodies as C++ and the
engine tests run them against the reference engine on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import cupy

from ..cells.base import CellSpec
from . import pointwise as pwise

PREAMBLE = r"""
template <typename F> __device__ __forceinline__ F sigmoid(F a) {
    return F(0.5) * (tanh(F(0.5) * a) + F(1));   // σ(a) = (1 + tanh(a/2)) / 2
}
template <typename F> __device__ __forceinline__ F relu(F a) { return a > F(0) ? a : F(0); }
template <typename F> __device__ __forceinline__ F relu_prime(F h) {
    return h > F(0) ? F(1) : F(0);
}
"""


def _flat(a: Any) -> Any:
    """A contiguous array as a 1-D view (the kernels index raw offsets)."""
    return a.reshape(-1)


def _row(mask: Any, t: int, use_mask: bool) -> Any:
    return mask[t] if use_mask else mask.reshape(-1)


# ---- the shared kernels of projected cells -------------------------------- #
_carry_in = cupy.ElementwiseKernel(
    "raw T dh_rec, raw T dout, int32 has_dout, raw bool mask, int32 use_mask, int32 P",
    "raw T dh_res, raw T delta, raw T rec",
    r"""
    int b = i / P;
    T dhc = dh_rec[i] + dh_res[i];
    if (use_mask && !mask[b]) { dh_res[i] = dhc; delta[i] = 0; rec[i] = 0; continue; }
    T dh = dhc + (has_dout ? dout[i] : T(0));
    delta[i] = dh; rec[i] = dh; dh_res[i] = 0;
    """,
    "scratchrnn_carry_in")

_finish_projection = cupy.ElementwiseKernel(
    "raw T h_prev, raw bool mask, int32 use_mask, int32 P",
    "raw T h_new, raw T out",
    r"""
    int b = i / P;
    if (use_mask && !mask[b]) { h_new[i] = h_prev[i]; out[i] = 0; continue; }
    out[i] = h_new[i];
    """,
    "scratchrnn_finish_projection")


def carry_in_step(t, dh_rec, dh_res, delta, dout, has_dout, mask, use_mask, rec) -> None:
    Bn, P = dh_rec.shape
    d = _flat(dout[t]) if has_dout else _flat(dout[0])
    _carry_in(_flat(dh_rec), d, int(has_dout), _row(mask, t, use_mask), int(use_mask), P,
              _flat(dh_res), _flat(delta), _flat(rec[t]), size=Bn * P)


def finish_projection(t, hs, rp, wp, out, mask, use_mask) -> None:
    _, Bn, P = hs.shape
    _finish_projection(_flat(hs[rp]), _row(mask, t, use_mask), int(use_mask), P,
                       _flat(hs[wp]), _flat(out[t]), size=Bn * P)


# --------------------------------------------------------------------------- #
# The per-cell kernels, printed from the cell's pointwise functions
# --------------------------------------------------------------------------- #
def _c(expr: Any) -> str:
    return pwise.c_expr(expr)


def forward_source(cell: CellSpec) -> tuple[str, str, str]:
    """(in_params, out_params, body) of ``cell``'s forward ElementwiseKernel."""
    fwd = pwise.parse(cell.forward)
    G, S, proj = cell.gates, len(cell.state), cell.projection
    cf = [f.name for f in fields(cell.cache)]
    xs, hs, prevs = fwd.args[:G], fwd.args[G:2 * G], fwd.args[2 * G:]
    new_state, new_cache = fwd.returns
    own = range(int(proj), S)          # the states this kernel writes (not a projected h)
    ins = ["raw T xw", "raw T hw", "raw T b_ih", "raw T b_hh"]
    ins += [f"raw T S{s}_prev" for s in own]
    ins += ["raw bool mask", "int32 use_mask", "int32 H"]
    outs = [f"raw T S{s}_new" for s in own] + [f"raw T K_{f}" for f in cf] + ["raw T hout"]
    body = [f"int b = i / H, k = i % H, j = b * {G} * H + k;",
            "if (use_mask && !mask[b]) {"]
    body += [f"    S{s}_new[i] = S{s}_prev[i];" for s in own]
    body += ["    hout[i] = 0;", "    continue;", "}"]
    body += [f"T v_{a} = xw[j + {g} * H] + b_ih[{g} * H + k];" for g, a in enumerate(xs)]
    body += [f"T v_{a} = hw[j + {g} * H] + b_hh[{g} * H + k];" for g, a in enumerate(hs)]
    body += [f"T v_{a} = S{s}_prev[i];" for s, a in enumerate(prevs) if fwd.used(a)]
    body += pwise.c_lines(fwd, set(fwd.args))
    body += [f"S{s}_new[i] = {_c(new_state[s])};" for s in own]
    body += [f"K_{f}[i] = {_c(e)};" for f, e in zip(cf, new_cache)]
    body += [f"hout[i] = {_c(new_state[0])};"]
    return ", ".join(ins), ", ".join(outs), "\n".join(body)


def backward_source(cell: CellSpec) -> tuple[str, str, str]:
    """(in_params, out_params, body) of ``cell``'s backward ElementwiseKernel."""
    bwd = pwise.parse(cell.backward, cell.cache)
    G, S, proj = cell.gates, len(cell.state), cell.projection
    cf = [f.name for f in fields(cell.cache)]
    dstate, prevs = bwd.args[:S], bwd.args[S:2 * S]
    da_x, da_h, direct = bwd.returns
    k = bwd.cache_arg
    ins = ["raw T dh_rec", "raw T dout", "int32 has_dout"]
    ins += [f"raw T S{s}_prev" for s in range(S)]
    ins += [f"raw T K_{f}" for f in cf] + ["raw T dm", "raw bool mask", "int32 use_mask",
                                            "int32 H", "int32 record"]
    outs = ["raw T dh_res"] + [f"raw T D{s}" for s in range(1, S)] + ["raw T da_x"]
    outs += ["raw T da_h"] if cell.separate_h_grad else []
    outs += ["raw T rec"]
    zero_da = [f"da_x[j + {g} * H] = 0;" for g in range(G)]
    if cell.separate_h_grad:
        zero_da += [f"da_h[j + {g} * H] = 0;" for g in range(G)]
    body = [f"int b = i / H, k = i % H, j = b * {G} * H + k;"]
    if proj:
        body += ["if (use_mask && !mask[b]) {", *("    " + z for z in zero_da),
                 "    continue;", "}", f"T v_{dstate[0]} = dm[i];"]
    else:
        body += ["T dhc = dh_rec[i] + dh_res[i];",
                 "if (use_mask && !mask[b]) {",
                 "    dh_res[i] = dhc;", *("    " + z for z in zero_da),
                 "    if (record) rec[i] = 0;", "    continue;", "}",
                 f"T v_{dstate[0]} = dhc + (has_dout ? dout[i] : T(0));",
                 f"if (record) rec[i] = v_{dstate[0]};"]
    body += [f"T v_{dstate[s]} = D{s}[i];" for s in range(1, S)]
    body += [f"T v_{a} = S{s}_prev[i];" for s, a in enumerate(prevs) if bwd.used(a)]
    body += [f"T v_{k}_{f} = K_{f}[i];" for f in cf if bwd.used(f"{k}_{f}")]
    body += pwise.c_lines(bwd, set(bwd.args) | {f"{k}_{f}" for f in cf})
    body += [f"da_x[j + {g} * H] = {_c(e)};" for g, e in enumerate(da_x)]
    if cell.separate_h_grad:
        body += [f"da_h[j + {g} * H] = {_c(e)};" for g, e in enumerate(da_h)]
    if not proj:
        body += [f"dh_res[i] = {'0' if pwise.is_zero(direct[0]) else _c(direct[0])};"]
    body += [f"D{s}[i] = {_c(direct[s])};" for s in range(1, S)]
    return ", ".join(ins), ", ".join(outs), "\n".join(body)


@dataclass(frozen=True)
class CellKernels:
    """A cell's two ElementwiseKernels behind the numba target's call signatures."""

    cell: CellSpec
    forward_kernel: Any
    backward_kernel: Any

    def forward_step(self, t, xw, hw, b_ih, b_hh, *rest) -> None:
        S, proj = len(self.cell.state), self.cell.projection
        states, (rp, wp), rest = rest[:S], rest[S:S + 2], rest[S + 2:]
        ncache = len(fields(self.cell.cache))
        caches, (hout, mask, use_mask) = rest[:ncache], rest[ncache:]
        Bn, _, H = hw.shape
        own = states[int(proj):]
        self.forward_kernel(
            _flat(xw[t]), _flat(hw), _flat(b_ih), _flat(b_hh), *(_flat(s[rp]) for s in own),
            _row(mask, t, use_mask), int(use_mask), H,
            *(_flat(s[wp]) for s in own), *(_flat(c[t]) for c in caches), _flat(hout[t]),
            size=Bn * H)

    def backward_step(self, t, dh_rec, dh_res, *rest) -> None:
        S = len(self.cell.state)
        d_other, rest = rest[:S - 1], rest[S - 1:]
        dout, has_dout, rest = rest[0], rest[1], rest[2:]
        states, rp, rest = rest[:S], rest[S], rest[S + 1:]
        ncache = len(fields(self.cell.cache))
        caches, rest = rest[:ncache], rest[ncache:]
        dm, da_x, da_h, _db_x, _db_h, mask, use_mask, rec, record = rest
        Bn, H = da_x.shape[1], da_x.shape[3]
        d = _flat(dout[t]) if has_dout else _flat(dout[0])
        r = _flat(rec[t]) if record else _flat(rec)
        self.backward_kernel(
            _flat(dh_rec), d, int(has_dout), *(_flat(s[rp]) for s in states),
            *(_flat(c[t]) for c in caches), _flat(dm), _row(mask, t, use_mask), int(use_mask),
            H, int(record), _flat(dh_res), *(_flat(g) for g in d_other), _flat(da_x[t]),
            *((_flat(da_h[t]),) if self.cell.separate_h_grad else ()), r, size=Bn * H)


_compiled: dict[str, CellKernels] = {}


def kernels(cell: CellSpec) -> CellKernels:
    """The kernels of ``cell``, built on first use (CuPy compiles them at first launch)."""
    if cell.name not in _compiled:
        fwd = cupy.ElementwiseKernel(*forward_source(cell), f"scratchrnn_{cell.name}_fwd",
                                     preamble=PREAMBLE)
        bwd = cupy.ElementwiseKernel(*backward_source(cell), f"scratchrnn_{cell.name}_bwd",
                                     preamble=PREAMBLE)
        _compiled[cell.name] = CellKernels(cell, fwd, bwd)
    return _compiled[cell.name]
