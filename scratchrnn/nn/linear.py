"""The fully connected layer, over any leading dimensions.

Forward, for x (..., I) flattened to X (N, I) with N the product of the
leading dimensions:

    Y = X W^T + b                   W (O, I), b (O,)      Y (N, O) -> (..., O)

Backward, with dY = ∂L/∂Y:

    dX = dY W                       (N, I) -> (..., I)
    dW = dY^T X                     (O, I)   (summed over all N rows)
    db = Σ_n dY_n                   (O,)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import backend as B
from ..backend import Array, Generator
from . import checks
from .module import Module, Parameter


@dataclass(slots=True)
class LinearCache:
    """What the linear backward needs from its forward: the input x."""
    x: Array                        # (N, I) the input, leading dims flattened
    lead: tuple[int, ...]           # the leading dims (...) of the input


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


class Linear(Module):
    """y = x W^T + b over the last axis; PyTorch's names, shapes and init.

    ``weight`` (out_features, in_features) and ``bias`` (out_features,) are
    drawn from U(-1/√in, 1/√in), weight first, as ``torch.nn.Linear`` does.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 dtype: str = "float32", device: str | B.Backend | None = None,
                 generator: Generator | None = None) -> None:
        super().__init__()
        _positive_int("in_features", in_features)
        _positive_int("out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        backend = B.get_backend(device)
        init = generator or B.default_generator()
        k = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(init.uniform(-k, k, (out_features, in_features), backend, dtype))
        self.bias: Parameter | None = None
        if bias:
            self.bias = Parameter(init.uniform(-k, k, (out_features,), backend, dtype))
        self._clear_cache()

    def _clear_cache(self) -> None:
        self._cache: LinearCache | checks.Spent | None = None

    def extra_repr(self) -> str:
        """The arguments shown in the module's repr."""
        s = f"in_features={self.in_features}, out_features={self.out_features}"
        return s + ("" if self.bias is not None else ", bias=False")

    def forward(self, x: Array) -> Array:
        """x (..., I) -> y (..., O)."""
        backend, W = self.backend, self.weight.data
        checks.check_array("input", x, backend)
        checks.check_float("input", x, W.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"input: expected shape (..., {self.in_features}) (last dim "
                             f"in_features), got {tuple(x.shape)}")
        checks.check_finite("input", x)
        xp = backend.xp
        lead = tuple(x.shape[:-1])
        X = xp.reshape(x, (math.prod(lead), self.in_features))        # (N, I)
        Y = X @ W.T                                                    # (N, O)
        if self.bias is not None:
            Y = Y + self.bias.data
        self._cache = LinearCache(X, lead)
        return xp.reshape(Y, lead + (self.out_features,))              # (..., O)

    def backward(self, dy: Array) -> Array:
        """dy (..., O) -> dx (..., I); weight.grad and bias.grad accumulate."""
        k: LinearCache = checks.cache_for_backward(self, self._cache)
        backend = self.backend
        checks.check_grad_input("dy", dy, k.lead + (self.out_features,), k.x.dtype, backend,
                                "(the output's shape)")
        self._cache = checks.SPENT                                     # one backward per forward
        xp = backend.xp
        dY = xp.reshape(dy, (k.x.shape[0], self.out_features))        # (N, O)
        self.weight.grad = self.weight.grad + dY.T @ k.x               # (O, I)
        if self.bias is not None:
            self.bias.grad = self.bias.grad + xp.sum(dY, axis=0)       # (O,)
        dX = dY @ self.weight.data                                     # (N, I)
        return xp.reshape(dX, k.lead + (self.in_features,))           # (..., I)
