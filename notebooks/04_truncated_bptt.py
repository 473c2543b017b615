# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Truncated BPTT: what it keeps and what it drops
#
# Full BPTT holds the whole sequence. Truncating it bounds the memory and
# the work, at the price of a biased gradient. With $L = \sum_t L_t$, the
# full weight gradient sums every path from the parameters, entering the
# state at step $\tau$ ($M_\tau = \partial s_\tau/\partial\theta$ with
# $s_{\tau-1}$ fixed), to an output $t \ge \tau$:
#
# $$
# \frac{\partial L}{\partial\theta} = \sum_t \sum_{\tau \le t}
#   \frac{\partial L_t}{\partial h_t}\,\frac{\partial s_t}{\partial s_\tau}\,M_\tau .
# $$
#
# **BPTT(k)** (Williams & Peng 1990) keeps the paths with $t - \tau < k$:
# every output's error goes back at most $k - 1$ steps. The forward pass is
# untouched. `scratchrnn.study.truncation_bias` computes this $g_k$ for every
# $k$ in one backward sweep, from the cells' own step derivatives, and
# reports $\|g_k - g\|/\|g\|$ and $\cos(g_k, g)$; for $k \ge T$, $g_k$ is $g$.

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchrnn as sr
from scratchrnn import study


def adding_problem(n: int, T: int, rng: np.random.Generator):
    """The adding problem of examples/vanishing_gradients.py: x (T, n, 2) holds a
    value in [0, 1) and a marker, 1 at one step of each half; y (n, 1) the sum of the
    two marked values."""
    values = rng.uniform(0.0, 1.0, (T, n))
    first = rng.integers(0, T // 2, n)
    second = rng.integers(T // 2, T, n)
    marker = np.zeros((T, n))
    marker[first, np.arange(n)] = 1.0
    marker[second, np.arange(n)] = 1.0
    return np.stack([values, marker], axis=2), (values * marker).sum(axis=0)[:, None]


T, B, H = 40, 32, 16
rng = np.random.default_rng(0)
x, y = adding_problem(B, T, rng)


def make(kind: str):
    g = sr.backend.Generator(0)
    if kind == "tanh RNN":
        return sr.RNN(2, H, dtype="float64", generator=g)
    if kind == "GRU":
        return sr.GRU(2, H, dtype="float64", generator=g)
    lstm = sr.LSTM(2, H, dtype="float64", generator=g)
    lstm.bias_ih_l0.data[H:2 * H] += 1.0        # forget-gate bias +1, as the example does
    return lstm


def d_output_of_final_loss(rnn, head):
    """∂L/∂output for L = MSE(head(h_T), y): the loss reads only the last output."""
    out, _ = rnn(x)                                                  # (T, B, H)
    mse = sr.MSELoss()
    mse(head(out[-1]), y)
    d_out = np.zeros_like(out)
    d_out[-1] = head.backward(mse.backward())                        # (B, H)
    return d_out


ks = list(range(1, T + 6))
results = {}
for kind in ("tanh RNN", "GRU", "LSTM"):
    rnn = make(kind)
    head = sr.Linear(H, 1, dtype="float64", generator=sr.backend.Generator(1))
    d_out = d_output_of_final_loss(rnn, head)
    res = study.truncation_bias(rnn, x, d_out, ks)
    rnn.zero_grad()                                                  # the layer's own BPTT
    rnn(x)
    rnn.backward(d_out)
    for name, p in rnn.named_parameters():
        assert np.abs(res.full[name] - p.grad).max() <= 1e-12 * np.abs(p.grad).max()
    assert all(e == 0.0 for k, e in zip(ks, res.rel_error) if k >= T)   # k ≥ T: exactly g
    results[kind] = res
    print(f"{kind:9s} relative error of BPTT(k): k=1 {res.rel_error[0]:.2f}, "
          f"k=10 {res.rel_error[9]:.2e}, k=20 {res.rel_error[19]:.2e}, k=T {res.rel_error[T - 1]}")

# %% [markdown]
# The loss reads only the last output, so $g_k$ keeps the inputs of the last
# $k$ steps. The first marker of the adding problem sits more than $T/2 = 20$
# steps before the end: for $k \le 20$ its contribution to the gradient is
# dropped entirely. Left: how much of the full gradient enters $d$ steps
# back ($\|C_d\|$, $g_k = \sum_{d<k} C_d$); right: the bias of BPTT(k).

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for kind, res in results.items():
    axes[0].semilogy(range(T), res.by_distance, label=kind)
    axes[1].semilogy(ks, np.maximum(res.rel_error, 1e-17), label=kind)
axes[0].set(xlabel="steps back d = T−1−τ", ylabel="‖C_d‖",
            title="the full gradient, by how far back it enters")
axes[1].set(xlabel="truncation length k", ylabel="‖g_k − g‖ / ‖g‖",
            title="bias of BPTT(k) (0 for k ≥ T, drawn at 1e-17)")
for ax in axes:
    ax.axvspan(T // 2, T, color="0.9", zorder=0)
    ax.legend()
axes[0].text(T * 0.52, axes[0].get_ylim()[1] * 0.3, "first marker", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# At initialisation the tanh RNN's and the GRU's gradients fade with
# distance (notebook 3), so truncation costs them little in norm: BPTT(10)
# is within 1 % of the full gradient. But the part it drops is the part that
# carries the first marker -- the one thing the adding problem needs from far back.
# How fast the bias falls with $k$ is a property of the cell: the LSTM, with
# its forget gate opened, gets far more of its gradient from beyond 20 steps,
# and BPTT(20) still misses several percent of it.
#
# ## The trainer's chunked TBPTT
#
# A language model's trainer (`scratchrnn.training`) cuts a long stream into
# windows of $k$ steps, runs each window from the previous window's final
# state and back-propagates inside the window only. It **keeps** the state:
# the forward pass over the chunks computes exactly what one pass over the
# whole stream computes. It **drops** every gradient path that crosses a
# window boundary: an output at position $j$ of its window ($0 \le j < k$)
# keeps the paths $t - \tau \le j$ -- $k$ steps for the last output of a
# window, one step for the first -- where BPTT(k) gives every output $k$.
# `study.chunked_gradient` runs the layer exactly that way (and equals RTRL
# with its sensitivity reset at each window's start: tests/test_study.py).
#
# A loss at every step shows the difference, as in language modelling:
# here each step's output should predict, through a fixed linear readout,
# the input of $\delta = 4$ steps earlier.

# %%
T2, delta = 48, 4
rnn = make("LSTM")
x2 = np.concatenate([rng.standard_normal((T2, B, 1)), np.zeros((T2, B, 1))], axis=2)
target = np.zeros((T2, B))
target[delta:] = x2[:-delta, :, 0]                                   # y_t = x_{t-δ}
w = sr.backend.Generator(2).normal((H,), sr.get_backend("numpy"), "float64")

out_full, _ = rnn(x2)
err = out_full @ w - target                                          # (T, B)
d_out2 = err[:, :, None] * w / (T2 * B)          # ∂/∂h_t of Σ_t (w·h_t − y_t)² / (2TB)

# what it keeps: the state carried across windows gives the same outputs
state, outs = None, []
for lo in range(0, T2, 8):
    o, state = rnn(x2[lo:lo + 8], state)
    outs.append(o)
assert np.array_equal(np.concatenate(outs), out_full)
print("outputs of 8-step windows with the state carried == outputs of one pass")

chunks = [1, 2, 3, 4, 6, 8, 12, 16, 24, 48]
res2 = study.truncation_bias(rnn, x2, d_out2, chunks)
full = study.flat_gradient(rnn, res2.full)
chunk_err = []
for k in chunks:
    g = study.flat_gradient(rnn, study.chunked_gradient(rnn, x2, d_out2, k))
    chunk_err.append(float(np.linalg.norm(g - full) / np.linalg.norm(full)))
assert chunk_err[-1] < 1e-12                                         # one window: full BPTT
assert res2.rel_error[-1] == 0.0
for k, e_bptt, e_chunk in zip(chunks, res2.rel_error, chunk_err):
    print(f"k = {k:2d}: BPTT(k) bias {e_bptt:.3f}   chunked TBPTT bias {e_chunk:.3f}")
    assert e_chunk >= e_bptt - 1e-12          # windows of k keep fewer paths than BPTT(k)

# %%
fig, ax = plt.subplots(figsize=(7, 4.2))
ax.plot(chunks, res2.rel_error, "o-", label="BPTT(k): every output keeps k steps")
ax.plot(chunks, chunk_err, "s-", label="chunked TBPTT, windows of k (the trainer)")
ax.set(xscale="log", xlabel="k", ylabel="‖g_k − g‖ / ‖g‖",
       title=f"predict x_(t−{delta}): bias against k (LSTM, T = {T2})")
ax.set_xticks(chunks, [str(k) for k in chunks])
ax.legend()
plt.show()

# %% [markdown]
# With windows of $k$ steps the bias is larger than BPTT(k)'s at every $k$
# below $T$: the outputs early in each window keep only a few steps. It is
# close to the bias of BPTT with about half the length ($(k+1)/2$ is the
# mean number of steps an output keeps), so windows must be several times longer than the
# dependencies the model should learn; language models are trained with
# windows of 35 to a few hundred steps. The carried state is still worth
# having: it gives every window the right starting point, although no
# gradient flows through it.
