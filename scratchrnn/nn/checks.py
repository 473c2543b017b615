"""Input validation shared by the layers: errors that name the argument,
what was expected and what came."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import backend as B
from ..backend import Array, Backend


def check_array(name: str, x: Any, backend: Backend) -> None:
    """``x`` must be an array of ``backend``'s library (no silent host/device copies)."""
    if not B.is_array(x):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    got = B.backend_of(x)
    if got.name != backend.name:
        raise TypeError(
            f"{name}: expected an array on {backend.label} ({backend.name}), got one on "
            f"{got.label} ({got.name}); move it with scratchrnn.backend.get_backend"
            f"({backend.label!r}).asarray(...)"
        )


def check_float(name: str, x: Array, dtype: Any, hint: str = "") -> None:
    """``x`` must be floating point with the parameters' dtype."""
    if not B.is_floating(x):
        raise TypeError(
            f"{name}: expected a floating-point array ({B.dtype_name_of(dtype)}), got "
            f"dtype {B.dtype_name(x)}{hint}"
        )
    if x.dtype != dtype:
        raise TypeError(
            f"{name}: expected dtype {B.dtype_name_of(dtype)} (the parameters' dtype), got "
            f"{B.dtype_name(x)}; convert the input or call .to(dtype=...) on the module"
        )


def check_shape(name: str, x: Array, expected: Sequence[int | None], meaning: str) -> None:
    """``x.shape`` must match ``expected`` (None matches any size)."""
    shape = tuple(x.shape)
    ok = len(shape) == len(expected) and all(
        e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name}: expected shape {want} {meaning}, got {shape}")


def check_finite(name: str, x: Array) -> None:
    """When checks are on (``backend.set_check_finite(True)``), reject NaN/Inf."""
    if B.check_finite_enabled():
        xp = B.namespace(x)
        if not bool(xp.all(xp.isfinite(x))):
            raise ValueError(f"{name}: expected finite values, got NaN or Inf")


def lengths_to_mask(lengths: Any, T: int, batch: int, backend: Backend) -> Array | None:
    """Validate ``lengths`` (B,) and build the (T, B, 1) validity mask ``t < length[b]``.

    Returns None when every sequence is full length (no masking needed).
    """
    host = B.to_numpy(lengths)
    if host.ndim != 1 or host.shape[0] != batch:
        raise ValueError(f"lengths: expected shape ({batch},) (one per sequence), got "
                         f"{tuple(host.shape)}")
    if host.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers, got dtype {host.dtype}")
    if host.size and (host.min() < 0 or host.max() > T):
        raise ValueError(f"lengths: expected values in [0, {T}] (T = {T}), got min "
                         f"{int(host.min())}, max {int(host.max())}")
    if host.size == 0 or host.min() == T:
        return None
    xp = backend.xp
    steps = xp.arange(T, device=backend.device)
    lens = backend.asarray(host.astype("int64"))
    return (steps[:, None] < lens[None, :])[:, :, None]              # (T, B, 1)


# --------------------------------------------------------------------------- #
# Backward-side inputs: upstream gradients and the one-backward-per-forward rule
# --------------------------------------------------------------------------- #
def check_grad_input(name: str, g: Any, shape: Sequence[int | None], dtype: Any,
                     backend: Backend, meaning: str) -> None:
    """An upstream gradient ``g`` must be an array of ``backend``, of the forward's
    floating dtype ``dtype`` (no int, bool, float16, complex or object values), of
    ``shape`` and, when ``set_check_finite(True)`` is on, finite."""
    check_array(name, g, backend)
    if not B.is_floating(g):
        raise TypeError(f"{name}: expected a floating-point array ({B.dtype_name_of(dtype)}, "
                        f"the forward's dtype), got dtype {B.dtype_name(g)}")
    if g.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {B.dtype_name_of(dtype)} (the forward's "
                        f"dtype), got {B.dtype_name(g)}; convert the gradient first")
    check_shape(name, g, shape, meaning)
    check_finite(name, g)


def check_carry_grads(dh_n: Any, names: tuple[str, ...]) -> None:
    """The final-state gradients must come as one entry per carried state
    (``(dh_n, dc_n)`` for an LSTM)."""
    if len(names) == 1:
        return
    if not isinstance(dh_n, (tuple, list)) or len(dh_n) != len(names):
        got = (f"a {type(dh_n).__name__} of length {len(dh_n)}"
               if isinstance(dh_n, (tuple, list)) else type(dh_n).__name__)
        raise TypeError(f"dh_n: expected a tuple ({', '.join(names)}) (entries may be None), "
                        f"got {got}")


class Spent:
    """Marks a forward cache that one backward has already consumed."""

    def __repr__(self) -> str:
        return "SPENT"


SPENT = Spent()


def cache_for_backward(module: Any, cache: Any) -> Any:
    """``cache`` if a backward may use it: refuse a backward before any forward and
    a second backward after one forward (it would add the gradients twice)."""
    if cache is None:
        raise RuntimeError(f"{type(module).__name__}.backward: backward called before forward "
                           f"(or after .to())")
    if cache is SPENT:
        raise RuntimeError(f"{type(module).__name__}.backward: backward called twice after "
                           f"one forward (gradients would be added twice); run forward again")
    return cache
