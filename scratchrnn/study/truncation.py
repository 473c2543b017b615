"""The bias of truncated backpropagation through time.

The loss of a sequence is L = Σ_t L_t, L_t reading the output h_t. Its full
weight gradient sums, over every output t and every earlier step τ ≤ t, the
path from θ into s_τ (the immediate sensitivity M_τ) and on to h_t:

    ∂L/∂θ = Σ_t Σ_{τ ≤ t} ∂L_t/∂h_t · ∂s_t/∂s_τ · M_τ          (d = t − τ steps back)

**BPTT(k)**, truncated BPTT as Williams & Peng (1990) describe it, keeps
for every output the paths of at most k steps, the output's own step
included -- those that go at most k − 1 steps back, d < k:

    g_k = Σ_t Σ_{t-k < τ ≤ t} ∂L_t/∂h_t · ∂s_t/∂s_τ · M_τ

k = 1 keeps each step's immediate effect only; for k ≥ T every path is kept
and g_k is the full gradient. The forward pass is the full sequence's, so
every state is exact; only gradient paths are dropped. :func:`truncation_bias`
reports ‖g_k − g‖/‖g‖ and the cosine between g_k and g.

**Chunked TBPTT** (Williams & Peng's BPTT(h; h') with h' = h: back-
propagate every h steps over the last h), what
the trainer does with a long stream cut into windows of k steps, carries
the *state* from chunk to chunk (so the forward pass is still exact) but
starts each chunk's backward afresh: an output at position j (0-based)
inside its chunk keeps the paths d ≤ j, between 1 and k steps where
BPTT(k) gives every output k: it keeps every path of BPTT(1) and a part of
BPTT(k)'s. Its gradient is :func:`chunked_gradient`.

Computing every g_k at once: going back in time from τ = T−1, keep one
upstream row per output t ≥ τ, v_t = ∂L_t/∂s_τ (t − τ steps back), take
C[d] += Σ_t [t − τ = d] v_t M_τ, and step all rows back with v_t ← v_t J_τ.
Then g_k = Σ_{d<k} C[d], and g = g_T.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import backend as B
from ..backend import Array
from .steps import (
    MAX_BYTES,
    check_d_output,
    check_layer,
    check_memory,
    itemsize,
    prepare,
    step_derivatives,
    unflatten,
)


@dataclass(slots=True)
class TruncationResult:
    """BPTT(k) against the full gradient, for each k."""

    ks: list[int]                          # the truncation lengths asked for
    rel_error: list[float]                 # ‖g_k − g‖ / ‖g‖
    cosine: list[float]                    # g_k · g / (‖g_k‖ ‖g‖)
    gradients: dict[int, dict[str, Array]]  # k -> {parameter name: g_k}
    full: dict[str, Array]                  # g, the full gradient (= g_k for k ≥ T)
    by_distance: list[float] = field(default_factory=list)  # ‖C[d]‖, d = 0..T-1


def truncation_bias(layer: Any, x: Array, d_output: Array, ks: Sequence[int],
                    h0: Any = None, lengths: Any = None, max_bytes: int = MAX_BYTES
                    ) -> TruncationResult:
    """BPTT(k)'s weight gradient for each k in ``ks`` and its distance to the full one.

    ``x``, ``d_output`` (= ∂L/∂output: each output's own loss gradient),
    ``h0``, ``lengths`` as the layer takes them. One backward sweep gives
    every k (module docstring); it holds T·B·S upstream rows and T·N_θ
    partial sums, and the B·S·N_θ immediate sensitivity of one step.
    g_k for k ≥ T is the same array as ``full``.
    """
    ks = _check_ks(ks)
    prob = prepare(layer, x, h0, lengths)
    d_output = check_d_output(prob, d_output)                          # (T, B, P)
    xp = prob.xp
    T, Bn, _ = prob.x.shape
    S, n_theta, P_h = prob.state_size, prob.num_params, prob.sizes[0]
    check_memory("truncation_bias", T * n_theta + Bn * S * n_theta + T * Bn * S,
                 itemsize(prob.x), max_bytes,
                 f"T·N_θ + B·S·N_θ + T·B·S with T={T}, B={Bn}, S={S}, N_θ={n_theta}",
                 "use a shorter sequence, fewer sequences or a smaller layer")
    dev = prob.layer.backend.device
    C = [xp.zeros((n_theta,), dtype=prob.x.dtype, device=dev) for _ in range(T)]
    zeros_c = xp.zeros((Bn, S - P_h), dtype=prob.x.dtype, device=dev)
    V = xp.zeros((0, Bn, S), dtype=prob.x.dtype, device=dev)          # rows t = τ..T-1
    for tau in range(T - 1, -1, -1):
        v_new = xp.concat([d_output[tau, ...], zeros_c], axis=1)       # ∂L_τ/∂s_τ (B, S)
        V = xp.concat([v_new[None, ...], V], axis=0)                  # (T-τ, B, S), d = t-τ
        J, M = step_derivatives(prob, tau)                            # (B,S,S), (B,S,N_θ)
        n = V.shape[0]
        contrib = xp.reshape(V, (n, Bn * S)) @ xp.reshape(M, (Bn * S, n_theta))  # (n, N_θ)
        for d in range(n):
            C[d] = C[d] + contrib[d, ...]
        V = xp.matmul(V[:, :, None, :], J)[:, :, 0, :]                # v ← v J_τ
    cum, total = [], None
    for d in range(T):
        total = C[d] if total is None else total + C[d]
        cum.append(total)                                             # g_{d+1}
    full = cum[-1] if T else xp.zeros((n_theta,), dtype=prob.x.dtype, device=dev)
    norm_full = _norm(full)
    result = TruncationResult(ks, [], [], {}, unflatten(prob, full),
                              [_norm(c) for c in C])
    for k in ks:
        g = cum[min(k, T) - 1] if T else full
        result.gradients[k] = unflatten(prob, g)
        result.rel_error.append(_norm(g - full) / norm_full if norm_full > 0 else 0.0)
        result.cosine.append(_cosine(g, full))
    return result


def chunked_gradient(layer: Any, x: Array, d_output: Array, chunk: int, h0: Any = None
                     ) -> dict[str, Array]:
    """The gradient of the trainer's chunked TBPTT over one sequence: {name: array}.

    The sequence is cut into chunks of ``chunk`` steps; each chunk runs
    forward from the previous chunk's final state (carried, as a constant),
    then backward with its part of ``d_output`` alone -- the layer's own
    forward and backward, as the trainer calls them. The chunks' gradients
    are summed. The layer's ``.grad`` is left as it was.
    """
    layer = check_layer(layer)
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk: expected a positive int, got {chunk!r}")
    prob = prepare(layer, x, h0)                                      # validates x and h0
    d_output = check_d_output(prob, d_output)                         # (T, B, P)
    x_tm = prob.x                                                     # (T, B, I)
    T = x_tm.shape[0]
    saved = {n: p.grad for n, p in layer.named_parameters()}
    batch_first = layer.batch_first
    layer.batch_first = False
    try:
        layer.zero_grad()
        state = h0
        for lo in range(0, T, chunk):
            hi = min(lo + chunk, T)
            _, state = layer(x_tm[lo:hi, ...], state)                 # carried, not differentiated
            layer.backward(d_output[lo:hi, ...])
        grads = {n: p.grad for n, p in layer.named_parameters()}
    finally:
        layer.batch_first = batch_first
        for n, p in layer.named_parameters():
            p.grad = saved[n]
    return grads


def flat_gradient(layer: Any, grads: dict[str, Array]) -> Array:
    """{name: array} -> one vector in the layer's parameter order (for norms and cosines)."""
    xp = B.namespace(*grads.values())
    return xp.concat([xp.reshape(grads[n], (-1,)) for n, _ in layer.named_parameters()])


def _check_ks(ks: Any) -> list[int]:
    try:
        out = list(ks)
    except TypeError:
        raise TypeError(f"ks: expected a sequence of positive ints, got {ks!r}") from None
    for k in out:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"ks: expected positive ints (k = 1 keeps each step's own "
                             f"effect), got {k!r} in {out!r}")
    return out


def _norm(v: Array) -> float:
    xp = B.namespace(v)
    return float(B.to_scalar(xp.sqrt(xp.sum(v * v))))


def _cosine(a: Array, b: Array) -> float:
    xp = B.namespace(a)
    na, nb = _norm(a), _norm(b)
    if na == 0.0 or nb == 0.0:
        return float("nan")
    return float(B.to_scalar(xp.sum(a * b))) / (na * nb)


