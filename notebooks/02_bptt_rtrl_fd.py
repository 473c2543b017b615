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
# # Backpropagation through time, three ways
#
# A small Elman RNN, $h_t = \tanh(x_t W_{ih}^\top + b_{ih} + h_{t-1}
# W_{hh}^\top + b_{hh})$, and a loss $L = \sum_t \delta_t \cdot h_t$ for a
# fixed random upstream gradient $\delta_t = \partial L/\partial h_t$
# $(T, B, H)$. Its weight gradient is computed three ways:
#
# 1. **BPTT** (reverse mode), the library's `layer.backward`: run forward,
#    keep every step, then carry $\partial L/\partial h_t$ back from $t = T$.
# 2. **RTRL** (forward mode, Williams & Zipser 1989),
#    `scratchrnn.study.rtrl_gradients`: carry the sensitivity
#    $P_t = \partial h_t/\partial\theta$ forward,
#    $P_t = J_t P_{t-1} + M_t$ with $J_t = \partial h_t/\partial h_{t-1}$
#    $(H, H)$ and $M_t$ the step's own $\partial h_t/\partial\theta$
#    $(H, N_\theta)$, and add $\delta_t P_t$ as each output appears.
# 3. **Finite differences**, one parameter entry at a time.

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchrnn as sr
from scratchrnn import study
from scratchrnn.gradcheck import numerical_gradient, relative_error

T, B, I, H = 8, 2, 3, 4
rnn = sr.RNN(I, H, dtype="float64", generator=sr.backend.Generator(0))
rng = np.random.default_rng(0)
x = rng.standard_normal((T, B, I))
h0 = 0.5 * rng.standard_normal((1, B, H))
delta = rng.standard_normal((T, B, H))                    # ∂L/∂h_t for every t

rnn.zero_grad()
out, h_n = rnn(x, h0)
rnn.backward(delta)
bptt = {name: p.grad.copy() for name, p in rnn.named_parameters()}

rtrl = study.rtrl_gradients(rnn, x, delta, h0=h0)


def loss() -> float:
    out, _ = rnn(x, h0)
    return float(np.sum(delta * out))


fd = {name: numerical_gradient(loss, p.data) for name, p in rnn.named_parameters()}

for name in bptt:
    r_err = np.abs(rtrl[name] - bptt[name]).max() / np.abs(bptt[name]).max()
    f_err = relative_error(bptt[name], fd[name])
    print(f"{name:14s} RTRL vs BPTT {r_err:.1e}   BPTT vs finite differences {f_err:.1e}")
    assert r_err < 1e-10 and f_err < 1e-6

# %%
flat = {k: np.concatenate([v.ravel() for v in g.values()])
        for k, g in (("BPTT", bptt), ("RTRL", rtrl), ("finite differences", fd))}
fig, ax = plt.subplots(figsize=(5, 4.5))
lim = np.abs(flat["BPTT"]).max() * 1.1
ax.plot([-lim, lim], [-lim, lim], color="0.8", linewidth=1)
ax.scatter(flat["BPTT"], flat["RTRL"], s=40, facecolors="none", edgecolors="tab:blue",
           label="RTRL")
ax.scatter(flat["BPTT"], flat["finite differences"], s=8, color="tab:orange",
           label="finite differences")
ax.set_xlabel("BPTT gradient entry")
ax.set_ylabel("same entry, other method")
ax.set_title(f"all {flat['BPTT'].size} weight-gradient entries agree")
ax.legend()
plt.show()

# %% [markdown]
# The three agree: RTRL and BPTT to rounding ($10^{-15}$ relative here),
# finite differences to their own truncation error. They are the same
# derivative, computed in different orders: BPTT multiplies the chain of
# step Jacobians from the left (a vector times matrices), RTRL from the right
# (matrices times a matrix).
#
# ## What each costs
#
# With state size $S$ ($= H$ here) and $N_\theta \approx H(I + H)$ parameters,
# per step and sequence:
#
# | | memory held | time per step |
# |---|---|---|
# | RTRL | $P_t$: $S \cdot N_\theta$, whatever $T$ | $J_t P_{t-1}$: $S^2 N_\theta \sim H^4$ |
# | BPTT | the tape: $T \cdot S$ | $S \cdot N_\theta \sim H^2$ |
#
# `study.rtrl_vs_bptt_cost` measures both (BPTT with the layer's reference
# engine, so that both are the same kind of array code; CPU seconds on one
# BLAS thread, so that the times count work) and counts what each holds. The
# times come from the machine that runs this page; at the smallest sizes they
# measure Python's per-step overhead more than arithmetic.

# %%
by_T = study.rtrl_vs_bptt_cost([(T_, 16) for T_ in (25, 50, 100, 200)], batch=1)
by_H = study.rtrl_vs_bptt_cost([(20, H_) for H_ in (8, 16, 32, 64)], batch=1)
print(study.cost_table(by_T + by_H))
assert all(r.rtrl_held_bytes == by_T[0].rtrl_held_bytes for r in by_T)   # flat in T
assert by_T[-1].bptt_held_bytes == 8 * by_T[0].bptt_held_bytes           # linear in T

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
ax = axes[0]
ax.plot([r.T for r in by_T], [r.rtrl_seconds for r in by_T], "o-", label="RTRL")
ax.plot([r.T for r in by_T], [r.bptt_seconds for r in by_T], "s-", label="BPTT")
ax.set(xscale="log", yscale="log", xlabel="sequence length T (H = 16)", ylabel="CPU seconds",
       title="time against T")
ax = axes[1]
ax.plot([r.H for r in by_H], [r.rtrl_seconds for r in by_H], "o-", label="RTRL")
ax.plot([r.H for r in by_H], [r.bptt_seconds for r in by_H], "s-", label="BPTT")
Hs = np.array([r.H for r in by_H], dtype=float)
ax.plot(Hs, by_H[-1].rtrl_seconds * (Hs / Hs[-1]) ** 4, ":", color="0.5", label="∝ H⁴")
ax.set(xscale="log", yscale="log", xlabel="hidden size H (T = 20)", ylabel="CPU seconds",
       title="time against H (RTRL: S²|θ| ~ H⁴ a step)")
ax = axes[2]
ax.plot([r.T for r in by_T], [r.rtrl_held_bytes / 1024 for r in by_T], "o-", label="RTRL: P_t")
ax.plot([r.T for r in by_T], [r.bptt_held_bytes / 1024 for r in by_T], "s-",
        label="BPTT: the tape")
ax.set(xscale="log", yscale="log", xlabel="sequence length T (H = 16)", ylabel="KiB held",
       title="memory: RTRL flat in T, BPTT linear")
for ax, ticks in zip(axes, ([r.T for r in by_T], [r.H for r in by_H], [r.T for r in by_T])):
    ax.set_xticks(ticks, [str(v) for v in ticks])
    ax.minorticks_off()
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# RTRL never needs the past, which is why it is studied for online learning;
# but its $S \cdot N_\theta$ sensitivity matrix and $S^2N_\theta$ update
# make it impractical beyond small networks, and BPTT, which pays only
# memory linear in $T$, is what every library computes. Notebook 4 looks at
# what is lost when BPTT's memory is bounded by truncating it instead.
