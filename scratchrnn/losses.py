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
    """dloss as a finite number or a 0-d array (mean/sum), or as a number or a (...)
    array of the per-element loss's shape and dtype (none)."""
    if isinstance(dloss, bool) or not (isinstance(dloss, (int, float)) or B.is_array(dloss)):
        want = "a number or a 0-d array" if reduction != "none" else \
            f"a number or an array of shape {shape}"
        raise TypeError(f"dloss: expected {want}, got {type(dloss).__name__}")
    if not B.is_array(dloss):
        if not math.isfinite(dloss):
            raise ValueError(f"dloss: expected a finite number, got {dloss!r}")
        return float(dloss)
    if reduction != "none" and dloss.ndim != 0:
        raise ValueError(f"dloss: expected a scalar (0-d array or float), got shape "
                         f"{tuple(dloss.shape)}")
    checks.check_grad_input("dloss", dloss, shape if reduction == "none" else (),
                            like.dtype, B.backend_of(like), "(the loss's shape)")
    return dloss


def _check_mask(m: Array) -> None:
    """A mask holds booleans or the numbers 0 and 1 (0.5 or NaN would be ambiguous)."""
    xp = B.namespace(m)
    if xp.isdtype(m.dtype, "bool"):
        return
    if not xp.isdtype(m.dtype, ("integral", "real floating")):
        raise TypeError(f"mask: expected booleans or 0/1 numbers, got dtype {B.dtype_name(m)}")
    bad = (m != 0) & (m != 1)                                  # NaN is neither
    if bool(xp.any(bad)):
        values = B.to_numpy(m)[B.to_numpy(bad)]
        raise ValueError(f"mask: expected booleans or the values 0 and 1, got "
                         f"{values.flat[0]!r} ({values.size} such value(s))")


@dataclass(slots=True)
class CrossEntropyCache:
    """What the cross-entropy backward needs from its forward."""
    p: Array                        # (..., C) softmax probabilities
    onehot: Array                   # (..., C) onehot(y), 0 rows where not counted
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
        self._cache: CrossEntropyCache | checks.Spent | None = None

    def extra_repr(self) -> str:
        """The arguments shown in the module's repr."""
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
        if B.check_finite_enabled():          # -inf is allowed: a class masked out by hand
            xp = backend.xp
            if bool(xp.any(xp.isnan(logits) | (logits == math.inf))):
                raise ValueError("logits: expected finite values or -inf, got NaN or +Inf")
        y = _as_backend("targets", targets, backend)
        lead, C = tuple(logits.shape[:-1]), logits.shape[-1]
        if C == 0:
            raise ValueError(f"logits: expected at least one class (last dim C >= 1), got "
                             f"shape {tuple(logits.shape)}")
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
            _check_mask(m)
            counted = counted & (m != 0)
        bad = counted & ((y < 0) | (y >= C))
        if bool(xp.any(bad)):
            host, hbad = B.to_numpy(y), B.to_numpy(bad)
            raise ValueError(f"targets: expected class ids in [0, {C}) (C = {C}, the last dim "
                             f"of logits) or ignore_index={self.ignore_index}, got "
                             f"{int(host[hbad].reshape(-1)[0])}")
        classes = xp.arange(C, device=backend.device)
        picked = (y[..., None] == classes) & counted[..., None]             # (..., C) bool
        onehot = xp.astype(picked, logits.dtype)                           # (..., C)
        logp = log_softmax(logits, axis=-1)                                # (..., C)
        w = xp.astype(counted, logits.dtype)[..., None]                    # (..., 1)
        # select, not multiply: a -inf logit of a class that is not the target gives
        # log p = -inf there, and 0 · (-inf) would be NaN (PyTorch's loss stays finite)
        nll = -xp.sum(xp.where(picked, logp, xp.zeros_like(logp)), axis=-1)  # (...)
        count = xp.maximum(xp.sum(w), xp.asarray(1.0, dtype=logits.dtype,
                                                   device=backend.device))
        self._cache = CrossEntropyCache(xp.exp(logp), onehot, w, count)
        return _reduce(nll, self.reduction, count)

    def backward(self, dloss: Any = 1.0) -> Array:
        """dloss (scalar; (...) for reduction="none") -> dlogits (..., C)."""
        k: CrossEntropyCache = checks.cache_for_backward(self, self._cache)
        d = _upstream(dloss, tuple(k.w.shape[:-1]), self.reduction, k.p)
        self._cache = checks.SPENT                                         # one backward
        if self.reduction == "none" and B.is_array(d):
            d = d[..., None]
        elif self.reduction == "mean":
            d = d / k.count
        xp = B.namespace(k.p)
        g = xp.where(k.w > 0, k.p - k.onehot, xp.zeros_like(k.p))         # 0 where not counted
        return d * g                                                       # (..., C)


@dataclass(slots=True)
class MSECache:
    """What the mean-squared-error backward needs from its forward."""
    diff: Array                     # (...) prediction - target
    n: int                          # number of elements


class MSELoss(Module):
    """``MSELoss(reduction="mean")``: Σ (pred - target)² / N, or the sum, or per element."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self._clear_cache()

    def _clear_cache(self) -> None:
        self._cache: MSECache | checks.Spent | None = None

    def extra_repr(self) -> str:
        """The arguments shown in the module's repr."""
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
        k: MSECache = checks.cache_for_backward(self, self._cache)
        d = _upstream(dloss, tuple(k.diff.shape), self.reduction, k.diff)
        self._cache = checks.SPENT                                         # one backward
        if self.reduction == "mean":
            d = d / max(k.n, 1)
        return d * 2.0 * k.diff                                            # (...)


def _as_backend(name: str, x: Any, backend: B.Backend) -> Array:
    """``x`` on ``backend``: arrays must already live there; lists are converted."""
    if B.is_array(x):
        checks.check_array(name, x, backend)
        return x
    return backend.asarray(B.to_numpy(x))
