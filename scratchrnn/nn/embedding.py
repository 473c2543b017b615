"""Token embeddings (a table lookup) and one-hot encoding.

Forward, for integer ids idx (...) flattened to n = 1..N:

    y_n = W[idx_n, :]               W (V, E)        y (..., E)

which is the product onehot(idx) W, so backward is its transpose:

    dW = onehot(idx)^T dY,   i.e.   dW[v, :] = Σ_{n : idx_n = v} dY_n

a scatter-add in which a token used k times receives the sum of its k
gradients (``backend.index_add``; plain ``dW[idx] += dY`` would keep only
one of them). With ``padding_idx`` = p, row p starts at zero and
dW[p, :] = 0 always, as in PyTorch. The ids themselves get no gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import backend as B
from ..backend import Array, Backend, Generator
from . import checks
from .module import Module, Parameter


@dataclass(slots=True)
class EmbeddingCache:
    """What the embedding backward needs from its forward: the ids."""
    idx: Array                      # (N,) the ids, flattened
    lead: tuple[int, ...]           # the ids' shape (...)


def _as_ids(name: str, idx: Any, backend: Backend) -> Array:
    """``idx`` as an integer array of ``backend`` (NumPy arrays and lists are copied there)."""
    if B.is_array(idx) and B.backend_of(idx).name == backend.name:
        ids = idx
    else:
        ids = backend.asarray(B.to_numpy(idx))
    if not B.is_integer(ids):
        raise TypeError(f"{name}: expected an integer array of token ids, got dtype "
                        f"{B.dtype_name(ids)}")
    return ids


def _check_range(name: str, ids: Array, num: int, what: str) -> None:
    """Every id must lie in [0, num); the error names the first offender."""
    xp = B.namespace(ids)
    if ids.size and bool(xp.any((ids < 0) | (ids >= num))):
        host = B.to_numpy(ids).reshape(-1)
        bad = host[(host < 0) | (host >= num)]
        raise ValueError(f"{name}: expected {what} in [0, {num}), got {int(bad[0])} "
                         f"({bad.size} id(s) out of range, min {int(host.min())}, max "
                         f"{int(host.max())})")


class Embedding(Module):
    """A (V, E) lookup table: ``Embedding(num_embeddings, embedding_dim, padding_idx=None,
    *, dtype, device, generator)``. ``weight`` ~ N(0, 1), as ``torch.nn.Embedding``."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 *, dtype: str = "float32", device: str | B.Backend | None = None,
                 generator: Generator | None = None) -> None:
        super().__init__()
        for name, value in (("num_embeddings", num_embeddings),
                            ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if padding_idx is not None:
            if not (isinstance(padding_idx, int) and not isinstance(padding_idx, bool)
                    and -num_embeddings <= padding_idx < num_embeddings):
                raise ValueError(f"padding_idx: expected an int in [{-num_embeddings}, "
                                 f"{num_embeddings - 1}] or None, got {padding_idx!r}")
            padding_idx %= num_embeddings           # PyTorch accepts -1 for the last row
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        backend = B.get_backend(device)
        init = generator or B.default_generator()
        W = init.normal((num_embeddings, embedding_dim), backend, dtype)   # (V, E)
        if padding_idx is not None:
            W = W * self._keep_rows(backend, W.dtype)
        self.weight = Parameter(W)
        self._clear_cache()

    def _keep_rows(self, backend: Backend, dtype: Any) -> Array:
        """(V, 1): 0.0 on the padding row, 1.0 elsewhere."""
        xp = backend.xp
        rows = xp.arange(self.num_embeddings, device=backend.device)
        return xp.astype(rows != self.padding_idx, dtype)[:, None]

    def _clear_cache(self) -> None:
        self._cache: EmbeddingCache | checks.Spent | None = None

    def extra_repr(self) -> str:
        """The arguments shown in the module's repr."""
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + ("" if self.padding_idx is None else f", padding_idx={self.padding_idx}")

    def forward(self, idx: Any) -> Array:
        """idx (...) integer ids -> y (..., E)."""
        backend = self.backend
        ids = _as_ids("input", idx, backend)
        _check_range("input", ids, self.num_embeddings, "token ids (num_embeddings = "
                     f"{self.num_embeddings})")
        xp = backend.xp
        lead = tuple(ids.shape)
        flat = xp.reshape(ids, (math.prod(lead),))                         # (N,)
        y = xp.take(self.weight.data, flat, axis=0)                        # (N, E)
        self._cache = EmbeddingCache(flat, lead)
        return xp.reshape(y, lead + (self.embedding_dim,))                 # (..., E)

    def backward(self, dy: Array) -> None:
        """dy (..., E): weight.grad += onehot(idx)^T dY (repeats summed). Returns None."""
        k: EmbeddingCache = checks.cache_for_backward(self, self._cache)
        backend, W = self.backend, self.weight.data
        checks.check_grad_input("dy", dy, k.lead + (self.embedding_dim,), W.dtype, backend,
                                "(the output's shape)")
        self._cache = checks.SPENT                                         # one backward
        xp = backend.xp
        dY = xp.reshape(dy, (k.idx.shape[0], self.embedding_dim))          # (N, E)
        dW = xp.zeros(W.shape, dtype=W.dtype, device=backend.device)       # (V, E)
        dW = B.index_add(dW, k.idx, dY)
        if self.padding_idx is not None:
            dW = dW * self._keep_rows(backend, W.dtype)
        self.weight.grad = self.weight.grad + dW
        return None


def one_hot(idx: Any, num_classes: int, dtype: str = "float32",
            backend: str | Backend | None = None) -> Array:
    """idx (...) integer ids -> (..., C) with 1.0 at [..., idx] and 0.0 elsewhere.

    ``backend`` defaults to the backend of ``idx`` (NumPy for lists).
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    if backend is None:
        be = B.backend_of(idx) if B.is_array(idx) else B.get_backend("numpy")
    else:
        be = B.get_backend(backend)
    ids = _as_ids("idx", idx, be)
    _check_range("idx", ids, num_classes, f"class ids (num_classes = {num_classes})")
    xp = be.xp
    classes = xp.arange(num_classes, device=be.device)                     # (C,)
    return xp.astype(ids[..., None] == classes, be.dtype(dtype))          # (..., C)
