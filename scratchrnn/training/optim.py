"""Optimizers: SGD (momentum, Nesterov), Adam, AdamW, Adagrad, RMSprop.

Each follows PyTorch's update rule exactly (``torch.optim``'s documented
algorithms, same defaults), so a run here and a run there agree step for step.
With g = ∇θ L (``param.grad``), λ the weight decay, t the step count::

    SGD      g ← g + λθ;  b ← μ b + (1-τ) g  (b₁ = g);  g ← g + μ b (Nesterov) or b
             θ ← θ - η g
    Adam     g ← g + λθ;  m ← β₁m + (1-β₁)g;  v ← β₂v + (1-β₂)g²
             θ ← θ - η/(1-β₁ᵗ) · m / (√v / √(1-β₂ᵗ) + ε)
    AdamW    θ ← θ(1 - ηλ), then Adam without the λθ term
    Adagrad  g ← g + λθ;  s ← s + g²;  θ ← θ - η/(1+(t-1)δ) · g / (√s + ε)
    RMSprop  g ← g + λθ;  s ← αs + (1-α)g²;  (centered: a ← αa + (1-α)g, s̃ = s - a²)
             u = g / (√s̃ + ε);  b ← μb + u (μ > 0);  θ ← θ - η (b or u)

State lives per parameter, keyed by the parameter's *name* (from
``model.named_parameters()``; position ``"0"``, ``"1"``... for bare lists),
so ``state_dict()`` is plain data that a checkpoint can store and
``load_state_dict`` can restore into a new optimizer over a new model.

Devices: a state array is always created beside its parameter, and
``step()`` moves any state array that is not on its parameter's device (or
dtype) there first. So after ``model.to("cuda")`` the next ``step()`` carries
the optimizer state along; ``optimizer.to(device)`` does it eagerly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import backend as B
from ..backend import Array
from ..nn.module import Module, Parameter

ParamsLike = Module | Iterable[Parameter] | Iterable[tuple[str, Parameter]]


def _named(params: ParamsLike) -> list[tuple[str, Parameter]]:
    """Normalise a module, ``parameters()`` or ``named_parameters()`` to name/param pairs."""
    if isinstance(params, Module):
        return list(params.named_parameters())
    items = list(params)
    named: list[tuple[str, Parameter]] = []
    for i, item in enumerate(items):
        if isinstance(item, Parameter):
            named.append((str(i), item))
        elif (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Parameter)):
            named.append((str(item[0]), item[1]))
        else:
            raise TypeError(f"params: expected Parameters or (name, Parameter) pairs, got "
                            f"{type(item).__name__} at position {i}")
    if not named:
        raise ValueError("params: expected at least one parameter, got an empty list")
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        raise ValueError("params: parameter names must be unique")
    # The same Parameter twice is refused, not deduplicated: it would be updated twice
    # per step, and its state stored under two names (PyTorch warns and will refuse too).
    first: dict[int, str] = {}
    for n, p in named:
        if id(p) in first:
            raise ValueError(f"params: expected each Parameter once, got the same Parameter "
                             f"as {first[id(p)]!r} and {n!r}")
        first[id(p)] = n
    return named


def _check_nonneg(name: str, value: float) -> float:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and value >= 0
                                       and math.isfinite(value)):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


def _check_betas(betas: Any) -> list[float]:
    """Adam's (β₁, β₂): two numbers in [0, 1)."""
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise ValueError(f"betas: expected a pair (beta1, beta2) of numbers in [0, 1), got "
                         f"{betas!r}")
    for name, b in (("betas[0]", betas[0]), ("betas[1]", betas[1])):
        if isinstance(b, bool) or not (isinstance(b, (int, float)) and 0.0 <= b < 1.0):
            raise ValueError(f"{name}: expected a value in [0, 1), got {b!r}")
    return [float(betas[0]), float(betas[1])]


@dataclass(slots=True)
class CheckedState:
    """An optimizer state that :meth:`Optimizer.check_state` accepted."""

    state: dict[str, dict[str, Array]]   # parameter name -> slot -> array (on its device)
    lr: float
    hyper: dict[str, Any]
    steps: int


class Optimizer:
    """Base class: parameter bookkeeping, per-parameter state, (de)serialisation.

    Subclasses list their hyper-parameters in ``hyper`` and implement
    :meth:`update`, which returns the new parameter array.
    """

    slots: tuple[str, ...] = ()                             # the state each parameter keeps

    def __init__(self, params: ParamsLike, lr: float, **hyper: Any) -> None:
        self.named = _named(params)
        self.lr = lr                                         # checked by the setter
        self.hyper = dict(hyper)
        self.steps = 0                                       # t, shared by all parameters
        self.state: dict[str, dict[str, Array]] = {n: {} for n, _ in self.named}

    @property
    def lr(self) -> float:
        """The learning rate η (a schedule sets it before each step); finite, >= 0."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _check_nonneg("lr", value)

    @property
    def params(self) -> list[Parameter]:
        """The parameters this optimizer updates, in order."""
        return [p for _, p in self.named]

    def zero_grad(self) -> None:
        """Reset the gradient of every parameter to zero."""
        for _, p in self.named:
            p.zero_grad()

    def _check_grads(self) -> None:
        """Every ``.grad`` must match its parameter exactly (no broadcasting, no dtype change)."""
        for name, p in self.named:
            g = p.grad
            if not B.is_array(g):
                raise TypeError(f"{name}.grad: expected an array, got {type(g).__name__}")
            if tuple(g.shape) != p.shape:
                raise ValueError(f"{name}.grad: expected shape {p.shape} (the parameter's), "
                                 f"got {tuple(g.shape)}")
            if g.dtype != p.data.dtype or B.backend_of(g).name != B.backend_of(p.data).name:
                raise TypeError(f"{name}.grad: expected dtype {B.dtype_name(p.data)} on "
                                f"{B.backend_of(p.data).label} (the parameter's), got "
                                f"{B.dtype_name(g)} on {B.backend_of(g).label}")

    def step(self) -> None:
        """Apply one update to every parameter from its ``.grad``."""
        self._check_grads()                          # all checked before any is updated
        self.steps += 1
        for name, p in self.named:
            slots = self.state[name]
            for key, value in slots.items():          # follow the parameter (lazy .to)
                slots[key] = _beside(value, p.data)
            p.data = self.update(p.data, p.grad, slots)

    def update(self, theta: Array, g: Array, slots: dict[str, Array]) -> Array:
        """The new value of one parameter θ from its gradient g and its state ``slots`` (updated
        in place)."""
        raise NotImplementedError

    def _slot(self, slots: dict[str, Array], key: str, like: Array, fill: float = 0.0) -> Array:
        if key not in slots:
            xp = B.namespace(like)
            slots[key] = xp.full(like.shape, fill, dtype=like.dtype, device=B.device_of(like))
        return slots[key]

    def to(self, device: Any = None) -> Optimizer:
        """Move all state to ``device`` now (default: each parameter's device)."""
        for name, p in self.named:
            slots = self.state[name]
            for key, value in slots.items():
                if device is None:
                    slots[key] = _beside(value, p.data)
                else:
                    slots[key] = B.get_backend(device).asarray(value, dtype=B.dtype_name(p.data))
        return self

    # ---- checkpoints --------------------------------------------------- #
    def state_dict(self) -> dict[str, Any]:
        """{'type', 'lr', 'hyper', 'steps', 'state': {param name: {slot: array}}}."""
        return {"type": type(self).__name__, "lr": self.lr, "hyper": dict(self.hyper),
                "steps": self.steps,
                "state": {n: dict(slots) for n, slots in self.state.items()}}

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` (arrays of any backend, e.g. from disk).

        Everything is checked before anything changes: the type, the
        hyper-parameters (the constructor's own checks), the step count, and
        each state array's slot name, shape, dtype and finiteness.
        """
        self.apply_state(self.check_state(sd))

    def check_state(self, sd: Mapping[str, Any]) -> CheckedState:
        """The checks of :meth:`load_state_dict`, changing nothing."""
        where = "optimizer state"
        if not isinstance(sd, Mapping):
            raise TypeError(f"{where}: expected a mapping, got {type(sd).__name__}")
        missing = [k for k in ("type", "lr", "hyper", "steps", "state") if k not in sd]
        if missing:
            raise ValueError(f"{where}: expected keys type, lr, hyper, steps, state; missing "
                             f"{missing}")
        if sd["type"] != type(self).__name__:
            raise ValueError(f"{where}: expected type {type(self).__name__}, got "
                             f"{sd['type']!r}")
        hyper = sd["hyper"]
        if not isinstance(hyper, Mapping) or set(hyper) != set(self.hyper):
            got = sorted(hyper) if isinstance(hyper, Mapping) else type(hyper).__name__
            raise ValueError(f"{where}: expected hyper-parameters {sorted(self.hyper)}, got "
                             f"{got}")
        try:           # the constructor's checks, on a throwaway optimizer
            probe = type(self)(self.named, lr=sd["lr"], **hyper)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None
        steps = sd["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"{where}: steps: expected an int >= 0, got {steps!r}")
        if not isinstance(sd["state"], Mapping):
            raise TypeError(f"{where}: state: expected a mapping, got "
                            f"{type(sd['state']).__name__}")
        names = {n for n, _ in self.named}
        stored = set(sd["state"])
        if stored != names:
            raise KeyError(f"{where}: missing {sorted(names - stored)}, unexpected "
                           f"{sorted(stored - names)}")
        params = dict(self.named)
        state: dict[str, dict[str, Array]] = {}
        for name, slots in sd["state"].items():
            p = params[name]
            if not isinstance(slots, Mapping):
                raise TypeError(f"{where}[{name!r}]: expected a mapping of slot -> array, got "
                                f"{type(slots).__name__}")
            restored = {}
            for key, value in slots.items():
                label = f"{where}[{name!r}][{key!r}]"
                if key not in self.slots:
                    raise ValueError(f"{label}: expected a slot of {type(self).__name__} "
                                     f"{list(self.slots)}")
                host = B.to_numpy(value)
                if host.dtype.kind not in "f" or host.dtype.itemsize < 4:
                    raise TypeError(f"{label}: expected a float32/float64 array, got dtype "
                                    f"{host.dtype}")
                if tuple(host.shape) != p.shape:
                    raise ValueError(f"{label}: expected shape {p.shape}, got "
                                     f"{tuple(host.shape)}")
                if not B.all_finite(host):
                    raise ValueError(f"{label}: expected finite values, got NaN or Inf")
                restored[key] = B.backend_of(p.data).asarray(host, dtype=p.data.dtype)
            state[name] = restored
        return CheckedState(state, probe.lr, probe.hyper, steps)

    def apply_state(self, checked: CheckedState) -> None:
        """Take over what :meth:`check_state` returned (cannot fail half way)."""
        self.state = checked.state
        self.lr, self.hyper, self.steps = checked.lr, checked.hyper, checked.steps

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return f"{type(self).__name__}(lr={self.lr}, {args})"


def _beside(value: Array, like: Array) -> Array:
    """``value`` on ``like``'s backend, device and dtype (a no-op when already there)."""
    if (B.backend_of(value).name == B.backend_of(like).name
            and B.device_of(value) == B.device_of(like) and value.dtype == like.dtype):
        return value
    return B.backend_of(like).asarray(value, dtype=like.dtype)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and weight decay."""

    slots = ("momentum_buffer",)

    def __init__(self, params: ParamsLike, lr: float = 1e-2, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"nesterov: needs momentum > 0 and dampening 0, got momentum="
                             f"{momentum}, dampening={dampening}")
        super().__init__(params, lr, momentum=_check_nonneg("momentum", momentum),
                         dampening=_check_nonneg("dampening", dampening),
                         weight_decay=_check_nonneg("weight_decay", weight_decay),
                         nesterov=bool(nesterov))

    def update(self, theta: Array, g: Array, slots: dict[str, Array]) -> Array:
        """SGD's rule (momentum, dampening, Nesterov, weight decay) on one parameter."""
        h = self.hyper
        if h["weight_decay"]:
            g = g + h["weight_decay"] * theta
        if h["momentum"]:
            mu = h["momentum"]
            buf = g if "momentum_buffer" not in slots else \
                mu * slots["momentum_buffer"] + (1.0 - h["dampening"]) * g
            slots["momentum_buffer"] = buf
            g = g + mu * buf if h["nesterov"] else buf
        return theta - self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` is L2 on the gradient."""

    decoupled = False
    slots = ("exp_avg", "exp_avg_sq")

    def __init__(self, params: ParamsLike, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, betas=_check_betas(betas),
                         eps=_check_nonneg("eps", eps),
                         weight_decay=_check_nonneg("weight_decay", weight_decay))

    def update(self, theta: Array, g: Array, slots: dict[str, Array]) -> Array:
        """Adam's rule (bias-corrected moments, weight decay added to g) on one parameter."""
        xp = B.namespace(theta)
        h, t = self.hyper, self.steps
        b1, b2 = h["betas"]
        if h["weight_decay"]:
            if self.decoupled:
                theta = theta * (1.0 - self.lr * h["weight_decay"])
            else:
                g = g + h["weight_decay"] * theta
        m = b1 * self._slot(slots, "exp_avg", theta) + (1.0 - b1) * g
        v = b2 * self._slot(slots, "exp_avg_sq", theta) + (1.0 - b2) * (g * g)
        slots["exp_avg"], slots["exp_avg_sq"] = m, v
        step_size = self.lr / (1.0 - b1 ** t)
        denom = xp.sqrt(v) / math.sqrt(1.0 - b2 ** t) + h["eps"]
        return theta - step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): θ ← θ(1 - ηλ) first."""

    decoupled = True

    def __init__(self, params: ParamsLike, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), the optimizer of min-char-rnn."""

    slots = ("sum",)

    def __init__(self, params: ParamsLike, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10) -> None:
        super().__init__(params, lr, lr_decay=_check_nonneg("lr_decay", lr_decay),
                         weight_decay=_check_nonneg("weight_decay", weight_decay),
                         initial_accumulator_value=_check_nonneg(
                             "initial_accumulator_value", initial_accumulator_value),
                         eps=_check_nonneg("eps", eps))

    def update(self, theta: Array, g: Array, slots: dict[str, Array]) -> Array:
        """Adagrad's rule (accumulated squares, learning-rate decay) on one parameter."""
        xp = B.namespace(theta)
        h = self.hyper
        if h["weight_decay"]:
            g = g + h["weight_decay"] * theta
        clr = self.lr / (1.0 + (self.steps - 1) * h["lr_decay"])
        s = self._slot(slots, "sum", theta, h["initial_accumulator_value"]) + g * g
        slots["sum"] = s
        return theta - clr * (g / (xp.sqrt(s) + h["eps"]))


class RMSprop(Optimizer):
    """RMSprop (Hinton), optionally centered and with momentum."""

    slots = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params: ParamsLike, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        super().__init__(params, lr, alpha=_check_nonneg("alpha", alpha),
                         eps=_check_nonneg("eps", eps),
                         weight_decay=_check_nonneg("weight_decay", weight_decay),
                         momentum=_check_nonneg("momentum", momentum), centered=bool(centered))

    def update(self, theta: Array, g: Array, slots: dict[str, Array]) -> Array:
        """RMSprop's rule (running squares, centered, momentum) on one parameter."""
        xp = B.namespace(theta)
        h = self.hyper
        a = h["alpha"]
        if h["weight_decay"]:
            g = g + h["weight_decay"] * theta
        s = a * self._slot(slots, "square_avg", theta) + (1.0 - a) * (g * g)
        slots["square_avg"] = s
        if h["centered"]:
            mean = a * self._slot(slots, "grad_avg", theta) + (1.0 - a) * g
            slots["grad_avg"] = mean
            s = s - mean * mean
        u = g / (xp.sqrt(s) + h["eps"])
        if h["momentum"]:
            u = h["momentum"] * self._slot(slots, "momentum_buffer", theta) + u
            slots["momentum_buffer"] = u
        return theta - self.lr * u


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD, "adam": Adam, "adamw": AdamW, "adagrad": Adagrad, "rmsprop": RMSprop,
}


def make_optimizer(name: str, params: ParamsLike, lr: float, **kwargs: Any) -> Optimizer:
    """An optimizer by (case-insensitive) name: sgd, adam, adamw, adagrad, rmsprop."""
    cls = OPTIMIZERS.get(name.lower())
    if cls is None:
        raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)}, got {name!r}")
    return cls(params, lr=lr, **kwargs)
