"""Fused CPU kernels: one numba loop per cell step, forward and backward.

The CPU twin of :mod:`scratchrnn.backend.cupy_cells`. Each kernel does all
the elementwise work of one time step over the batch in a single pass over
memory (what the portable path does in 10-30 small NumPy calls); the
matrix products stay in NumPy/BLAS (see :mod:`scratchrnn.backend.fast_scan`).
The equations are the cells' own (``scratchrnn/cells/*.py``), unchanged.

Layouts (all C-contiguous; T time, B batch, G gates, H hidden):

    xw     (T, B, G, H)   input projection x W_ih^T of all steps
    g0..   (T, B, H)      the activated gates, one array each (the cache)
    hw     (B, G, H)      h_{t-1} W_hh^T of the current step (scratch: the
                          kernel adds the biases into it first)
    bias   (G, H)         b_ih + b_hh (the GRU candidate: b_hh in ``b_hn``)
    hs, cs (T+1, B, H)    states; step t reads slot ``rp`` and writes ``wp``
    da     (T, B, G, H)   ∂L/∂pre-activations, written by the backward kernels
    mask   (T, B) bool    t < length[b]; read only when ``use_mask``

The gate index is a constant in every access, so each gate block is its own
contiguous row and LLVM vectorises the inner loop over H (numba's
``error_model='numpy'`` removes the division checks that would stop it).
Measured here, the main loop stays scalar (5-8x slower) as soon as it both
writes gate rows of one array at run-time offsets (gates in a (T, B, G, H)
array, or in place over ``xw``), accumulates bias gradients in the loop or
reads one more row array (the bias): the vectoriser cannot bound how such
rows overlap. Hence one array per gate, a small first loop folding the
bias into ``hw``, and bias gradients summed in loops of their own.
tanh in float32 is a rational approximation (|error| < 5e-7, plain
arithmetic, so it vectorises; libm's tanhf does not); float64 keeps
``math.tanh``.  Kernels are serial on purpose: numba's threading layer and
OpenBLAS's threads slow each other down badly.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import overload

_JIT = dict(cache=True, nogil=True, error_model="numpy",
            fastmath={"contract", "arcp", "nsz"})

# tanh(x) ≈ x P(x²) / Q(x²) on [-9, 9] (tanh(±9) = ±1 in float32), fitted for this module.
_P = (0.9999999944286927, -0.15887199784426523, 0.031416252854081575, 0.007962043472326756,
      0.0002271186464554118, 1.3588038111496904e-06, 8.729158594597959e-10)
_Q = (1.0, 0.1744612459893807, -0.04376308858437347, 0.024080834495984128,
      0.0016351945265772549, 2.160249835510185e-05, 5.11344552499763e-08)
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = (np.float32(v) for v in _P)
_Q0, _Q1, _Q2, _Q3, _Q4, _Q5, _Q6 = (np.float32(v) for v in _Q)
_CLIP = np.float32(9.0)
_ONE = np.float32(1.0)


@numba.njit(inline="always", **_JIT)
def _tanh_f32(x):
    x = min(max(x, -_CLIP), _CLIP)
    s = x * x
    p = (((((_P6 * s + _P5) * s + _P4) * s + _P3) * s + _P2) * s + _P1) * s + _P0
    q = (((((_Q6 * s + _Q5) * s + _Q4) * s + _Q3) * s + _Q2) * s + _Q1) * s + _Q0
    return min(max(x * p / q, -_ONE), _ONE)               # keep |tanh| <= 1 exactly


def tanh(x):  # pragma: no cover - replaced by the overload inside kernels
    return math.tanh(x)


@overload(tanh, inline="always", jit_options=_JIT)
def _tanh_overload(x):
    if x == types.float32:
        return lambda x: _tanh_f32(x)
    return lambda x: math.tanh(x)


def const(like, value):  # pragma: no cover - replaced by the overload inside kernels
    return value


@overload(const, inline="always", jit_options=_JIT)
def _const_overload(like, value):
    """``value`` in ``like``'s dtype: a bare 1.0 would promote float32 math to float64."""
    if like.dtype == types.float32:
        return lambda like, value: np.float32(value)
    return lambda like, value: np.float64(value)


@numba.njit(inline="always", **_JIT)
def _sigmoid(a, half, one):
    return half * (tanh(half * a) + one)   # σ(a) = (1 + tanh(a/2)) / 2, as the cells


# --------------------------------------------------------------------------- #
# Small loops kept out of the fused ones (see the module docstring)
# --------------------------------------------------------------------------- #
@numba.njit(inline="always", **_JIT)
def _add_rows(dst, src, G):
    """dst[g, :] += src[g, :] for g < G, one gate row at a time."""
    for g in range(G):
        d, s = dst[g], src[g]
        for k in range(d.shape[0]):
            d[k] += s[k]


@numba.njit(inline="always", **_JIT)
def _carry_in(t, b, dh_rec, dh_res, dout, has_dout, rec, record):
    """δ = dh_rec + dh_res + dout[t] for valid steps, kept in dh_res (and in rec)."""
    d_rec, d_res = dh_rec[b], dh_res[b]
    if has_dout:
        d_o = dout[t, b]
        for k in range(d_res.shape[0]):
            d_res[k] += d_rec[k] + d_o[k]
    else:
        for k in range(d_res.shape[0]):
            d_res[k] += d_rec[k]
    if record:
        rec[t, b, :] = d_res


@numba.njit(inline="always", **_JIT)
def _pass_padding(t, b, dh_rec, dh_res, da, rec, record):
    """A padded step: δ carries on to h_{t-1} unchanged, nothing flows into the gates."""
    d_rec, d_res = dh_rec[b], dh_res[b]
    for k in range(d_res.shape[0]):
        d_res[k] += d_rec[k]
    da[t, b, :, :] = 0
    if record:
        rec[t, b, :] = 0


# --------------------------------------------------------------------------- #
# Elman:  h = φ(xw + hw + bias)            φ = tanh | relu
# --------------------------------------------------------------------------- #
@numba.njit(**_JIT)
def elman_forward_step(t, xw, hw, bias, hs, rp, wp, out, mask, use_mask, relu):
    Bn, H = hw.shape[0], hw.shape[2]
    zero = const(xw, 0.0)
    for b in range(Bn):
        h_new, out_t = hs[wp, b], out[t, b]
        if use_mask and not mask[t, b]:          # padding: keep the state, output 0
            h_new[:] = hs[rp, b]
            out_t[:] = zero
            continue
        _add_rows(hw[b], bias, 1)
        x, r = xw[t, b, 0], hw[b, 0]
        for k in range(H):
            a = x[k] + r[k]
            h = max(a, zero) if relu else tanh(a)
            h_new[k] = h
            out_t[k] = h


@numba.njit(**_JIT)
def elman_backward_step(t, dh_rec, dh_res, dout, has_dout, hs, wp, da, dbias, mask, use_mask,
                        relu, rec, record):
    """da = δ ⊙ φ'(a); the carry's non-GEMM part ``dh_res`` is 0 after a valid step."""
    Bn, H = dh_rec.shape
    zero, one = const(da, 0.0), const(da, 1.0)
    for b in range(Bn):
        if use_mask and not mask[t, b]:
            _pass_padding(t, b, dh_rec, dh_res, da, rec, record)
            continue
        _carry_in(t, b, dh_rec, dh_res, dout, has_dout, rec, record)
        d_res, h, d_a = dh_res[b], hs[wp, b], da[t, b, 0]
        for k in range(H):
            dh = d_res[k]
            if relu:
                d_a[k] = dh if h[k] > zero else zero
            else:
                d_a[k] = dh * (one - h[k] * h[k])
            d_res[k] = zero
        _add_rows(dbias, da[t, b], 1)


# --------------------------------------------------------------------------- #
# GRU (gates r, z, n):  r = σ(xr+hr)  z = σ(xz+hz)  n = tanh(xn + r ⊙ hn)
#                       h = n + z ⊙ (h_prev - n)
# --------------------------------------------------------------------------- #
@numba.njit(**_JIT)
def gru_forward_step(t, xw, hw, bias, b_hn, hs, rp, wp, g_r, g_z, g_n, hn_all, out, mask,
                     use_mask):
    Bn, H = hw.shape[0], hw.shape[2]
    zero, half, one = const(xw, 0.0), const(xw, 0.5), const(xw, 1.0)
    for b in range(Bn):
        h_new, out_t = hs[wp, b], out[t, b]
        if use_mask and not mask[t, b]:
            h_new[:] = hs[rp, b]
            out_t[:] = zero
            continue
        _add_rows(hw[b], bias, 2)                          # hr += b_ir + b_hr, hz += ...
        hn_t, hnw, cn = hn_all[t, b], hw[b, 2], bias[2]
        for k in range(H):
            hn_t[k] = hnw[k] + b_hn[k]                     # hn = W_hn h_prev + b_hn
        xr, xz, xn = xw[t, b, 0], xw[t, b, 1], xw[t, b, 2]
        hr, hz = hw[b, 0], hw[b, 1]
        gr, gz, gn = g_r[t, b], g_z[t, b], g_n[t, b]
        h_prev = hs[rp, b]
        for k in range(H):
            r = _sigmoid(xr[k] + hr[k], half, one)
            z = _sigmoid(xz[k] + hz[k], half, one)
            n = tanh(xn[k] + cn[k] + r * hn_t[k])
            h = n + z * (h_prev[k] - n)
            gr[k] = r
            gz[k] = z
            gn[k] = n
            h_new[k] = h
            out_t[k] = h


@numba.njit(**_JIT)
def gru_backward_step(t, dh_rec, dh_res, dout, has_dout, g_r, g_z, g_n, hn_all, hs, rp, da_x,
                      da_h, dbias_x, dbias_h, mask, use_mask, rec, record):
    """da_x = [dar, daz, dan], da_h = [dar, daz, dan ⊙ r]; carry part dh_res = δ ⊙ z."""
    Bn, H = dh_rec.shape
    one = const(da_x, 1.0)
    for b in range(Bn):
        if use_mask and not mask[t, b]:
            _pass_padding(t, b, dh_rec, dh_res, da_x, rec, record)
            da_h[t, b, :, :] = 0
            continue
        _carry_in(t, b, dh_rec, dh_res, dout, has_dout, rec, record)
        d_res = dh_res[b]
        r_, z_, n_ = g_r[t, b], g_z[t, b], g_n[t, b]
        hn_, h_prev = hn_all[t, b], hs[rp, b]
        dxr, dxz, dxn = da_x[t, b, 0], da_x[t, b, 1], da_x[t, b, 2]
        dhr, dhz, dhn = da_h[t, b, 0], da_h[t, b, 1], da_h[t, b, 2]
        for k in range(H):
            dh = d_res[k]
            r, z, n = r_[k], z_[k], n_[k]
            dan = dh * (one - z) * (one - n * n)               # tanh' = 1 - n²
            dar = dan * hn_[k] * r * (one - r)                 # σ' = σ(1 - σ)
            daz = dh * (h_prev[k] - n) * z * (one - z)
            dxr[k] = dar
            dxz[k] = daz
            dxn[k] = dan
            dhr[k] = dar
            dhz[k] = daz
            dhn[k] = dan * r
            d_res[k] = dh * z
        _add_rows(dbias_x, da_x[t, b], 3)
        g, s = dbias_h[2], dhn
        for k in range(H):
            g[k] += s[k]


# --------------------------------------------------------------------------- #
# LSTM (gates i, f, g, o):  c = f ⊙ c_prev + i ⊙ g,   h = o ⊙ tanh(c)
# --------------------------------------------------------------------------- #
@numba.njit(**_JIT)
def lstm_forward_step(t, xw, hw, bias, hs, cs, rp, wp, g_i, g_f, g_g, g_o, tanh_c, out, mask,
                      use_mask):
    Bn, H = hw.shape[0], hw.shape[2]
    zero, half, one = const(xw, 0.0), const(xw, 0.5), const(xw, 1.0)
    for b in range(Bn):
        h_new, c_new, out_t = hs[wp, b], cs[wp, b], out[t, b]
        if use_mask and not mask[t, b]:
            h_new[:] = hs[rp, b]
            c_new[:] = cs[rp, b]
            out_t[:] = zero
            continue
        _add_rows(hw[b], bias, 4)
        xi, xf, xg, xo = xw[t, b, 0], xw[t, b, 1], xw[t, b, 2], xw[t, b, 3]
        hi, hf, hg, ho = hw[b, 0], hw[b, 1], hw[b, 2], hw[b, 3]
        gi, gf, gg, go = g_i[t, b], g_f[t, b], g_g[t, b], g_o[t, b]
        c_prev, tc_t = cs[rp, b], tanh_c[t, b]
        for k in range(H):
            i = _sigmoid(xi[k] + hi[k], half, one)
            f = _sigmoid(xf[k] + hf[k], half, one)
            g = tanh(xg[k] + hg[k])
            o = _sigmoid(xo[k] + ho[k], half, one)
            c = f * c_prev[k] + i * g
            tc = tanh(c)
            gi[k] = i
            gf[k] = f
            gg[k] = g
            go[k] = o
            c_new[k] = c
            tc_t[k] = tc
            h_new[k] = o * tc
            out_t[k] = o * tc


@numba.njit(**_JIT)
def lstm_backward_step(t, dh_rec, dh_res, dc, dout, has_dout, g_i, g_f, g_g, g_o, tanh_c, cs, rp,
                       da, dbias, mask, use_mask, rec, record):
    """da = [dc g i(1-i), dc c_prev f(1-f), dc i (1-g²), δ tanh(c) o(1-o)];  dc <- dc ⊙ f."""
    Bn, H = dh_rec.shape
    zero, one = const(da, 0.0), const(da, 1.0)
    for b in range(Bn):
        if use_mask and not mask[t, b]:
            _pass_padding(t, b, dh_rec, dh_res, da, rec, record)
            continue
        _carry_in(t, b, dh_rec, dh_res, dout, has_dout, rec, record)
        d_res, d_c = dh_res[b], dc[b]
        i_, f_, g_, o_ = g_i[t, b], g_f[t, b], g_g[t, b], g_o[t, b]
        tc_, c_prev = tanh_c[t, b], cs[rp, b]
        dai, daf, dag, dao = da[t, b, 0], da[t, b, 1], da[t, b, 2], da[t, b, 3]
        for k in range(H):
            dh = d_res[k]
            i, f, g, o, tc = i_[k], f_[k], g_[k], o_[k], tc_[k]
            dct = d_c[k] + dh * o * (one - tc * tc)
            dai[k] = dct * g * i * (one - i)
            daf[k] = dct * c_prev[k] * f * (one - f)
            dag[k] = dct * i * (one - g * g)
            dao[k] = dh * tc * o * (one - o)
            d_c[k] = dct * f
            d_res[k] = zero
        _add_rows(dbias, da[t, b], 4)
