"""Jacobians through time: how a state at step s moves the state at step t.

With the step Jacobians J_t = ∂s_t/∂s_{t-1} (:mod:`.steps`), the chain rule
gives, for s ≤ t (0-based steps, s_t the state after reading x_t):

    ∂s_t/∂s_s = J_t J_{t-1} ⋯ J_{s+1}         (∂s_t/∂s_t = I)

and BPTT carries an error back through exactly these products:
∂L_t/∂s_s = ∂L_t/∂s_t · ∂s_t/∂s_s. Their spectral norms ‖∂s_t/∂s_s‖₂
(largest singular value) bound how much of a gradient survives t − s steps
back: for a tanh RNN ‖J_t‖₂ ≤ ‖W_hh‖₂ · max(1 − h²), so with ‖W_hh‖₂ < 1 the
norms shrink at least geometrically (Pascanu, Mikolov & Bengio 2013); the
gated cells' additive paths (GRU: z ⊙ h_{t-1}, LSTM: f ⊙ c_{t-1}) keep them
near 1 when the gates are open.

The state is h (size S = H) for Elman and GRU layers and [h, c] (S = 2H, or
P + H with ``proj_size``) for the LSTM; rows and columns of each Jacobian
follow that order.
"""

from __future__ import annotations

from typing import Any

from .. import backend as B
from ..backend import Array
from .steps import MAX_BYTES, check_memory, eye_batch, itemsize, prepare, step_derivatives


def step_jacobians(layer: Any, x: Array, h0: Any = None, lengths: Any = None) -> Array:
    """J_t = ∂s_t/∂s_{t-1} for every step: (T, B, S, S), J[t, b, i, j] = ∂s_t[i]/∂s_{t-1}[j].

    ``x`` and ``h0`` as the layer takes them (``x`` may also be one sequence
    (T, I); the batch axis is then dropped: (T, S, S)). Past a sequence's end
    (``lengths``) the state is frozen and J_t = I.
    """
    prob = prepare(layer, x, h0, lengths)
    xp = prob.xp
    J = xp.stack([step_derivatives(prob, t, params=False)[0]
                  for t in range(prob.x.shape[0])], axis=0)           # (T, B, S, S)
    return J[:, 0, ...] if prob.single else J


def jacobians(layer: Any, x: Array, h0: Any = None, lengths: Any = None,
              max_bytes: int = MAX_BYTES) -> Array:
    """∂s_t/∂s_s for all s ≤ t: (T, T, B, S, S), zero where s > t.

    D[t, s] = J_t D[t-1, s] with D[t, t] = I, one batched matrix product per
    pair. T·T·B·S² values are returned: above ``max_bytes`` (default 256 MiB)
    a MemoryError says how much it would need (use :func:`jacobian_norms`,
    which keeps T·B·S², for long sequences). One sequence x (T, I) gives
    (T, T, S, S).
    """
    prob = prepare(layer, x, h0, lengths)
    xp = prob.xp
    T, Bn, _ = prob.x.shape
    S = prob.state_size
    check_memory("jacobians", T * T * Bn * S * S, itemsize(prob.x), max_bytes,
                 f"T·T·B·S² with T={T}, B={Bn}, S={S}",
                 "use jacobian_norms (T·B·S² values), a shorter sequence or fewer sequences")
    zero = xp.zeros((Bn, S, S), dtype=prob.x.dtype, device=prob.layer.backend.device)
    eye = eye_batch(xp, S, Bn, prob.x)
    rows: list[list[Array]] = []
    for t in range(T):
        J = step_derivatives(prob, t, params=False)[0]                # (B, S, S)
        prev = rows[-1] if rows else []
        row = [xp.matmul(J, D) for D in prev[:t]] + [eye]             # D[t, s], s = 0..t
        rows.append(row + [zero] * (T - t - 1))
    D = xp.stack([xp.stack(row, axis=0) for row in rows], axis=0)     # (T, T, B, S, S)
    return D[:, :, 0, ...] if prob.single else D


def jacobian_norms(layer: Any, x: Array, h0: Any = None, lengths: Any = None,
                   reduce: str | None = "mean", max_bytes: int = MAX_BYTES) -> Array:
    """‖∂s_t/∂s_s‖₂ for all s ≤ t: (T, T), zero where s > t.

    ``reduce`` over the B sequences: ``"mean"`` (default), ``"max"``, or None
    for every sequence: (T, T, B). Only the T products ending at the current
    step are held (T·B·S² values, checked against ``max_bytes``); each norm is
    the largest singular value (``linalg.matrix_norm(ord=2)``).
    """
    if reduce not in ("mean", "max", None):
        raise ValueError(f"reduce: expected 'mean', 'max' or None, got {reduce!r}")
    prob = prepare(layer, x, h0, lengths)
    xp = prob.xp
    T, Bn, _ = prob.x.shape
    S = prob.state_size
    check_memory("jacobian_norms", T * Bn * S * S, itemsize(prob.x), max_bytes,
                 f"T·B·S² with T={T}, B={Bn}, S={S}", "use a shorter sequence or fewer sequences")
    dev = prob.layer.backend.device
    eye = eye_batch(xp, S, Bn, prob.x)[None, ...]                     # (1, B, S, S)
    D = None                                                          # (t+1, B, S, S)
    rows = []
    for t in range(T):
        J = step_derivatives(prob, t, params=False)[0]                # (B, S, S)
        D = eye if D is None else xp.concat([xp.matmul(J[None, ...], D), eye], axis=0)
        norms = xp.linalg.matrix_norm(D, ord=2)                       # (t+1, B)
        pad = xp.zeros((T - t - 1, Bn), dtype=norms.dtype, device=dev)
        rows.append(xp.concat([norms, pad], axis=0))                  # (T, B)
    N = xp.stack(rows, axis=0)                                        # (T, T, B)
    if reduce == "mean":
        return xp.mean(N, axis=2)
    if reduce == "max":
        return xp.max(N, axis=2)
    return N


def by_distance(norms: Array) -> Array:
    """(T, T) norms -> (T,): entry d is the geometric mean of ‖∂s_t/∂s_{t-d}‖ over t ≥ d.

    The geometric mean, because the norms change geometrically with d
    (exp of the mean log; a zero norm gives 0).
    """
    xp = B.namespace(norms)
    T = norms.shape[0]
    out = []
    for d in range(T):
        diag = xp.stack([norms[t, t - d] for t in range(d, T)])       # (T - d,)
        if bool(xp.any(diag <= 0.0)):
            out.append(xp.zeros((), dtype=norms.dtype, device=B.device_of(norms)))
        else:
            out.append(xp.exp(xp.mean(xp.log(diag))))
    return xp.stack(out)
