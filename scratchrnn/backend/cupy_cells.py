"""Fused GPU kernels: one CUDA elementwise kernel per cell step, forward and backward.

The GPU twin of :mod:`scratchrnn.backend.numba_cells`, with the same function
names and arguments, so :mod:`scratchrnn.backend.fast_scan` drives either: a
time step is one cuBLAS product (``h_{t-1} W_hh^T``, or ``da_h W_hh`` going
back) plus one of these kernels, instead of the 10-30 small kernels of the
portable path. Each kernel runs one thread per (b, k) element of the batch
(B·H threads); in the (B, G, H) arrays (``xw``, ``hw``, ``da``) gate g of
element (b, k) sits at ``b·G·H + g·H + k``; the cached gates are one array
each. Bias gradients are reduced over the batch with one ``sum`` per step.
CUDA-graph capture of the time loop is not done (unmeasured). Without a GPU,
``tests/test_cupy_kernels_on_cpu.py`` compiles these kernel bodies as C++ and
checks them against the portable path on the CPU.

Every array handed to a kernel is a contiguous 1-D view, so the raw
indexing below is plain offset arithmetic. The equations are the cells' own
(``scratchrnn/cells/*.py``); ``T`` in the CUDA code is the float type.
"""

from __future__ import annotations

from typing import Any

import cupy

_PREAMBLE = r"""
template <typename F> __device__ __forceinline__ F sigm(F a) {
    return F(0.5) * (tanh(F(0.5) * a) + F(1));   // σ(a) = (1 + tanh(a/2)) / 2
}
"""

# ---- Elman ---------------------------------------------------------------- #
_elman_fwd = cupy.ElementwiseKernel(
    "raw T xw, raw T hw, raw T bias, raw T h_prev, raw bool mask, int32 use_mask, "
    "int32 H, int32 relu",
    "raw T h_new, raw T out",
    r"""
    int b = i / H, k = i % H;
    if (use_mask && !mask[b]) { h_new[i] = h_prev[i]; out[i] = 0; continue; }
    T a = xw[i] + hw[i] + bias[k];
    T h = relu ? (a > T(0) ? a : T(0)) : tanh(a);
    h_new[i] = h;
    out[i] = h;
    """,
    "scratchrnn_elman_fwd", preamble=_PREAMBLE)

_elman_bwd = cupy.ElementwiseKernel(
    "raw T dh_rec, raw T dout, int32 has_dout, raw T h, raw bool mask, int32 use_mask, "
    "int32 H, int32 relu, int32 record",
    "raw T dh_res, raw T da, raw T rec",
    r"""
    int b = i / H;
    T dhc = dh_rec[i] + dh_res[i];
    if (use_mask && !mask[b]) {
        dh_res[i] = dhc; da[i] = 0; if (record) rec[i] = 0; continue;
    }
    T dh = dhc + (has_dout ? dout[i] : T(0));
    if (record) rec[i] = dh;
    T hv = h[i];
    da[i] = relu ? (hv > T(0) ? dh : T(0)) : dh * (T(1) - hv * hv);
    dh_res[i] = 0;
    """,
    "scratchrnn_elman_bwd")

# ---- GRU ------------------------------------------------------------------ #
_gru_fwd = cupy.ElementwiseKernel(
    "raw T xw, raw T hw, raw T bias, raw T b_hn, raw T h_prev, raw bool mask, "
    "int32 use_mask, int32 H",
    "raw T g_r, raw T g_z, raw T g_n, raw T hn_out, raw T h_new, raw T out",
    r"""
    int b = i / H, k = i % H, j = b * 3 * H + k;
    if (use_mask && !mask[b]) { h_new[i] = h_prev[i]; out[i] = 0; continue; }
    T r = sigm(xw[j] + hw[j] + bias[k]);
    T z = sigm(xw[j + H] + hw[j + H] + bias[H + k]);
    T hn = hw[j + 2 * H] + b_hn[k];
    T n = tanh(xw[j + 2 * H] + bias[2 * H + k] + r * hn);
    T h = n + z * (h_prev[i] - n);
    g_r[i] = r; g_z[i] = z; g_n[i] = n;
    hn_out[i] = hn;
    h_new[i] = h;
    out[i] = h;
    """,
    "scratchrnn_gru_fwd", preamble=_PREAMBLE)

_gru_bwd = cupy.ElementwiseKernel(
    "raw T dh_rec, raw T dout, int32 has_dout, raw T g_r, raw T g_z, raw T g_n, raw T hn, "
    "raw T h_prev, "
    "raw bool mask, int32 use_mask, int32 H, int32 record",
    "raw T dh_res, raw T da_x, raw T da_h, raw T rec",
    r"""
    int b = i / H, k = i % H, j = b * 3 * H + k;
    T dhc = dh_rec[i] + dh_res[i];
    if (use_mask && !mask[b]) {
        dh_res[i] = dhc;
        da_x[j] = da_x[j + H] = da_x[j + 2 * H] = 0;
        da_h[j] = da_h[j + H] = da_h[j + 2 * H] = 0;
        if (record) rec[i] = 0;
        continue;
    }
    T dh = dhc + (has_dout ? dout[i] : T(0));
    if (record) rec[i] = dh;
    T r = g_r[i], z = g_z[i], n = g_n[i];
    T dan = dh * (T(1) - z) * (T(1) - n * n);
    T dar = dan * hn[i] * r * (T(1) - r);
    T daz = dh * (h_prev[i] - n) * z * (T(1) - z);
    da_x[j] = dar; da_x[j + H] = daz; da_x[j + 2 * H] = dan;
    da_h[j] = dar; da_h[j + H] = daz; da_h[j + 2 * H] = dan * r;
    dh_res[i] = dh * z;
    """,
    "scratchrnn_gru_bwd")

# ---- LSTM ----------------------------------------------------------------- #
_lstm_fwd = cupy.ElementwiseKernel(
    "raw T xw, raw T hw, raw T bias, raw T h_prev, raw T c_prev, raw bool mask, "
    "int32 use_mask, int32 H",
    "raw T g_i, raw T g_f, raw T g_g, raw T g_o, raw T tanh_c, raw T h_new, raw T c_new, "
    "raw T out",
    r"""
    int b = i / H, k = i % H, j = b * 4 * H + k;
    if (use_mask && !mask[b]) {
        h_new[i] = h_prev[i]; c_new[i] = c_prev[i]; out[i] = 0; continue;
    }
    T ig = sigm(xw[j] + hw[j] + bias[k]);
    T fg = sigm(xw[j + H] + hw[j + H] + bias[H + k]);
    T gg = tanh(xw[j + 2 * H] + hw[j + 2 * H] + bias[2 * H + k]);
    T og = sigm(xw[j + 3 * H] + hw[j + 3 * H] + bias[3 * H + k]);
    T c = fg * c_prev[i] + ig * gg;
    T tc = tanh(c);
    g_i[i] = ig; g_f[i] = fg; g_g[i] = gg; g_o[i] = og;
    tanh_c[i] = tc;
    c_new[i] = c;
    h_new[i] = og * tc;
    out[i] = og * tc;
    """,
    "scratchrnn_lstm_fwd", preamble=_PREAMBLE)

_lstm_bwd = cupy.ElementwiseKernel(
    "raw T dh_rec, raw T dout, int32 has_dout, raw T g_i, raw T g_f, raw T g_g, raw T g_o, "
    "raw T tanh_c, raw T c_prev, "
    "raw bool mask, int32 use_mask, int32 H, int32 record",
    "raw T dh_res, raw T dc, raw T da, raw T rec",
    r"""
    int b = i / H, k = i % H, j = b * 4 * H + k;
    T dhc = dh_rec[i] + dh_res[i];
    if (use_mask && !mask[b]) {
        dh_res[i] = dhc;
        da[j] = da[j + H] = da[j + 2 * H] = da[j + 3 * H] = 0;
        if (record) rec[i] = 0;
        continue;
    }
    T dh = dhc + (has_dout ? dout[i] : T(0));
    if (record) rec[i] = dh;
    T ig = g_i[i], fg = g_f[i], gg = g_g[i], og = g_o[i];
    T tc = tanh_c[i];
    T dct = dc[i] + dh * og * (T(1) - tc * tc);
    da[j] = dct * gg * ig * (T(1) - ig);
    da[j + H] = dct * c_prev[i] * fg * (T(1) - fg);
    da[j + 2 * H] = dct * ig * (T(1) - gg * gg);
    da[j + 3 * H] = dh * tc * og * (T(1) - og);
    dc[i] = dct * fg;
    dh_res[i] = 0;
    """,
    "scratchrnn_lstm_bwd")


# --------------------------------------------------------------------------- #
# The numba_cells signatures, on CuPy arrays
# --------------------------------------------------------------------------- #
def _flat(a: Any) -> Any:
    """A contiguous array as a 1-D view (the kernels index raw offsets)."""
    return a.reshape(-1)


def _mask_row(mask: Any, t: int, use_mask: bool) -> Any:
    return mask[t] if use_mask else mask.reshape(-1)


def _step_views(t: int, use_dout: bool, dout: Any, record: bool, rec: Any) -> tuple[Any, Any]:
    d = _flat(dout[t]) if use_dout else _flat(dout[0])
    r = _flat(rec[t]) if record else _flat(rec)
    return d, r


def elman_forward_step(t, xw, hw, bias, hs, rp, wp, out, mask, use_mask, relu) -> None:
    Bn, _, H = hw.shape
    _elman_fwd(_flat(xw[t]), _flat(hw), _flat(bias), _flat(hs[rp]),
               _mask_row(mask, t, use_mask), int(use_mask), H, int(relu),
               _flat(hs[wp]), _flat(out[t]), size=Bn * H)


def elman_backward_step(t, dh_rec, dh_res, dout, has_dout, hs, wp, da, dbias, mask, use_mask,
                        relu, rec, record) -> None:
    Bn, H = dh_rec.shape
    d, r = _step_views(t, has_dout, dout, record, rec)
    _elman_bwd(_flat(dh_rec), d, int(has_dout), _flat(hs[wp]), _mask_row(mask, t, use_mask),
               int(use_mask), H, int(relu), int(record), _flat(dh_res), _flat(da[t]), r,
               size=Bn * H)
    dbias += da[t].sum(axis=0)


def gru_forward_step(t, xw, hw, bias, b_hn, hs, rp, wp, g_r, g_z, g_n, hn_all, out, mask,
                     use_mask) -> None:
    Bn, _, H = hw.shape
    _gru_fwd(_flat(xw[t]), _flat(hw), _flat(bias), b_hn, _flat(hs[rp]),
             _mask_row(mask, t, use_mask), int(use_mask), H,
             _flat(g_r[t]), _flat(g_z[t]), _flat(g_n[t]), _flat(hn_all[t]), _flat(hs[wp]),
             _flat(out[t]), size=Bn * H)


def gru_backward_step(t, dh_rec, dh_res, dout, has_dout, g_r, g_z, g_n, hn_all, hs, rp, da_x,
                      da_h, dbias_x, dbias_h, mask, use_mask, rec, record) -> None:
    Bn, H = dh_rec.shape
    d, r = _step_views(t, has_dout, dout, record, rec)
    _gru_bwd(_flat(dh_rec), d, int(has_dout), _flat(g_r[t]), _flat(g_z[t]), _flat(g_n[t]),
             _flat(hn_all[t]),
             _flat(hs[rp]), _mask_row(mask, t, use_mask), int(use_mask), H, int(record),
             _flat(dh_res), _flat(da_x[t]), _flat(da_h[t]), r, size=Bn * H)
    dbias_x += da_x[t].sum(axis=0)
    dbias_h[2] += da_h[t, :, 2].sum(axis=0)


def lstm_forward_step(t, xw, hw, bias, hs, cs, rp, wp, g_i, g_f, g_g, g_o, tanh_c, out, mask,
                      use_mask) -> None:
    Bn, _, H = hw.shape
    _lstm_fwd(_flat(xw[t]), _flat(hw), _flat(bias), _flat(hs[rp]), _flat(cs[rp]),
              _mask_row(mask, t, use_mask), int(use_mask), H,
              _flat(g_i[t]), _flat(g_f[t]), _flat(g_g[t]), _flat(g_o[t]), _flat(tanh_c[t]),
              _flat(hs[wp]), _flat(cs[wp]), _flat(out[t]),
              size=Bn * H)


def lstm_backward_step(t, dh_rec, dh_res, dc, dout, has_dout, g_i, g_f, g_g, g_o, tanh_c, cs, rp,
                       da, dbias, mask, use_mask, rec, record) -> None:
    Bn, H = dh_rec.shape
    d, r = _step_views(t, has_dout, dout, record, rec)
    _lstm_bwd(_flat(dh_rec), d, int(has_dout), _flat(g_i[t]), _flat(g_f[t]), _flat(g_g[t]),
              _flat(g_o[t]), _flat(tanh_c[t]),
              _flat(cs[rp]), _mask_row(mask, t, use_mask), int(use_mask), H, int(record),
              _flat(dh_res), _flat(dc), _flat(da[t]), r, size=Bn * H)
    dbias += da[t].sum(axis=0)
