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
# # One LSTM step by hand
#
# Before a whole sequence, one time step. This notebook computes one LSTM
# step forward and backward with nothing but NumPy, line by line from the
# equations, checks both against `scratchrnn.functional`, and checks every
# gradient against central finite differences.
#
# Shapes: B sequences in the batch, I inputs, H hidden units; rows are the
# batch, so a layer computes $x W^\top$. The weights are PyTorch's layout:
# the four gate blocks $i, f, g, o$ are stacked on the rows of
# $W_{ih}$ $(4H, I)$ and $W_{hh}$ $(4H, H)$.

# %%
import matplotlib.pyplot as plt
import numpy as np

from scratchrnn.functional import CellParams, lstm_step_backward, lstm_step_forward
from scratchrnn.gradcheck import numerical_gradient, relative_error

B, I, H = 3, 4, 5
rng = np.random.default_rng(0)
p = CellParams(w_ih=rng.uniform(-0.5, 0.5, (4 * H, I)),
               w_hh=rng.uniform(-0.5, 0.5, (4 * H, H)),
               b_ih=rng.uniform(-0.5, 0.5, 4 * H),      # non-zero biases: a zero bias
               b_hh=rng.uniform(-0.5, 0.5, 4 * H))      # can hide a wrong bias gradient
x = rng.standard_normal((B, I))
h_prev = rng.standard_normal((B, H))
c_prev = rng.standard_normal((B, H))

# %% [markdown]
# ## Forward
#
# $$
# \begin{aligned}
# [a_i, a_f, a_g, a_o] &= x W_{ih}^\top + b_{ih} + h_{t-1} W_{hh}^\top + b_{hh}
#   && (B, 4H) \\
# i = \sigma(a_i),\quad f &= \sigma(a_f),\quad g = \tanh(a_g),\quad o = \sigma(a_o)
#   && (B, H) \\
# c_t &= f \odot c_{t-1} + i \odot g \\
# h_t &= o \odot \tanh(c_t)
# \end{aligned}
# $$

# %%
def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


a = x @ p.w_ih.T + p.b_ih + h_prev @ p.w_hh.T + p.b_hh          # (B, 4H)
a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)                      # each (B, H)
i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
c = f * c_prev + i * g                                           # (B, H)
h = o * np.tanh(c)                                               # (B, H)

h_lib, c_lib, cache = lstm_step_forward(x, h_prev, c_prev, p)
assert np.allclose(h, h_lib, rtol=1e-14, atol=1e-15) and np.allclose(c, c_lib, rtol=1e-14)
print("forward by hand == scratchrnn.functional.lstm_step_forward")

# %% [markdown]
# The four gates of the first sequence: $i, f, o$ are in $(0, 1)$, the
# candidate $g$ in $(-1, 1)$.

# %%
fig, ax = plt.subplots(figsize=(6, 2.6))
im = ax.imshow(np.stack([i[0], f[0], g[0], o[0]]), cmap="RdBu_r", vmin=-1, vmax=1)
ax.set_yticks(range(4), ["i", "f", "g", "o"])
ax.set_xlabel("hidden unit")
ax.set_title("gate values of one LSTM step (sequence 0)")
fig.colorbar(im, ax=ax)
plt.show()

# %% [markdown]
# ## Backward
#
# Take a loss $L = \sum \delta h \odot h_t + \sum \delta c \odot c_t$ for
# fixed random $\delta h = \partial L/\partial h_t$ and
# $\delta c = \partial L/\partial c_t$ (what the next step and the output send
# back). Each line follows from one forward line by the chain rule, with
# $\sigma' = \sigma(1-\sigma)$ and $\tanh' = 1 - \tanh^2$ written through the
# outputs:
#
# $$
# \begin{aligned}
# d o &= \delta h \odot \tanh(c_t) \\
# d c &= \delta c + \delta h \odot o \odot (1 - \tanh^2 c_t) \\
# d a_i &= dc \odot g \odot i(1-i), \quad d a_f = dc \odot c_{t-1} \odot f(1-f) \\
# d a_g &= dc \odot i \odot (1 - g^2), \quad d a_o = do \odot o(1-o) \\
# dW_{ih} &= da^\top x \;(4H, I), \quad dW_{hh} = da^\top h_{t-1} \;(4H, H), \quad
#   db_{ih} = db_{hh} = \textstyle\sum_b da \\
# dx &= da\, W_{ih}, \quad dh_{t-1} = da\, W_{hh}, \quad dc_{t-1} = dc \odot f
# \end{aligned}
# $$

# %%
dh = rng.standard_normal((B, H))
dc_next = rng.standard_normal((B, H))

tanh_c = np.tanh(c)
do = dh * tanh_c
dc = dc_next + dh * o * (1.0 - tanh_c**2)
da = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                     dc * i * (1 - g**2), do * o * (1 - o)], axis=1)    # (B, 4H)
by_hand = {"x": da @ p.w_ih, "h_prev": da @ p.w_hh, "c_prev": dc * f,
           "w_ih": da.T @ x, "w_hh": da.T @ h_prev, "b_ih": da.sum(0), "b_hh": da.sum(0)}

dx, dh_prev, dc_prev, grads = lstm_step_backward(dh, dc_next, cache)
library = {"x": dx, "h_prev": dh_prev, "c_prev": dc_prev, "w_ih": grads.w_ih,
           "w_hh": grads.w_hh, "b_ih": grads.b_ih, "b_hh": grads.b_hh}
for name in by_hand:
    assert np.allclose(by_hand[name], library[name], rtol=1e-13, atol=1e-14), name
print("backward by hand == scratchrnn.functional.lstm_step_backward for", ", ".join(by_hand))

# %% [markdown]
# ## Finite differences
#
# Every gradient against the four-point central difference
# $\partial L/\partial\theta_j \approx [-L(\theta+2\varepsilon e_j) +
# 8L(\theta+\varepsilon e_j) - 8L(\theta-\varepsilon e_j) +
# L(\theta-2\varepsilon e_j)]/12\varepsilon$ with $\varepsilon = 10^{-4}$
# (`scratchrnn.gradcheck.numerical_gradient`), one entry at a time. The
# relative error is $\max_j |a_j - n_j| / \max(|a_j| + |n_j|, 10^{-3})$.

# %%
inputs = {"x": x, "h_prev": h_prev, "c_prev": c_prev, "w_ih": p.w_ih, "w_hh": p.w_hh,
          "b_ih": p.b_ih, "b_hh": p.b_hh}


def loss() -> float:
    h_, c_, _ = lstm_step_forward(x, h_prev, c_prev, p)
    return float(np.sum(dh * h_) + np.sum(dc_next * c_))


errors = {name: relative_error(library[name], numerical_gradient(loss, arr))
          for name, arr in inputs.items()}
for name, err in errors.items():
    print(f"d{name:7s} relative error {err:.1e}")
assert max(errors.values()) < 1e-6

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar([f"d{n}" for n in errors], list(errors.values()), color="tab:blue")
ax.axhline(1e-6, color="tab:red", linestyle="--", label="test bound 1e-6")
ax.set_yscale("log")
ax.set_ylabel("relative error vs finite differences")
ax.set_title("every gradient of one LSTM step, checked")
ax.legend()
plt.show()

# %% [markdown]
# Every hand-written gradient agrees with finite differences orders of
# magnitude below the $10^{-6}$ bound the test suite uses (what is left is the
# stencil's own rounding and truncation error): the
# equations above are the backward pass, and `scratchrnn`'s cells compute
# exactly them (`scratchrnn/cells/lstm.py`). The next notebook chains such
# steps through time.
