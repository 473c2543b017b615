"""Pooling a time-major sequence of hidden states into one vector per sequence.

Every pool maps h (T, B, H) and optional ``lengths`` (B,) to pooled (B, H).
With ``lengths``, step t of sequence b is valid when t < length_b
(m_tb = 1, else 0); padded steps contribute nothing and get zero gradient.
Each length must be at least 1 (an empty sequence has nothing to pool)::

    LastPool       pooled_b = h_{len_b - 1, b}        dh_tb = [t = len_b - 1] dpooled_b
    MeanPool       pooled_b = Σ_t m_tb h_tb / n_b      dh_tb = m_tb dpooled_b / n_b
                   (n_b = Σ_t m_tb, the number of valid steps)
    AttentionPool  softmax-weighted sum; see AttentionPool
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import backend as B
from ..backend import Array, Backend, Generator
from . import checks
from .module import Module, Parameter


def _check_h(h: Any, backend: Backend | None = None, dtype: Any = None) -> Backend:
    """``h`` must be a (T, B, H) float array (of ``backend`` / ``dtype`` when given)."""
    if backend is None:
        if not B.is_array(h):
            raise TypeError(f"h: expected an array, got {type(h).__name__}")
        backend = B.backend_of(h)
    checks.check_array("h", h, backend)
    if h.ndim != 3:
        raise ValueError(f"h: expected a 3-D array (seq_len, batch, hidden_size), got shape "
                         f"{tuple(h.shape)}")
    if h.shape[0] < 1:
        raise ValueError(f"h: expected at least one time step (seq_len >= 1), got shape "
                         f"{tuple(h.shape)}")
    if dtype is not None:
        checks.check_float("h", h, dtype)
    elif not B.is_floating(h):
        raise TypeError(f"h: expected a floating-point array, got dtype {B.dtype_name(h)}")
    checks.check_finite("h", h)
    return backend


def valid_steps(h: Array, lengths: Any, backend: Backend) -> Array:
    """The (T, B, 1) float mask m_tb = [t < length_b] in h's dtype (all ones without lengths)."""
    xp = backend.xp
    T, Bn, _ = h.shape
    if lengths is None:
        return xp.ones((T, Bn, 1), dtype=h.dtype, device=backend.device)
    mask = checks.lengths_to_mask(lengths, T, Bn, backend)             # (T, B, 1) bool | None
    host = B.to_numpy(lengths)
    if host.size and host.min() < 1:
        raise ValueError(f"lengths: expected values in [1, {T}] (pooling needs at least one "
                         f"valid step per sequence), got min {int(host.min())}")
    if mask is None:
        return xp.ones((T, Bn, 1), dtype=h.dtype, device=backend.device)
    return xp.astype(mask, h.dtype)                                    # (T, B, 1)


def _check_dpooled(dpooled: Array, h_shape: tuple[int, ...], dtype: Any,
                   backend: Backend) -> None:
    checks.check_grad_input("dpooled", dpooled, (h_shape[1], h_shape[2]), dtype, backend,
                            "(batch, hidden_size)")


@dataclass(slots=True)
class WeightsCache:
    """What a weighted pool's backward needs from its forward."""
    w: Array                        # (T, B, 1) the fixed weight of each step
    H: int


class _WeightedSumPool(Module):
    """pooled_b = Σ_t w_tb h_tb with weights w that do not depend on h, so
    dh_tb = w_tb dpooled_b. Subclasses choose w from the validity mask m."""

    def __init__(self) -> None:
        super().__init__()
        self._clear_cache()

    def _clear_cache(self) -> None:
        self._cache: WeightsCache | checks.Spent | None = None

    def _weights(self, m: Array) -> Array:
        """(T, B, 1) mask m_tb -> (T, B, 1) weights w_tb."""
        raise NotImplementedError

    def forward(self, h: Array, lengths: Any = None) -> Array:
        """h (T, B, H), lengths (B,) or None -> pooled (B, H)."""
        backend = _check_h(h)
        w = self._weights(valid_steps(h, lengths, backend))                # (T, B, 1)
        self._cache = WeightsCache(w, h.shape[2])
        return backend.xp.sum(w * h, axis=0)                               # (B, H)

    def backward(self, dpooled: Array) -> Array:
        """dpooled (B, H) -> dh (T, B, H)."""
        k: WeightsCache = checks.cache_for_backward(self, self._cache)
        T, Bn, _ = k.w.shape
        _check_dpooled(dpooled, (T, Bn, k.H), k.w.dtype, B.backend_of(k.w))
        self._cache = checks.SPENT                                         # one backward
        return k.w * dpooled[None, ...]                                    # (T, B, H)


class LastPool(_WeightedSumPool):
    """pooled_b = h at the last valid step of sequence b (t = length_b - 1, or T - 1).

    Written as a selection w_tb = m_tb (1 - m_{t+1,b}) so that
    pooled = Σ_t w_t ⊙ h_t and dh_t = w_t ⊙ dpooled (zero off the selected step).
    """

    def _weights(self, m: Array) -> Array:
        xp = B.namespace(m)
        after = xp.concat([m[1:, ...], xp.zeros_like(m[:1, ...])], axis=0)  # m_{t+1}
        return m * (1.0 - after)                                           # (T, B, 1)


class MeanPool(_WeightedSumPool):
    """pooled_b = Σ_t m_tb h_tb / n_b with n_b = Σ_t m_tb (the number of valid steps);
    dh_tb = m_tb dpooled_b / n_b."""

    def _weights(self, m: Array) -> Array:
        n = B.namespace(m).sum(m, axis=0)                                  # (B, 1)
        return m / n[None, ...]                                            # (T, B, 1)


@dataclass(slots=True)
class AttentionCache:
    """What the attention pool's backward needs from its forward."""
    h: Array                        # (T, B, H) the input
    alpha: Array                    # (T, B) attention weights, 0 on padding


class AttentionPool(Module):
    """Dot-product attention pooling with one learned query vector w (H,).

    Forward, over the valid steps of each sequence (m_tb = 1):

        e_tb = w · h_tb                                           (T, B)
        α_tb = m_tb exp(e_tb - μ_b) / Σ_s m_sb exp(e_sb - μ_b),   μ_b = max_{t valid} e_tb
        c_b  = Σ_t α_tb h_tb                                      (B, H)

    (padding is set to -∞ before the exponential, so it gets exactly α = 0;
    subtracting μ_b keeps exp ≤ 1). Backward, with dc = ∂L/∂c:

        dα_tb = h_tb · dc_b
        de_tb = α_tb (dα_tb - Σ_s α_sb dα_sb)                     softmax Jacobian
        dh_tb = α_tb dc_b + de_tb w
        dw    = Σ_{t,b} de_tb h_tb

    After forward, ``self.weights`` holds α (T, B) for inspection.
    """

    def __init__(self, hidden_size: int, *, dtype: str = "float32",
                 device: str | B.Backend | None = None,
                 generator: Generator | None = None) -> None:
        super().__init__()
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool) or hidden_size < 1:
            raise ValueError(f"hidden_size: expected a positive int, got {hidden_size!r}")
        self.hidden_size = hidden_size
        backend = B.get_backend(device)
        init = generator or B.default_generator()
        k = 1.0 / math.sqrt(hidden_size)
        self.weight = Parameter(init.uniform(-k, k, (hidden_size,), backend, dtype))  # (H,)
        self._clear_cache()

    def _clear_cache(self) -> None:
        self._cache: AttentionCache | checks.Spent | None = None
        self.weights: Array | None = None

    def extra_repr(self) -> str:
        """The arguments shown in the module's repr."""
        return f"{self.hidden_size}"

    def forward(self, h: Array, lengths: Any = None) -> Array:
        """h (T, B, H), lengths (B,) or None -> context c (B, H)."""
        backend, w = self.backend, self.weight.data
        _check_h(h, backend, w.dtype)
        T, Bn, H = h.shape
        if H != self.hidden_size:
            raise ValueError(f"h: expected hidden_size (last dim) {self.hidden_size}, got "
                             f"shape {tuple(h.shape)}")
        xp = backend.xp
        valid = valid_steps(h, lengths, backend)[..., 0] > 0.5             # (T, B) bool
        e = xp.reshape(xp.reshape(h, (T * Bn, H)) @ w, (T, Bn))            # (T, B)
        e = xp.where(valid, e, -math.inf)                                  # padding -> -inf
        mu = xp.max(e, axis=0)                                             # (B,)
        z = xp.exp(e - mu[None, :])                                        # (T, B) 0 on padding
        alpha = z / xp.sum(z, axis=0)[None, :]                             # (T, B)
        self._cache = AttentionCache(h, alpha)
        self.weights = alpha
        return xp.sum(alpha[..., None] * h, axis=0)                        # (B, H)

    def backward(self, dpooled: Array) -> Array:
        """dc (B, H) -> dh (T, B, H); weight.grad accumulates dw."""
        k: AttentionCache = checks.cache_for_backward(self, self._cache)
        backend, w = self.backend, self.weight.data
        _check_dpooled(dpooled, tuple(k.h.shape), k.h.dtype, backend)
        self._cache = checks.SPENT                                         # one backward
        xp = backend.xp
        T, Bn, H = k.h.shape
        dc = dpooled[None, ...]                                            # (1, B, H)
        dalpha = xp.sum(k.h * dc, axis=2)                                  # (T, B)
        de = k.alpha * (dalpha - xp.sum(k.alpha * dalpha, axis=0)[None, :])  # (T, B)
        dw = xp.reshape(de, (T * Bn,)) @ xp.reshape(k.h, (T * Bn, H))     # (H,)
        self.weight.grad = self.weight.grad + dw
        return k.alpha[..., None] * dc + de[..., None] * w                 # (T, B, H)
