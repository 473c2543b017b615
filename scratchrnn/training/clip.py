"""Gradient clipping, over the same flat parameter list the optimizers use.

``clip_grad_norm_`` rescales all gradients together when their global L2 norm

    ‖g‖ = √(Σ_p Σ_i g_{p,i}²)

exceeds ``max_norm``: g ← g · max_norm / (‖g‖ + 1e-6). It returns the norm
*before* clipping (what a progress bar shows). A NaN or Inf norm cannot be
rescaled: the gradients are then set to zero (so a plain SGD step leaves the
weights unchanged instead of writing NaN into them) and the non-finite norm
is returned for the caller to act on, or, with ``error_if_nonfinite``, a
``FloatingPointError`` is raised.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .. import backend as B
from ..nn.module import Module, Parameter


def _params(params: Module | Iterable[Parameter] | Parameter) -> list[Parameter]:
    if isinstance(params, Module):
        return params.parameters()
    if isinstance(params, Parameter):
        return [params]
    out = list(params)
    for i, p in enumerate(out):
        if not isinstance(p, Parameter):
            raise TypeError(f"params: expected Parameters, got {type(p).__name__} at "
                            f"position {i}")
    return out


def grad_norm(params: Module | Iterable[Parameter] | Parameter) -> float:
    """The global L2 norm of all gradients, as a Python float."""
    total = 0.0
    for p in _params(params):
        xp = B.namespace(p.grad)
        total += B.to_scalar(xp.sum(p.grad * p.grad))   # float64 accumulation on the host
    return math.sqrt(total)


def clip_grad_norm_(params: Module | Iterable[Parameter] | Parameter, max_norm: float,
                    error_if_nonfinite: bool = False) -> float:
    """Scale gradients in place so their global L2 norm is at most ``max_norm``;
    returns the norm before clipping."""
    if not (isinstance(max_norm, (int, float)) and max_norm > 0):
        raise ValueError(f"max_norm: expected a number > 0, got {max_norm!r}")
    ps = _params(params)
    norm = grad_norm(ps)
    if not math.isfinite(norm):
        if error_if_nonfinite:
            raise FloatingPointError(f"clip_grad_norm_: the gradient norm is {norm}")
        for p in ps:
            p.zero_grad()
        return norm
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        for p in ps:
            p.grad = p.grad * coef
    return norm


def clip_grad_value_(params: Module | Iterable[Parameter] | Parameter,
                     clip_value: float) -> None:
    """Clamp every gradient entry to [-clip_value, clip_value] in place."""
    if not (isinstance(clip_value, (int, float)) and clip_value > 0):
        raise ValueError(f"clip_value: expected a number > 0, got {clip_value!r}")
    for p in _params(params):
        xp = B.namespace(p.grad)
        p.grad = xp.clip(p.grad, -float(clip_value), float(clip_value))
