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
# # Vanishing and exploding gradients
#
# BPTT sends the error of an output at step $t$ back to an earlier state
# $s_s$ through a product of step Jacobians:
#
# $$
# \frac{\partial L_t}{\partial s_s} = \frac{\partial L_t}{\partial s_t}
# \frac{\partial s_t}{\partial s_s}, \qquad
# \frac{\partial s_t}{\partial s_s} = J_t J_{t-1} \cdots J_{s+1}, \qquad
# J_\tau = \frac{\partial s_\tau}{\partial s_{\tau-1}} \;(S, S).
# $$
#
# The spectral norm $\|\partial s_t/\partial s_s\|_2$ (largest singular
# value) is the most any error can be amplified over those $t - s$ steps. For
# a tanh RNN, $J_\tau = \mathrm{diag}(1 - h_\tau^2)\, W_{hh}$, so
# $\|J_\tau\|_2 \le \|W_{hh}\|_2$: with $\|W_{hh}\|_2 < 1$ the norm shrinks
# at least geometrically in $t - s$ (Pascanu, Mikolov & Bengio 2013).
# `scratchrnn.study.jacobian_norms` computes every
# $\|\partial s_t/\partial s_s\|_2$ from the cells' own step derivatives
# (for the LSTM the state is $s = [h, c]$, $S = 2H$);
# `study.by_distance` takes the geometric mean over $t$ at each distance.

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchrnn as sr
from scratchrnn import study

T, B, H = 40, 4, 16
rng = np.random.default_rng(0)
x = rng.standard_normal((T, B, 2))


def layer(kind: str, gate_bias: float = 0.0):
    """A layer with PyTorch's initialisation; ``gate_bias`` is added to the GRU's
    update-gate bias (z: keep h_{t-1}) or the LSTM's forget-gate bias (f: keep c_{t-1})."""
    g = sr.backend.Generator(0)
    if kind == "tanh RNN":
        return sr.RNN(2, H, dtype="float64", generator=g)
    cls, block = (sr.GRU, 1) if kind == "GRU" else (sr.LSTM, 1)   # z is GRU block 1, f LSTM's
    rnn = cls(2, H, dtype="float64", generator=g)
    rnn.bias_ih_l0.data[block * H:(block + 1) * H] += gate_bias
    return rnn


# the state Jacobians equal finite differences of the layer's own forward (one pair here;
# tests/test_study.py checks every pair)
lstm = layer("LSTM")
D = study.jacobians(lstm, x[:6, :1], max_bytes=10**7)            # (6, 6, 1, 2H, 2H)
s, t, eps = 1, 5, 1e-6
_, (h_s, c_s) = lstm(x[:s + 1, :1])
state = np.concatenate([h_s[0], c_s[0]], axis=1)                  # (1, 2H)
column = []
for j in range(2 * H):
    ends = []
    for sign in (1.0, -1.0):
        v = state.copy()
        v[0, j] += sign * eps
        _, (h_t, c_t) = lstm(x[s + 1:t + 1, :1], (v[None, :, :H], v[None, :, H:]))
        ends.append(np.concatenate([h_t[0], c_t[0]], axis=1)[0])
    column.append((ends[0] - ends[1]) / (2 * eps))
fd = np.stack(column, axis=1)                                     # (2H, 2H)
assert np.abs(D[t, s, 0] - fd).max() < 1e-8
print("∂s_5/∂s_1 of the LSTM equals central differences, max error "
      f"{np.abs(D[t, s, 0] - fd).max():.1e}")

# %% [markdown]
# ## Gating
#
# At PyTorch's initialisation all three cells forget quickly: the GRU's
# update gate and the LSTM's forget gate start near $\sigma(0) = 0.5$, so
# their additive paths ($z \odot h_{t-1}$, $f \odot c_{t-1}$) halve the
# state each step. Opening those gates (bias $+3$, $\sigma(3) \approx 0.95$;
# Gers et al. 2000 and Jozefowicz et al. 2015 recommend a positive forget
# bias) lets the Jacobian stay near 1 over many steps: gating is a learned,
# per-unit control of exactly this product.

# %%
curves = {}
for kind, bias in [("tanh RNN", 0.0), ("GRU", 0.0), ("LSTM", 0.0), ("GRU", 3.0),
                   ("LSTM", 3.0)]:
    norms = study.jacobian_norms(layer(kind, bias), x)           # (T, T), mean over B
    assert norms.shape == (T, T) and np.allclose(np.diag(norms), 1.0)
    curves[kind if bias == 0 else f"{kind}, gate bias +{bias:g}"] = study.by_distance(norms)

fig, ax = plt.subplots(figsize=(7, 4.2))
for label, c in curves.items():
    ax.semilogy(np.arange(T), c, "--" if "bias" not in label else "-", label=label)
ax.set_xlabel("distance t − s (steps)")
ax.set_ylabel("‖∂s_t/∂s_s‖₂ (geometric mean over t)")
ax.set_title(f"how far back a gradient reaches (H = {H}, random inputs)")
ax.legend()
plt.show()
assert curves["LSTM, gate bias +3"][20] > 100 * curves["LSTM"][20]

# %% [markdown]
# ## The spectral radius of $W_{hh}$
#
# Near $h = 0$ (small inputs, zero biases) a tanh RNN is almost linear, and
# $J_\tau \approx W_{hh}$. With $W_{hh} = \rho Q$ for an orthogonal $Q$,
# every eigenvalue has modulus $\rho$ and $\|W_{hh}^d\|_2 = \rho^d$: the
# gradient vanishes below $\rho = 1$, is kept at $\rho = 1$, and explodes
# above it, geometrically in the distance.

# %%
Q, _ = np.linalg.qr(rng.standard_normal((H, H)))
small = 0.01 * rng.standard_normal((T, B, 1))
radius = {}
for rho in (0.9, 1.0, 1.1):
    rnn = sr.RNN(1, H, dtype="float64", generator=sr.backend.Generator(0))
    rnn.weight_hh_l0.data = rho * Q
    rnn.bias_ih_l0.data[:] = 0.0
    rnn.bias_hh_l0.data[:] = 0.0
    assert np.isclose(np.abs(np.linalg.eigvals(rnn.weight_hh_l0.data)).max(), rho)
    radius[rho] = study.by_distance(study.jacobian_norms(rnn, small))

fig, ax = plt.subplots(figsize=(7, 4.2))
d = np.arange(T)
for rho, c in radius.items():
    line, = ax.semilogy(d, c, label=f"ρ(W_hh) = {rho}")
    ax.semilogy(d, rho ** d, ":", color=line.get_color())
ax.set_xlabel("distance t − s (steps)")
ax.set_ylabel("‖∂s_t/∂s_s‖₂")
ax.set_title("tanh RNN near h = 0: the norm follows ρ^d (dotted)")
ax.legend()
plt.show()
assert radius[0.9][T - 1] < 0.05 < 20 < radius[1.1][T - 1]

# %% [markdown]
# ## Clipping an exploding run
#
# Train that kind of network (tanh RNN, $W_{hh} = 1.4\,Q$) to output, after
# $T = 30$ steps, the first input it read, by SGD (learning rate 0.1), once as
# it is and once with `scratchrnn.clip_grad_norm_(params, 1.0)`, which
# rescales all gradients together when their global norm exceeds 1:
# $g \leftarrow g \cdot 1/\|g\|$. Same data, same initial weights.

# %%
def train(clip: float | None, steps: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    g = sr.backend.Generator(seed)
    rnn = sr.RNN(1, H, dtype="float64", generator=g)
    head = sr.Linear(H, 1, dtype="float64", generator=g)
    rnn.weight_hh_l0.data = 1.4 * np.linalg.qr(rng.standard_normal((H, H)))[0]
    params = [p for m in (rnn, head) for p in m.parameters()]
    opt, mse = sr.SGD(params, lr=0.1), sr.MSELoss()
    losses, norms = [], []
    for _ in range(steps):
        xb = rng.standard_normal((30, 32, 1))
        out, _ = rnn(xb)                                             # (T, B, H)
        loss = mse(head(out[-1]), xb[0])                             # remember x_0
        rnn.zero_grad()
        head.zero_grad()
        d_out = np.zeros_like(out)
        d_out[-1] = head.backward(mse.backward())                    # ∂L/∂h_T
        rnn.backward(d_out)
        if clip is None:
            norms.append(sr.training.clip.grad_norm(params))
        else:
            norms.append(sr.clip_grad_norm_(params, clip))           # norm before clipping
        opt.step()
        losses.append(float(loss))
    return np.array(losses), np.array(norms)


runs = {"no clipping": train(None), "clip_grad_norm_(1.0)": train(1.0)}
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for label, (losses, norms) in runs.items():
    axes[0].plot(np.convolve(losses, np.ones(10) / 10, "valid"), label=label)
    axes[1].semilogy(norms, label=label, alpha=0.8)
axes[0].set(xlabel="SGD step", ylabel="MSE (mean of 10 steps)", title="training loss",
            yscale="log")
axes[1].set(xlabel="SGD step", ylabel="‖g‖ before clipping", title="gradient norm")
axes[1].axhline(1.0, color="0.5", linestyle=":")
for ax in axes:
    ax.legend()
fig.tight_layout()
plt.show()
late = {k: v[0][-50:].mean() for k, v in runs.items()}
print("mean loss of the last 50 steps:", {k: round(float(v), 3) for k, v in late.items()})
assert late["clip_grad_norm_(1.0)"] < late["no clipping"]

# %% [markdown]
# Without clipping, the occasional step where the gradient norm jumps by two
# orders of magnitude (a "cliff" in the loss surface, in Pascanu et al.'s
# words) throws the weights far away and undoes what was learnt; the loss
# never settles. Clipping keeps each step's length bounded while keeping its
# direction, so the same spikes do no harm. Clipping treats exploding
# gradients only; nothing rescales a vanishing one back -- that is what the
# gates above are for.
