"""Learning-rate schedules: pure functions of the step number.

A schedule maps the 0-based step t to a learning rate; the trainer sets
``optimizer.lr = schedule(t)`` before each step. Because nothing is stored,
a resumed run gets the same rates as an uninterrupted one.

    Constant      η_t = η
    StepDecay     η_t = η · γ^⌊t / step_size⌋
    Cosine        η_t = η_min + (η - η_min) · (1 + cos(π · min(t, T) / T)) / 2
    BudgetCosine  the same over the time: t / T replaced by (s_t / S − h) / (1 − h), ≥ 0
    LinearWarmup  η_t = inner(t) · min(1, (t + 1) / W)
    Plateau       η_t = max(η_min, η · γ^k_t), k_t = cuts at evaluations before step t

:class:`Plateau` depends on the validation losses as well: the trainer's caller
feeds each evaluation to :meth:`Plateau.observe`, and a resumed run feeds the
history it loaded, so it too gets the same rates as an uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


class Schedule:
    """A learning-rate schedule: ``schedule(step)`` is the rate for that step."""
    def __call__(self, step: int) -> float:  # pragma: no cover
        raise NotImplementedError

    def observe(self, step: int, val_loss: float) -> None:
        """Take the validation loss measured after ``step`` steps (only :class:`Plateau`
        uses it)."""


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{name}: expected a number > 0, got {value!r}")


@dataclass(frozen=True)
class Constant(Schedule):
    """η at every step."""
    lr: float          # η

    def __call__(self, step: int) -> float:
        return self.lr


@dataclass(frozen=True)
class StepDecay(Schedule):
    """η · γ^⌊step / step_size⌋."""
    lr: float          # η, the initial rate
    step_size: int     # steps between decays
    gamma: float = 0.1  # multiplier per decay

    def __post_init__(self) -> None:
        _positive("step_size", self.step_size)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


@dataclass(frozen=True)
class Cosine(Schedule):
    """η_min + (η - η_min) (1 + cos(π min(step, T) / T)) / 2."""
    lr: float            # η at step 0
    total_steps: int     # T: the rate reaches min_lr here and stays there
    min_lr: float = 0.0  # η_min

    def __post_init__(self) -> None:
        _positive("total_steps", self.total_steps)

    def __call__(self, step: int) -> float:
        frac = min(step, self.total_steps) / self.total_steps
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))


@dataclass
class BudgetCosine(Schedule):
    """Cosine over a time budget: the rate reaches ``min_lr`` when the budget is spent.

    η_t = η_min + (η − η_min) · (1 + cos(π · p_t)) / 2,
    p_t = clip((s_t / S − h) / (1 − h), 0, 1),

    with s_t the seconds trained before step t (``clock()``), S the budget and h
    the fraction of it held at the full rate. At a steady pace s_t / S = t / N̂
    with N̂ = t · S / s_t, the number of steps the budget will hold at the speed
    measured so far: this is :class:`Cosine` over that estimate, renewed at every
    step, so a machine that slows down or speeds up mid-run still ends the
    anneal when the time ends. ``clock`` is the trainer's ``run_seconds`` (which
    counts the time before a resume too); tests pass their own.
    """

    lr: float                              # η at the start
    seconds: float                         # S: the time budget
    min_lr: float = 0.0                    # η_min, reached at the end of the budget
    clock: Callable[[], float] | None = None   # seconds trained so far; None: not started
    hold: float = 0.0                      # h: the fraction of S at the full rate

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _positive("seconds", self.seconds)
        if not 0.0 <= self.hold < 1.0:
            raise ValueError(f"hold: expected a fraction in [0, 1), got {self.hold!r}")

    def progress(self) -> float:
        """p_t: how far the anneal has gone, 0 until the hold ends, 1 at the budget."""
        spent = 0.0 if self.clock is None else float(self.clock())
        return min(max((spent / self.seconds - self.hold) / (1.0 - self.hold), 0.0), 1.0)

    def __call__(self, step: int) -> float:
        p = self.progress()
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))


@dataclass(frozen=True)
class LinearWarmup(Schedule):
    """``inner(step) · min(1, (step + 1) / W)``: a linear ramp over the first W steps."""
    inner: Schedule      # the schedule after warm-up
    warmup_steps: int    # W: the rate ramps linearly from inner(0)/W to inner(W)

    def __call__(self, step: int) -> float:
        if self.warmup_steps <= 0:
            return self.inner(step)
        return self.inner(step) * min(1.0, (step + 1) / self.warmup_steps)

    def observe(self, step: int, val_loss: float) -> None:
        self.inner.observe(step, val_loss)


@dataclass
class Plateau(Schedule):
    """Cut the rate when the validation loss stops improving (Keras' ReduceLROnPlateau).

    After an evaluation whose loss is not below ``best · (1 − threshold)`` for
    ``patience`` evaluations in a row, the rate is multiplied by ``factor``
    (and the count starts again). Needs no known length, so it suits a time budget.
    """

    lr: float                  # η, the rate until the first cut
    factor: float = 0.5        # γ, the multiplier per cut
    patience: int = 4          # evaluations without improvement before a cut
    min_lr: float = 0.0        # η_min
    threshold: float = 0.0     # relative improvement that counts
    cuts: list[int] = field(default_factory=list)   # steps after whose evaluation it cut
    best: float = math.inf     # the best validation loss seen
    bad: int = 0               # evaluations since the best (or since the last cut)

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        if not 0 < self.factor < 1:
            raise ValueError(f"factor: expected a number in (0, 1), got {self.factor!r}")
        if not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"patience: expected a positive int, got {self.patience!r}")

    def observe(self, step: int, val_loss: float) -> None:
        """Take the validation loss measured after ``step`` steps."""
        if val_loss < self.best * (1.0 - self.threshold):
            self.best, self.bad = val_loss, 0
            return
        self.bad += 1
        if self.bad >= self.patience:
            self.cuts.append(step)
            self.bad = 0

    def __call__(self, step: int) -> float:
        k = sum(1 for c in self.cuts if c <= step)
        return max(self.min_lr, self.lr * self.factor ** k)


def make_schedule(name: str, lr: float, total_steps: int | None, warmup_steps: int = 0,
                  min_lr: float = 0.0, step_size: int | None = None,
                  gamma: float = 0.1, seconds: float | None = None,
                  clock: Callable[[], float] | None = None, hold: float = 0.0) -> Schedule:
    """'constant' | 'cosine' | 'step' | 'plateau', optionally with linear warm-up.

    'cosine' anneals over ``total_steps``, or, when that is None, over ``seconds``
    of training as read from ``clock``, after ``hold`` of them (:class:`BudgetCosine`).
    """
    if name == "constant":
        inner: Schedule = Constant(lr)
    elif name == "cosine" and total_steps is None:
        if seconds is None:
            raise ValueError("schedule 'cosine': needs total_steps or seconds (a known length)")
        inner = BudgetCosine(lr, seconds, min_lr, clock, hold)
    elif name == "cosine":
        inner = Cosine(lr, max(1, total_steps), min_lr)
    elif name == "step":
        inner = StepDecay(lr, step_size or max(1, (total_steps or 3) // 3), gamma)
    elif name == "plateau":     # floored at η/8: three cuts at most, never a stalled run
        inner = Plateau(lr, min_lr=min_lr or lr / 8)
    else:
        raise ValueError(f"schedule: expected 'constant', 'cosine', 'step' or 'plateau', "
                         f"got {name!r}")
    return LinearWarmup(inner, warmup_steps) if warmup_steps else inner
