"""Array backends: the one package of scratchrnn that imports numpy or cupy.

Everything else writes its math against the Python Array API standard and
asks this module for the namespace of its inputs (Chainer's ``xp`` idiom)::

    xp = backend.namespace(x)          # numpy / cupy / array_api_strict
    h = xp.tanh(x @ W.T)

A :class:`Backend` names an array library and a device on it:

===================  ==========================================================
spec                 meaning
===================  ==========================================================
``"numpy"``/"cpu"    NumPy on the host (the default)
``"cupy"``/"cuda"    CuPy on CUDA device 0 (``"cuda:1"`` for device 1)
``"auto"``           CuPy when a CUDA device is usable, else NumPy
``"strict"``         ``array_api_strict`` on its simulated non-CPU device
                     ``device1`` -- it refuses implicit NumPy conversion and
                     mixing with NumPy values, as CuPy does (used by the
                     portability tests)
===================  ==========================================================

The default comes from the ``SCRATCHRNN_BACKEND`` environment variable.
Besides the namespace this module provides host <-> device transfer
(:func:`to_numpy`, :meth:`Backend.asarray`), seeded random numbers
(:class:`Generator`) and the one operation the standard lacks that the
library needs, a scatter-add (:func:`index_add`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .blas_tuning import tune_openblas_env
from .env import env_flag

tune_openblas_env()  # before numpy loads OpenBLAS: see blas_tuning.py

import array_api_compat  # noqa: E402
import numpy as np  # noqa: E402

Array = Any  # an array of whichever backend; the Array API has no common type

_STRICT_DEVICE_NAME = "device1"
_ALIASES = {
    "numpy": "numpy", "cpu": "numpy", "np": "numpy",
    "cupy": "cupy", "cuda": "cupy", "gpu": "cupy", "cp": "cupy",
    "strict": "array_api_strict", "array_api_strict": "array_api_strict",
}
FLOAT_DTYPES = ("float32", "float64")


def _import_cupy():
    try:
        import cupy
    except ImportError as err:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "backend 'cupy' requested but CuPy is not installed; "
            "install it with `pip install scratchrnn[cuda12]` (or [cuda13])"
        ) from err
    return cupy


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError, missing driver ...
        return False


@dataclass(frozen=True)
class Backend:
    """An array library plus a device on it.

    ``xp`` is the Array-API-compatible namespace (``array_api_compat``'s
    wrapper for NumPy and CuPy); ``device`` is what creation functions take.
    """

    name: str    # "numpy" | "cupy" | "array_api_strict"
    xp: Any      # the array namespace
    device: Any  # device object understood by xp's creation functions

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device!r})"

    @property
    def label(self) -> str:
        """A short user-facing name: 'cpu', 'cuda:0', 'strict'."""
        if self.name == "numpy":
            return "cpu"
        if self.name == "cupy":
            return f"cuda:{self.device.id}"
        return "strict"

    def dtype(self, name: str | Any) -> Any:
        """The namespace's dtype for ``'float32'``/``'float64'`` (or a dtype)."""
        if isinstance(name, str):
            if name not in FLOAT_DTYPES:
                raise ValueError(f"dtype: expected one of {FLOAT_DTYPES}, got {name!r}")
            return getattr(self.xp, name)
        return name

    def asarray(self, obj: Any, dtype: Any = None) -> Array:
        """Copy ``obj`` (a NumPy array, list, or another backend's array) here."""
        if dtype is not None:
            dtype = self.dtype(dtype)
        if self.name == "numpy":
            return np.asarray(to_numpy(obj), dtype=dtype)
        if self.name == "cupy":
            cupy = _import_cupy()
            with cupy.cuda.Device(self.device.id):
                if isinstance(obj, cupy.ndarray):
                    return cupy.asarray(obj, dtype=dtype)
                return cupy.asarray(to_numpy(obj), dtype=dtype)
        return self.xp.asarray(to_numpy(obj), dtype=dtype, device=self.device)

    def zeros(self, shape: Sequence[int], dtype: Any = "float32") -> Array:
        """Zeros of ``shape`` and ``dtype`` on this backend's device."""
        return self.xp.zeros(tuple(shape), dtype=self.dtype(dtype), device=self.device)


def cuda_problem() -> tuple[str, str] | None:
    """Why CuPy cannot run here: ``("missing", text)`` when CuPy is not installed,
    ``("unusable", text)`` when it is but finds no usable device; None when it can."""
    try:
        import cupy
    except ImportError as err:
        return "missing", f"CuPy is not installed ({err})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError, missing driver ...
        return "unusable", f"CuPy is installed but no CUDA device is usable ({err})"
    if n < 1:
        return "unusable", "CuPy is installed but sees no CUDA device"
    return None


def parse_device(spec: str, what: str = "device") -> tuple[str, int]:
    """``(library, device index)`` for a device spec (see the module docstring), without
    importing CuPy; anything else is a ValueError naming ``what`` (the argument, or the
    environment variable the spec came from). ``"auto"`` stays ``("auto", 0)``."""
    if not isinstance(spec, str):
        raise TypeError(f"{what}: expected a str or Backend, got {type(spec).__name__}")
    base, colon, index = spec.strip().lower().partition(":")
    name = "auto" if base == "auto" else _ALIASES.get(base)
    ok = name is not None and (not colon or index.isdigit())
    if not ok:
        raise ValueError(
            f"{what}: expected one of 'cpu', 'numpy', 'cuda[:N]', 'cupy', 'auto', "
            f"'strict', got {spec!r}"
        )
    return name, int(index or 0)


def get_backend(spec: str | Backend | None = None) -> Backend:
    """Resolve a backend spec (see the module docstring) to a :class:`Backend`;
    None: ``$SCRATCHRNN_BACKEND``, else NumPy."""
    if isinstance(spec, Backend):
        return spec
    what = "device"
    if spec is None:
        spec, what = os.environ.get("SCRATCHRNN_BACKEND", "numpy"), "SCRATCHRNN_BACKEND"
    name, index = parse_device(spec, what)
    if name == "auto":
        name = "cupy" if cuda_available() else "numpy"
    if name == "numpy":
        return _numpy_backend()
    if name == "cupy":
        cupy = _import_cupy()
        return Backend("cupy", array_api_compat.array_namespace(cupy.empty(0)),
                       cupy.cuda.Device(index))
    import array_api_strict

    return Backend("array_api_strict", array_api_strict,
                   array_api_strict.Device(_STRICT_DEVICE_NAME))


def _numpy_backend() -> Backend:
    return Backend("numpy", array_api_compat.array_namespace(np.empty(0)), "cpu")


def namespace(*arrays: Array) -> Any:
    """The Array API namespace of ``arrays`` (all must share one library)."""
    return array_api_compat.array_namespace(*arrays)


def device_of(x: Array) -> Any:
    """The device of ``x``, for creation functions: ``xp.zeros(..., device=device_of(x))``."""
    return array_api_compat.device(x)


def backend_of(x: Array) -> Backend:
    """The :class:`Backend` that holds ``x``."""
    if array_api_compat.is_numpy_array(x):
        return _numpy_backend()
    if array_api_compat.is_cupy_array(x):
        return Backend("cupy", namespace(x), x.device)
    if is_array(x) and array_api_compat.is_array_api_strict_namespace(namespace(x)):
        return Backend("array_api_strict", namespace(x), x.device)
    raise TypeError(f"expected a NumPy, CuPy or array_api_strict array, got {type(x).__name__}")


def is_array(x: Any) -> bool:
    """True for an array of any supported library."""
    return array_api_compat.is_array_api_obj(x) and not isinstance(x, (int, float, complex))


def to_numpy(x: Any) -> np.ndarray:
    """Copy any backend's array (or a nested list / scalar) to a host ndarray."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if type(x).__module__.startswith("array_api_strict"):
        import array_api_strict

        return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))
    return np.asarray(x)


def to_scalar(x: Any) -> float:
    """A 0-d array (any backend) as a Python float."""
    return float(to_numpy(x))


# --------------------------------------------------------------------------- #
# The operation the Array API standard lacks: scatter-add.
# --------------------------------------------------------------------------- #
def index_add(target: Array, index: Array, values: Array) -> Array:
    """``target[index[n], :] += values[n, :]`` for every n, repeats accumulated.

    This is the embedding gradient: a token used twice gets both gradients.
    Plain indexed assignment (``target[index] += values``) keeps only the last
    write of a repeated index, so each backend uses its unbuffered primitive:
    ``np.add.at`` on NumPy, ``cupyx.scatter_add`` on CuPy and, for any other
    Array API library, a one-hot matrix product (exact, O(N·V) memory).
    ``target`` (V, E) is updated in place where the library allows and returned.
    """
    if array_api_compat.is_numpy_array(target):
        np.add.at(target, index, values)
        return target
    if array_api_compat.is_cupy_array(target):
        import cupyx

        cupyx.scatter_add(target, index, values)
        return target
    return index_add_portable(target, index, values)


def index_add_portable(target: Array, index: Array, values: Array) -> Array:
    """The library-independent scatter-add: ``target + onehot(index)^T @ values``."""
    xp = namespace(target, index, values)
    V = target.shape[0]
    classes = xp.arange(V, device=device_of(target))
    onehot = xp.astype(index[:, None] == classes[None, :], target.dtype)  # (N, V)
    return target + onehot.T @ values                                      # (V, E)


# --------------------------------------------------------------------------- #
# Random numbers
# --------------------------------------------------------------------------- #
class Generator:
    """A seeded random stream that serves every backend.

    Parameter initialisation draws on the host, so one seed gives the same
    weights on every backend.  Dropout masks are drawn where the data live:
    on the host for NumPy and array_api_strict, on the GPU for CuPy (seeded
    from the host stream, so a seed still fixes the run).
    """

    def __init__(self, seed: int | None = None) -> None:
        self.host = np.random.default_rng(seed)

    def uniform(self, low: float, high: float, shape: Sequence[int],
                backend: Backend, dtype: Any = "float32") -> Array:
        """U(low, high) samples drawn on the host, placed on ``backend``."""
        sample = self.host.uniform(low, high, size=tuple(shape))
        return backend.asarray(sample, dtype=dtype)

    def normal(self, shape: Sequence[int], backend: Backend, dtype: Any = "float32") -> Array:
        """Standard normal samples of ``shape`` from the host stream, on ``backend``."""
        return backend.asarray(self.host.standard_normal(size=tuple(shape)), dtype=dtype)

    def keep_mask(self, p_keep: float, shape: Sequence[int], backend: Backend,
                  dtype: Any = "float32") -> Array:
        """Bernoulli(p_keep) mask of 0.0/1.0 values on ``backend``."""
        if backend.name == "cupy":
            cupy = _import_cupy()
            with cupy.cuda.Device(backend.device.id):
                rng = cupy.random.default_rng(int(self.host.integers(2**63 - 1)))
                draw = rng.random(size=tuple(shape), dtype=backend.dtype(dtype))
                return (draw < p_keep).astype(backend.dtype(dtype))
        draw = self.host.random(size=tuple(shape))
        return backend.asarray(draw < p_keep, dtype=dtype)

    def get_state(self) -> dict:
        """JSON-serialisable state (for checkpoints)."""
        return self.host.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Restore a state that :meth:`get_state` returned (checked first)."""
        check_generator_state(state)
        self.host.bit_generator.state = state


def check_generator_state(state: Any) -> None:
    """Raise ``ValueError`` unless ``state`` is a state :meth:`Generator.get_state` wrote."""
    try:
        np.random.PCG64().state = state          # NumPy's own validation, on a scratch one
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise ValueError(f"expected a PCG64 generator state, got {str(state)[:60]!r} "
                         f"({err})") from None


_default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Reseed the library's default generator (initialisation, dropout)."""
    global _default_generator
    _default_generator = Generator(seed)
    return _default_generator


def default_generator() -> Generator:
    """The generator that :func:`manual_seed` seeds and the layers draw from by default."""
    return _default_generator


# --------------------------------------------------------------------------- #
# Input checking (used by the layers to give errors that name the argument)
# --------------------------------------------------------------------------- #
_check_finite: bool | None = None     # None: not decided yet ($SCRATCHRNN_CHECK_FINITE)


def set_check_finite(enabled: bool) -> bool:
    """Turn NaN/Inf checks of layer inputs on or off; returns the old setting."""
    global _check_finite
    old, _check_finite = check_finite_enabled(), bool(enabled)
    return old


def check_finite_enabled() -> bool:
    """Whether layers refuse NaN/Inf inputs: :func:`set_check_finite`'s setting, else
    ``SCRATCHRNN_CHECK_FINITE`` (off by default; read at the first check, so a bad
    value is an error of the command that reads it, not of ``import scratchrnn``)."""
    global _check_finite
    if _check_finite is None:
        _check_finite = env_flag("SCRATCHRNN_CHECK_FINITE", False)
    return _check_finite


def all_finite(x: Any) -> bool:
    """True when every value of ``x`` (any backend; a host copy is made) is finite."""
    host = to_numpy(x)
    if host.dtype.kind not in "fc":
        return True
    return bool(np.isfinite(host).all())


def is_floating(x: Array) -> bool:
    """Whether ``x`` has a real floating dtype."""
    return namespace(x).isdtype(x.dtype, "real floating")


def is_integer(x: Array) -> bool:
    """Whether ``x`` has an integer dtype."""
    return namespace(x).isdtype(x.dtype, "integral")


def dtype_name(x: Array) -> str:
    """``'float32'``, ``'float64'``, ``'int64'``... for an array of any backend."""
    return dtype_name_of(x.dtype)


def to_numpy_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype matching any backend's dtype object."""
    try:
        return np.dtype(dtype)
    except TypeError:  # array_api_strict dtypes wrap a NumPy dtype
        return np.dtype(dtype._np_dtype)


def dtype_name_of(dtype: Any) -> str:
    """``'float32'`` for any backend's float32 dtype object, and so on."""
    return str(to_numpy_dtype(dtype))


def quiet_float_errors() -> Any:
    """A context in which overflow / invalid-value / divide-by-zero in array math
    raise no ``RuntimeWarning``: for callers that check the results themselves
    (the trainer stops on a non-finite loss, gradient or weight)."""
    return np.errstate(all="ignore")


# BLAS's thread count and the policy that follows the load; see blas_threads.
from .blas_threads import (  # noqa: E402,F401
    adapt_blas_threads,
    get_blas_threads,
    set_blas_threads,
    set_thread_policy,
    thread_policy,
)
