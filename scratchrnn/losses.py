"""Losses with hand-written gradients, and a numerically stable (log-)softmax.

Softmax cross-entropy over the last axis, logits z (..., C), targets y (...):

    log p_c = z_c - μ - log Σ_k exp(z_k - μ),   μ = max_k z_k   (no overflow)
    ℓ_n     = -log p_{y_n}
    L       = Σ_n w_n ℓ_n / N_w   ("mean"),   Σ_n w_n ℓ_n   ("sum")

where w_n = 1 unless y_n = ignore_index or mask_n = 0, and N_w = Σ_n w_n
(the mean is over counted targets; with none counted L = 0). Backward:

    ∂L/∂z_n = dL · w_n (p_n - onehot(y_n)) / N_w     (drop / N_w for "sum")

Mean squared error, prediction x and target y of one shape, N elements:

    L = Σ (x - y)² / N  ("mean"),  Σ (x - y)²  ("sum");   ∂L/∂x = dL · 2 (x - y) / N
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import backend as B
from .backend import Array
from .nn import checks
from .nn.module import Module

REDUCTIONS = ("mean", "sum", "none")


def log_softmax(x: Array, axis: int = -1) -> Array:
    """log softmax(x) along ``axis``, by log-sum-exp with the maximum subtracted."""
    xp = B.namespace(x)
    z = x - xp.max(x, axis=axis, keepdims=True)
    return z - xp.log(xp.sum(xp.exp(z), axis=axis, keepdims=True))


def softmax(x: Array, axis: int = -1) -> Array:
    """softmax(x) along ``axis``; the maximum is subtracted first so exp never overflows."""
    xp = B.namespace(x)
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def _reduce(per_item: Array, reduction: str, count: Any) -> Array:
    xp = B.namespace(per_item)
    if reduction == "none":
        return per_item
    total = xp.sum(per_item)
    return total / count if reduction == "mean" else total


def _upstream(dloss: Any, shape: tuple[int, ...], reduction: str, like: Array) -> Any:
    """dloss as a scalar (mean/sum) or as a (...) array broadcastable to ``like`` (none)."""
    if reduction == "none":
        if not B.is_array(dloss):
            return dloss
        checks.check_array("dloss", dloss, B.backend_of(like))
        checks.check_shape("dloss", dloss, shape, "(the per-element loss shape)")
        return dloss
    if B.is_array(dloss):
        checks.check_array("dloss", dloss, B.backend_of(like))
        if dloss.ndim != 0:
            raise ValueError(f"dloss: expected a scalar (0-d array or float), got shape "
                             f"{tuple(dloss.shape)}")
    return dloss


@dataclass(slots=True)
class CrossEntropyCache:
    p: Array                        # (..., C) softmax probabilities
    onehot: Array                   # (..., C) onehot(y), 0 rows at ignored targets
    w: Array                        # (..., 1) 1.0 where the target counts, else 0.0
    count: Any                      # N_w as a 0-d array (≥ 1 to avoid 0/0)


class CrossEntropyLoss(Module):
    """``CrossEntropyLoss(reduction="mean", ignore_index=-100)``: softmax cross-entropy
    of logits (..., C) against integer targets (...); see the module docstring.

    ``reduction="none"`` returns the per-target losses (...) (0 where not counted).
    """

    def __init__(self, reduction: str = "mean", ignore_index: int = -100) -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)
        if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
            raise TypeError(f"ignore_index: expected an int, got {ignore_index!r}")
        self.ignore_index = ignore_index
        self._clear_cache()

    def _clear_cache(self) -> None:
        self._cache: CrossEntropyCache | None = None

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, ignore_index={self.ignore_index}"

    def forward(self, logits: Array, targets: Any, mask: Any = None) -> Array:
        """logits (..., C), targets (...) ints, mask (...) or None -> loss (0-d, or (...))."""
        if not B.is_array(logits):
            raise TypeError(f"logits: expected an array, got {type(logits).__name__}")
        backend = B.backend_of(logits)
        if logits.ndim < 1:
            raise ValueError("logits: expected shape (..., C) with a class axis, got a 0-d array")
        if not B.is_floating(logits):
            raise TypeError(f"logits: expected a floating-point array, got dtype "
                            f"{B.dtype_name(logits)}")
        checks.check_finite("logits", logits)
        y = _as_backend("targets", targets, backend)
        lead, C = tuple(logits.shape[:-1]), logits.shape[-1]
        checks.check_shape("targets", y, lead, f"(logits' leading dims; logits has shape "
                           f"{tuple(logits.shape)})")
        if not B.is_integer(y):
            raise TypeError(f"targets: expected an integer array of class ids, got dtype "
                            f"{B.dtype_name(y)}")
        xp = backend.xp
        counted = y != self.ignore_index                                   # (...) bool
        if mask is not None:
            m = _as_backend("mask", mask, backend)
            checks.check_shape("mask", m, lead, "(the targets' shape)")
            counted = counted & (m != 0)
        bad = counted & ((y < 0) | (y >= C))
        if bool(xp.any(bad)):
            host, hbad = B.to_numpy(y), B.to_numpy(bad)
            raise ValueError(f"targets: expected class ids in [0, {C}) (C = {C}, the last dim "
                             f"of logits) or ignore_index={self.ignore_index}, got "
                             f"{int(host[hbad].reshape(-1)[0])}")
        classes = xp.arange(C, device=backend.device)
        onehot = xp.astype(y[..., None] == classes, logits.dtype)          # (..., C)
        logp = log_softmax(logits, axis=-1)                                # (..., C)
        w = xp.astype(counted, logits.dtype)[..., None]                    # (..., 1)
        nll = -xp.sum(w * onehot * logp, axis=-1)                          # (...)
        count = xp.maximum(xp.sum(w), xp.asarray(1.0, dtype=logits.dtype,
                                                   device=backend.device))
        self._cache = CrossEntropyCache(xp.exp(logp), onehot * w, w, count)
        return _reduce(nll, self.reduction, count)

    def backward(self, dloss: Any = 1.0) -> Array:
        """dloss (scalar; (...) for reduction="none") -> dlogits (..., C)."""
        k = self._cache
        if k is None:
            raise RuntimeError("backward called before forward")
        d = _upstream(dloss, tuple(k.w.shape[:-1]), self.reduction, k.p)
        if self.reduction == "none" and B.is_array(d):
            d = d[..., None]
        elif self.reduction == "mean":
            d = d / k.count
        return d * k.w * (k.p - k.onehot)                                 # (..., C)


@dataclass(slots=True)
class MSECache:
    diff: Array                     # (...) prediction - target
    n: int                          # number of elements


class MSELoss(Module):
    """``MSELoss(reduction="mean")``: Σ (pred - target)² / N, or the sum, or per element."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self._clear_cache()

    def _clear_cache(self) -> None:
        self._cache: MSECache | None = None

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"

    def forward(self, pred: Array, target: Any) -> Array:
        """pred (...), target (...) -> loss (0-d, or (...) for reduction="none")."""
        if not B.is_array(pred):
            raise TypeError(f"pred: expected an array, got {type(pred).__name__}")
        if not B.is_floating(pred):
            raise TypeError(f"pred: expected a floating-point array, got dtype "
                            f"{B.dtype_name(pred)}")
        backend = B.backend_of(pred)
        y = _as_backend("target", target, backend)
        checks.check_shape("target", y, tuple(pred.shape), "(the prediction's shape)")
        checks.check_float("target", y, pred.dtype)
        diff = pred - y                                                    # (...)
        n = math.prod(tuple(pred.shape))
        self._cache = MSECache(diff, n)
        return _reduce(diff * diff, self.reduction, max(n, 1))

    def backward(self, dloss: Any = 1.0) -> Array:
        """dloss (scalar; (...) for reduction="none") -> dpred (...)."""
        k = self._cache
        if k is None:
            raise RuntimeError("backward called before forward")
        d = _upstream(dloss, tuple(k.diff.shape), self.reduction, k.diff)
        if self.reduction == "mean":
            d = d / max(k.n, 1)
        return d * 2.0 * k.diff                                            # (...)


def _as_backend(name: str, x: Any, backend: B.Backend) -> Array:
    """``x`` on ``backend``: arrays must already live there; lists are converted."""
    if B.is_array(x):
        checks.check_array(name, x, backend)
        return x
    return backend.asarray(B.to_numpy(x))
