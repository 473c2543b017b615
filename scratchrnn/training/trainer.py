"""The training loop, for every model shape (the :mod:`tasks` hold the differences).

One step::

    lr_t = schedule(t);  zero_grad
    loss = task.train_step(model, batch)      forward, loss, backward
    stop if loss is NaN/Inf
    ‖g‖ = clip_grad_norm_(params, clip)       the norm before clipping
    stop if ‖g‖ is NaN/Inf
    optimizer.step();  t ← t + 1

Every ``eval_every`` steps the task evaluates (validation loss, accuracy for
classifiers); every ``checkpoint_every`` steps a checkpoint is written. The
run ends at ``max_steps``, after ``epochs`` passes or after ``max_seconds``.

A non-finite loss or gradient norm stops the run *before* the optimizer step,
raising :class:`TrainingDiverged`; the weights and the last checkpoint on
disk are those of the last good step.

Resuming: a checkpoint written by :meth:`Trainer.save` holds the weights,
the optimizer state, the step, the epoch and the position in it, the carried
TBPTT state, the random generators' states and the history, so
``Trainer.load`` followed by ``fit`` continues exactly (bit for bit) where an
uninterrupted run would be.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import backend as B
from ..backend import Generator
from ..data.vocab import Vocab
from ..nn.module import Module
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .clip import clip_grad_norm_, grad_norm
from .optim import Optimizer
from .schedules import Schedule
from .tasks import Task


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN/Inf."""


@dataclass
class TrainConfig:
    max_steps: int | None = None       # stop after this many optimizer steps
    epochs: int | None = None          # ... or after this many passes over the data
    max_seconds: float | None = None   # ... or after this much wall-clock time
    clip: float | None = 5.0           # max global gradient norm (None: no clipping)
    eval_every: int = 0                # validate every N steps (0: only at the end)
    checkpoint_every: int = 0          # write a checkpoint every N steps (0: never mid-run)
    checkpoint_path: str | None = None  # where (also the end-of-run checkpoint)
    progress: bool | None = None       # progress bar: None = only on a terminal

    def __post_init__(self) -> None:
        if self.max_steps is None and self.epochs is None and self.max_seconds is None:
            raise ValueError("max_steps, epochs, max_seconds: expected at least one budget, "
                             "got none")
        for name in ("max_steps", "epochs"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip: expected a number > 0 or None, got {self.clip!r}")


@dataclass
class History:
    """Everything measured, step by step (plain lists, JSON-ready)."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)   # each with its "step"

    def to_dict(self) -> dict[str, Any]:
        return {k: list(getattr(self, k)) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(**{k: list(d.get(k, [])) for k in cls.__dataclass_fields__})


class Trainer:
    """Loops a :class:`~scratchrnn.training.tasks.Task` under a budget (see module doc)."""

    def __init__(self, model: Module, optimizer: Optimizer, task: Task, config: TrainConfig,
                 schedule: Schedule | None = None, vocab: Vocab | None = None,
                 generators: dict[str, Generator] | None = None,
                 on_eval: Callable[[Trainer, dict[str, float]], None] | None = None,
                 on_step: Callable[[Trainer], None] | None = None,
                 info: dict[str, Any] | None = None) -> None:
        self.model, self.optimizer, self.task, self.config = model, optimizer, task, config
        self.schedule, self.vocab = schedule, vocab
        # generators whose state a checkpoint keeps (the default one always)
        self.generators = dict(generators or {})
        self.on_eval, self.on_step = on_eval, on_step
        self.info = dict(info or {})
        self.step = 0            # optimizer steps taken
        self.epoch = 0           # current pass over the data
        self.position = 0        # next batch within the epoch
        self.history = History()
        self.last_checkpoint: Path | None = None
        self.elapsed = 0.0       # seconds spent in fit(), across resumes

    # ---- the loop ------------------------------------------------------- #
    def _done(self, start: float) -> bool:
        c = self.config
        return ((c.max_steps is not None and self.step >= c.max_steps)
                or (c.epochs is not None and self.epoch >= c.epochs)
                or (c.max_seconds is not None and time.perf_counter() - start >= c.max_seconds))

    def _progress(self) -> Any:
        from tqdm.auto import tqdm

        show = self.config.progress
        if show is None:
            show = sys.stderr.isatty()
        total = self.config.max_steps
        return tqdm(total=total, initial=self.step if total else 0, disable=not show,
                    unit="step", dynamic_ncols=True, leave=True)

    def fit(self) -> History:
        """Train until the budget is spent; returns the history."""
        self.model.train()
        c = self.config
        start = time.perf_counter()
        bar = self._progress()
        try:
            while not self._done(start):
                batches = self.task.batches(self.epoch)
                if self.position == 0:
                    self.task.start_epoch()
                while self.position < len(batches) and not self._done(start):
                    self._one_step(batches[self.position], bar)
                    if c.eval_every and self.step % c.eval_every == 0:
                        self.evaluate()
                    if c.checkpoint_every and c.checkpoint_path and \
                            self.step % c.checkpoint_every == 0:
                        self.save(c.checkpoint_path)
                if self.position >= len(batches):
                    self.epoch, self.position = self.epoch + 1, 0
        finally:
            bar.close()
            self.elapsed += time.perf_counter() - start
        if not self.history.val or self.history.val[-1]["step"] != self.step:
            self.evaluate()
        return self.history

    def _one_step(self, batch: Any, bar: Any) -> None:
        B.adapt_blas_threads()          # BLAS threads follow the machine's load (blas_threads.py)
        t0 = time.perf_counter()
        lr = self.schedule(self.step) if self.schedule is not None else self.optimizer.lr
        self.optimizer.lr = lr
        self.optimizer.zero_grad()
        result = self.task.train_step(self.model, batch)
        if not math.isfinite(result.loss):
            self._diverged(f"the loss is {result.loss}")
        params = self.optimizer.params
        norm = clip_grad_norm_(params, self.config.clip) if self.config.clip \
            else grad_norm(params)
        if not math.isfinite(norm):
            self._diverged(f"the gradient norm is {norm}")
        self.optimizer.step()
        self.step += 1
        self.position += 1
        tps = result.tokens / max(time.perf_counter() - t0, 1e-9)
        h = self.history
        h.step.append(self.step)
        h.loss.append(result.loss)
        h.lr.append(lr)
        h.grad_norm.append(norm)
        h.tokens_per_s.append(tps)
        bar.update(1)
        bar.set_postfix(loss=f"{result.loss:.3f}", lr=f"{lr:.2e}", gnorm=f"{norm:.2f}",
                        tok_s=f"{tps:,.0f}", refresh=False)
        if self.on_step is not None:
            self.on_step(self)

    def _diverged(self, what: str) -> None:
        where = (f"the last good checkpoint is kept at {self.last_checkpoint}"
                 if self.last_checkpoint else "no checkpoint was written")
        raise TrainingDiverged(
            f"training stopped at step {self.step + 1}: {what}; the weights are those after "
            f"step {self.step} and {where}. Try a lower --lr or a smaller --clip.")

    def evaluate(self) -> dict[str, float]:
        metrics = self.task.evaluate(self.model)
        if metrics:
            self.history.val.append({"step": self.step, **metrics})
            if self.on_eval is not None:
                self.on_eval(self, metrics)
        return metrics

    # ---- checkpoints ---------------------------------------------------- #
    def _rngs(self) -> dict[str, Generator]:
        return {"default": B.default_generator(), **self.generators}

    def save(self, path: str | os.PathLike) -> Path:
        info = {**self.info, "trainer": {"epoch": self.epoch, "position": self.position,
                                         "elapsed": self.elapsed},
                "history": self.history.to_dict()}
        self.last_checkpoint = save_checkpoint(
            path, self.model, self.optimizer, vocab=self.vocab, step=self.step,
            rng={k: g.get_state() for k, g in self._rngs().items()}, info=info,
            arrays=self.task.state_arrays())
        return self.last_checkpoint

    def load(self, path: str | os.PathLike | Checkpoint) -> Checkpoint:
        """Restore a checkpoint from :meth:`save` into this trainer (same model shape)."""
        ck = path if isinstance(path, Checkpoint) else load_checkpoint(path)
        try:
            self.model.load_state_dict(ck.weights)
            if ck.optimizer is not None:
                self.optimizer.load_state_dict(ck.optimizer)
        except (KeyError, ValueError) as err:
            raise ValueError(f"checkpoint {ck.path}: does not fit this model/optimizer "
                             f"({err})") from None
        rngs = self._rngs()
        for name, state in ck.rng.items():
            if name in rngs:
                rngs[name].set_state(state)
        t = ck.info.get("trainer", {})
        self.step = ck.step
        self.epoch, self.position = int(t.get("epoch", 0)), int(t.get("position", 0))
        self.elapsed = float(t.get("elapsed", 0.0))
        self.history = History.from_dict(ck.info.get("history", {}))
        self.task.load_state_arrays(ck.arrays, self.model.backend)
        self.last_checkpoint = ck.path
        return ck
