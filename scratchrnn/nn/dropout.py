"""Inverted dropout.

In training mode, with keep probability q = 1 - p and a fresh Bernoulli(q)
mask m (same shape as x) per forward call:

    y = x ⊙ m / q                  so E[y] = x and eval needs no rescaling

    dx = dy ⊙ m / q                the same mask, kept from forward

In eval mode (``module.eval()``) or with p = 0, y = x and dx = dy.
With p = 1 every unit is dropped: y = 0, dx = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import backend as B
from ..backend import Array, Generator
from . import checks
from .module import Module


@dataclass(slots=True)
class DropoutCache:
    """What the dropout backward needs from its forward: the scaled mask, and what dy must match."""
    mask: Array | None              # (...) m / q, like x; None when forward was the identity
    x_shape: tuple[int, ...]        # what backward's dy must match: x's shape, dtype, backend
    x_dtype: Any
    backend: B.Backend


class Dropout(Module):
    """``Dropout(p=0.5, *, generator=None)``: zero each element with probability ``p``
    in training mode and scale the survivors by 1/(1-p). Masks come from
    ``generator.keep_mask`` (the library's default generator when None)."""

    def __init__(self, p: float = 0.5, *, generator: Generator | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
            raise ValueError(f"p: expected a probability in [0, 1], got {p!r}")
        self.p = float(p)
        self.generator = generator
        self._clear_cache()

    def _clear_cache(self) -> None:
        self._cache: DropoutCache | None = None

    def extra_repr(self) -> str:
        """The arguments shown in the module's repr."""
        return f"p={self.p:g}"

    def forward(self, x: Array) -> Array:
        """x (...) -> y (...), same shape."""
        if not B.is_array(x):
            raise TypeError(f"input: expected an array, got {type(x).__name__}")
        if not B.is_floating(x):
            raise TypeError(f"input: expected a floating-point array, got dtype "
                            f"{B.dtype_name(x)}")
        be = B.backend_of(x)
        if not self.training or self.p == 0.0:
            self._cache = DropoutCache(None, tuple(x.shape), x.dtype, be)
            return x
        keep = 1.0 - self.p
        gen = self.generator or B.default_generator()
        mask = gen.keep_mask(keep, x.shape, be, x.dtype)                    # (...) 0/1
        mask = mask * (1.0 / keep) if keep > 0.0 else mask                  # (...) 0 or 1/q
        self._cache = DropoutCache(mask, tuple(x.shape), x.dtype, be)
        return x * mask

    def backward(self, dy: Array) -> Array:
        """dy (...) -> dx (...) through the forward's mask.

        ``dy`` is checked like every upstream gradient (``checks.check_grad_input``):
        an array of the forward's backend, float dtype and shape, finite when
        checks are on -- in eval mode too, where dx = dy."""
        k = self._cache
        if k is None:
            raise RuntimeError("backward called before forward (or after .to())")
        checks.check_grad_input("dy", dy, k.x_shape, k.x_dtype, k.backend,
                                "(the output's shape)")
        if k.mask is None:
            return dy
        return dy * k.mask
