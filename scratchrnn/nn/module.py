"""Parameters and the small module system every layer and model builds on.

A :class:`Module` owns :class:`Parameter` objects (``.data`` and ``.grad``)
and child modules. Its ``forward`` caches what ``backward`` needs; there is
no autograd, so a model's ``backward`` calls its children's ``backward`` in
reverse order, each returning the gradient with respect to its input and
accumulating into its parameters' ``.grad``. One forward allows one backward:
a second raises ``RuntimeError`` instead of adding the gradients twice
(:func:`~scratchrnn.nn.checks.cache_for_backward`).

Parameters iterate as one flat name -> Parameter mapping
(``named_parameters()``, names like ``rnn.weight_ih_l0``) that optimizers,
clipping, gradient checks and checkpoints all share.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from .. import backend as B
from ..backend import Array, Backend


class Parameter:
    """A trainable array and its accumulated gradient (same shape, device, dtype)."""

    __slots__ = ("data", "grad")

    def __init__(self, data: Array) -> None:
        self.data = data
        self.grad = B.namespace(data).zeros_like(data)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``data``."""
        return tuple(self.data.shape)

    def zero_grad(self) -> None:
        """Reset ``grad`` to zeros of the parameter's shape and dtype."""
        self.grad = B.namespace(self.data).zeros_like(self.data)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: parameters, children, train/eval mode, device moves.

    Subclasses assign ``Parameter`` and ``Module`` attributes in ``__init__``
    (after ``super().__init__()``); they are registered in assignment order.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        """The module's forward pass; subclasses define it (``__call__`` calls it)."""
        raise NotImplementedError

    def backward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        """The module's backward pass: ∂L/∂outputs in, ∂L/∂inputs out, parameter gradients added
        into ``p.grad``."""
        raise NotImplementedError

    # ---- parameters ---------------------------------------------------- #
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) for every parameter of this module and its children."""
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, child in self._modules.items():
            yield from child.named_parameters(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        """Every parameter of this module and its children, in ``named_parameters`` order."""
        return [p for _, p in self.named_parameters()]

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module ('') and every descendant."""
        yield prefix.rstrip("."), self
        for name, child in self._modules.items():
            yield from child.named_modules(prefix + name + ".")

    def zero_grad(self) -> None:
        """Reset the gradient of every parameter to zero."""
        for p in self.parameters():
            p.zero_grad()

    def num_parameters(self) -> int:
        """The number of scalars in all parameters."""
        return sum(int(_prod(p.shape)) for p in self.parameters())

    # ---- state --------------------------------------------------------- #
    def state_dict(self) -> dict[str, Array]:
        """Name -> parameter array (on the module's device, not copied)."""
        return {name: p.data for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any] | str | os.PathLike,
                        strict: bool = True) -> None:
        """Copy arrays (NumPy, any backend, or torch tensors) in, all or nothing.

        ``state`` is a mapping name -> array, or the path of a ``.safetensors``
        file (PyTorch's names, e.g. one written by ``scratchrnn export`` or by
        ``safetensors.torch.save_file(torch_model.state_dict(), path)``; its
        tensors' shapes are checked against the parameters before any is read,
        bfloat16 and float16 tensors are widened exactly to float32).
        Each array must have the parameter's shape and hold real numbers that
        stay finite in the parameter's dtype (a float64 1e300 overflows
        float32: refused); it is converted to the parameter's device and dtype.
        ``strict`` requires the same key set. Every array is checked before
        any parameter changes.
        """
        self.apply_state(self.check_state(state, strict))

    def check_state(self, state: Mapping[str, Any] | str | os.PathLike,
                    strict: bool = True) -> dict[str, Any]:
        """The checks of :meth:`load_state_dict`, changing nothing: name -> host array
        already cast to its parameter's dtype, for :meth:`apply_state`."""
        params = dict(self.named_parameters())
        if isinstance(state, (str, os.PathLike)):
            from ..backend.serialize import load_safetensors, read_safetensors_index

            index, _ = read_safetensors_index(state)
            try:
                _check_keys(params, index, strict)
            except KeyError as err:
                raise KeyError(f"safetensors {state}: {err.args[0]}") from None
            for name, (_, shape) in index.items():
                if name in params and shape != params[name].shape:
                    raise ValueError(f"safetensors {state}: tensor {name!r}: expected shape "
                                     f"{params[name].shape}, got {shape}")
            state, _ = load_safetensors(state, [k for k in index if k in params])
        if not isinstance(state, Mapping):
            raise TypeError(f"state_dict: expected a mapping name -> array or a .safetensors "
                            f"path, got {type(state).__name__}")
        _check_keys(params, state, strict)
        checked: dict[str, Any] = {}
        for name, value in state.items():
            if name not in params:
                continue
            p = params[name]
            host = B.to_numpy(value)
            if host.dtype.kind not in "iuf":
                raise TypeError(f"state_dict[{name!r}]: expected real numbers (float or int), "
                                f"got dtype {host.dtype}")
            if tuple(host.shape) != p.shape:
                raise ValueError(
                    f"state_dict[{name!r}]: expected shape {p.shape}, got {tuple(host.shape)}"
                )
            if not B.all_finite(host):
                raise ValueError(f"state_dict[{name!r}]: expected finite values, got NaN or Inf")
            dtype = B.dtype_name(p.data)
            with B.quiet_float_errors():            # overflow is checked just below
                cast = host.astype(dtype, copy=False)
            if not B.all_finite(cast):
                raise ValueError(f"state_dict[{name!r}]: expected values that fit {dtype}, got "
                                 f"finite {host.dtype} values that overflow it to Inf")
            checked[name] = cast
        return checked

    def apply_state(self, checked: Mapping[str, Any]) -> None:
        """Assign what :meth:`check_state` returned (cannot fail half way)."""
        params = dict(self.named_parameters())
        for name, host in checked.items():
            p = params[name]
            p.data = B.backend_of(p.data).asarray(host, dtype=p.data.dtype)
            p.zero_grad()

    # ---- modes and devices --------------------------------------------- #
    def train(self, mode: bool = True) -> Module:
        """Set training mode to ``mode`` (dropout on when True) on this module and its children;
        returns self."""
        for _, m in self.named_modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Switch this module and its children to evaluation mode (dropout off); returns self."""
        return self.train(False)

    def to(self, device: str | Backend | None = None, dtype: str | None = None) -> Module:
        """Move parameters and gradients to ``device`` ('cpu', 'cuda', 'strict',
        a :class:`Backend`) and/or cast them to ``dtype`` ('float32'/'float64')."""
        for _, m in self.named_modules():
            for p in m._parameters.values():
                target = B.get_backend(device) if device is not None else B.backend_of(p.data)
                dt = dtype or B.dtype_name(p.data)
                p.data = target.asarray(p.data, dtype=dt)
                p.grad = target.asarray(p.grad, dtype=dt)
            m._clear_cache()
        return self

    def _clear_cache(self) -> None:
        """Forget what the last forward cached (arrays on the old device)."""

    @property
    def backend(self) -> Backend:
        """The backend holding this module's parameters (NumPy if it has none)."""
        for p in self.parameters():
            return B.backend_of(p.data)
        return B.get_backend()

    def extra_repr(self) -> str:
        """The arguments shown in the module's repr ('' by default)."""
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + (")" if len(lines) == 1 else "\n)")


def _check_keys(params: Mapping[str, Any], state: Mapping[str, Any], strict: bool) -> None:
    if strict:
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise KeyError(f"state_dict: missing keys {missing}, unexpected keys {unexpected}")


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
