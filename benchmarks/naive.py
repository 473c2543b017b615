"""The naive per-timestep NumPy RNN/GRU/LSTM, as most from-scratch tutorials write it.

Every step does one matrix product for x_t and one for h_{t-1}, keeps its
cache in a Python list, and backward accumulates the weight gradients one
step at a time. Used by ``benchmarks/layers.py`` as the floor to beat; the
math matches PyTorch's equations so the timings compare like with like.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


class NaiveRNN:
    """cell: 'rnn_tanh', 'gru' or 'lstm'; weights stored as W_x (I, G·H), W_h (H, G·H)."""

    def __init__(self, cell: str, I: int, H: int, dtype: str = "float32", seed: int = 0,
                 xp=np) -> None:
        G = {"rnn_tanh": 1, "gru": 3, "lstm": 4}[cell]
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(H)
        self.cell, self.H, self.G, self.xp = cell, H, G, xp
        self.Wx = xp.asarray(rng.uniform(-k, k, (I, G * H)), dtype=dtype)
        self.Wh = xp.asarray(rng.uniform(-k, k, (H, G * H)), dtype=dtype)
        self.bx = xp.asarray(rng.uniform(-k, k, G * H), dtype=dtype)
        self.bh = xp.asarray(rng.uniform(-k, k, G * H), dtype=dtype)

    def forward(self, x):
        xp, H = self.xp, self.H
        T, B, _ = x.shape
        h = xp.zeros((B, H), dtype=x.dtype)
        c = xp.zeros((B, H), dtype=x.dtype)
        self.caches, hs = [], []
        for t in range(T):
            xt = x[t]
            ax = xt @ self.Wx + self.bx
            ah = h @ self.Wh + self.bh
            if self.cell == "rnn_tanh":
                h_new = xp.tanh(ax + ah)
                self.caches.append((xt, h, h_new))
            elif self.cell == "gru":
                r = _sigmoid(ax[:, :H] + ah[:, :H])
                z = _sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
                n = xp.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
                h_new = (1 - z) * n + z * h
                self.caches.append((xt, h, r, z, n, ah[:, 2 * H:]))
            else:
                a = ax + ah
                i = _sigmoid(a[:, :H])
                f = _sigmoid(a[:, H:2 * H])
                g = xp.tanh(a[:, 2 * H:3 * H])
                o = _sigmoid(a[:, 3 * H:])
                c_new = f * c + i * g
                tc = xp.tanh(c_new)
                h_new = o * tc
                self.caches.append((xt, h, c, i, f, g, o, tc))
                c = c_new
            h = h_new
            hs.append(h)
        return xp.stack(hs)

    def backward(self, dout):
        xp, H = self.xp, self.H
        T, B, _ = dout.shape
        dWx, dWh = xp.zeros_like(self.Wx), xp.zeros_like(self.Wh)
        dbx, dbh = xp.zeros_like(self.bx), xp.zeros_like(self.bh)
        dx = []
        dh_next = xp.zeros((B, H), dtype=dout.dtype)
        dc_next = xp.zeros((B, H), dtype=dout.dtype)
        for t in reversed(range(T)):
            dh = dout[t] + dh_next
            if self.cell == "rnn_tanh":
                xt, h_prev, h = self.caches[t]
                dax = dah = dh * (1 - h * h)
                dh_next = dah @ self.Wh.T
            elif self.cell == "gru":
                xt, h_prev, r, z, n, hn = self.caches[t]
                dn = dh * (1 - z) * (1 - n * n)
                dr = dn * hn * r * (1 - r)
                dz = dh * (h_prev - n) * z * (1 - z)
                dax = xp.concatenate([dr, dz, dn], axis=1)
                dah = xp.concatenate([dr, dz, dn * r], axis=1)
                dh_next = dah @ self.Wh.T + dh * z
            else:
                xt, h_prev, c_prev, i, f, g, o, tc = self.caches[t]
                dc = dc_next + dh * o * (1 - tc * tc)
                dax = dah = xp.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                                            dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
                dh_next = dah @ self.Wh.T
                dc_next = dc * f
            dWx += xt.T @ dax
            dWh += h_prev.T @ dah
            dbx += dax.sum(0)
            dbh += dah.sum(0)
            dx.append(dax @ self.Wx.T)
        self.grads = (dWx, dWh, dbx, dbh)
        return xp.stack(dx[::-1])
