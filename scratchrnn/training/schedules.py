"""Learning-rate schedules: pure functions of the step number.

A schedule maps the 0-based step t to a learning rate; the trainer sets
``optimizer.lr = schedule(t)`` before each step. Because nothing is stored,
a resumed run gets the same rates as an uninterrupted one.

    Constant      η_t = η
    StepDecay     η_t = η · γ^⌊t / step_size⌋
    Cosine        η_t = η_min + (η - η_min) · (1 + cos(π · min(t, T) / T)) / 2
    LinearWarmup  η_t = inner(t) · min(1, (t + 1) / W)
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class Schedule:
    def __call__(self, step: int) -> float:  # pragma: no cover
        raise NotImplementedError


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{name}: expected a number > 0, got {value!r}")


@dataclass(frozen=True)
class Constant(Schedule):
    lr: float          # η

    def __call__(self, step: int) -> float:
        return self.lr


@dataclass(frozen=True)
class StepDecay(Schedule):
    lr: float          # η, the initial rate
    step_size: int     # steps between decays
    gamma: float = 0.1  # multiplier per decay

    def __post_init__(self) -> None:
        _positive("step_size", self.step_size)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


@dataclass(frozen=True)
class Cosine(Schedule):
    lr: float            # η at step 0
    total_steps: int     # T: the rate reaches min_lr here and stays there
    min_lr: float = 0.0  # η_min

    def __post_init__(self) -> None:
        _positive("total_steps", self.total_steps)

    def __call__(self, step: int) -> float:
        frac = min(step, self.total_steps) / self.total_steps
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))


@dataclass(frozen=True)
class LinearWarmup(Schedule):
    inner: Schedule      # the schedule after warm-up
    warmup_steps: int    # W: the rate ramps linearly from inner(0)/W to inner(W)

    def __call__(self, step: int) -> float:
        if self.warmup_steps <= 0:
            return self.inner(step)
        return self.inner(step) * min(1.0, (step + 1) / self.warmup_steps)


def make_schedule(name: str, lr: float, total_steps: int, warmup_steps: int = 0,
                  min_lr: float = 0.0, step_size: int | None = None,
                  gamma: float = 0.1) -> Schedule:
    """'constant' | 'cosine' | 'step', optionally with linear warm-up."""
    if name == "constant":
        inner: Schedule = Constant(lr)
    elif name == "cosine":
        inner = Cosine(lr, max(1, total_steps), min_lr)
    elif name == "step":
        inner = StepDecay(lr, step_size or max(1, total_steps // 3), gamma)
    else:
        raise ValueError(f"schedule: expected 'constant', 'cosine' or 'step', got {name!r}")
    return LinearWarmup(inner, warmup_steps) if warmup_steps else inner
