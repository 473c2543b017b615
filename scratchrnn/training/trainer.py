"""The training loop, for every model shape (the :mod:`tasks` hold the differences).

One step::

    lr_t = schedule(t);  zero_grad
    loss = task.train_step(model, batch)      forward, loss, backward
    stop if loss is NaN/Inf or > explode_factor x the run's first loss
    (the step's gradients are complete here: a data-parallel all-reduce goes here)
    ‖g‖ = clip_grad_norm_(params, clip)       the norm before clipping
    stop if ‖g‖ is NaN/Inf
    --- commit (Ctrl-C is held until it is done) ---
    optimizer.step();  task.commit_step();  t ← t + 1
    stop if a weight became NaN/Inf

Every ``eval_every`` steps the task evaluates (validation loss, accuracy for
classifiers, next-token accuracy for language models); every ``save_every``
steps a checkpoint is written. The run ends at ``max_steps``, after
``epochs`` passes or after ``max_seconds``.

A non-finite or exploding loss, a non-finite gradient norm or non-finite
weights stop the run, raising :class:`TrainingDiverged`; a checkpoint is
never written with non-finite weights or optimizer state, so the last one on
disk is the last good one. Floating-point warnings of NumPy are silenced
inside the loop: these checks handle the condition.

Interrupts: Ctrl-C (``KeyboardInterrupt``) during the forward/backward part
of a step rolls the random generators back to the step's start; during the
commit it is held until the commit is done. Either way the trainer is left
exactly at the last completed step, so ``save`` then ``load`` + ``fit``
continues bit for bit. An interrupt during validation leaves no validation
entry for that step.

Resuming: a checkpoint written by :meth:`Trainer.save` holds the weights,
the optimizer state, the step, the epoch and the position in it, the carried
TBPTT state, the random generators' states and the history, so
``Trainer.load`` followed by ``fit`` continues exactly (bit for bit) where an
uninterrupted run would be.

Many processes (``mpiexec -n N``, see :mod:`.distributed`): each rank trains
on its share of every batch and one Allreduce per step makes the gradients
(and the loss) those of the global batch, before the checks and clipping;
rank 0 alone writes files, and its checkpoints hold every rank's carried
state and random streams.

Files (``out_dir``; see :mod:`.run_files`): every file the trainer writes
gets its path from :meth:`Trainer._out`, or is written by :meth:`Trainer.save`;
both write nothing when ``writes_files`` is false (the one switch a
data-parallel run turns off on every rank but rank 0).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import backend as B
from ..backend import Generator
from ..data.vocab import Vocab
from ..nn.module import Module
from . import distributed
from . import run_files as files
from .checkpoint import Checkpoint, NonFiniteState, load_checkpoint, save_checkpoint
from .clip import clip_grad_norm_, grad_norm
from .history import History
from .optim import Optimizer
from .progress import Progress
from .schedules import Schedule
from .tasks import Task


class TrainingDiverged(RuntimeError):
    """The loss, the gradients or the weights became NaN/Inf, or the loss exploded."""


@dataclass
class TrainConfig:
    """How long to train, clipping, and when to validate, save and log."""
    max_steps: int | None = None       # stop after this many optimizer steps
    epochs: int | None = None          # ... or after this many passes over the data
    max_seconds: float | None = None   # ... or after this much wall-clock time
    clip: float | None = 5.0           # max global gradient norm (None: no clipping)
    eval_every: int = 0                # validate every N steps (0: only at the end)
    save_every: int = 0                # write a checkpoint every N steps (0: never mid-run)
    checkpoint_path: str | None = None  # where (default with out_dir: out_dir/checkpoint.npz)
    out_dir: str | None = None         # checkpoint, best.npz, metrics.csv, history.json, loss.png
    progress: bool | None = None       # progress bar: None = only on a terminal; False = silent
    log_every: int = 0                 # one progress line per N steps when stdout is no terminal
    explode_factor: float | None = 1e3  # stop when the loss exceeds this x the first loss
    plot_title: str = ""               # loss.png's title
    loss_unit: str = "nats/token"      # loss.png's y unit (nats/char for characters)
    checkpoint_every: int | None = None  # deprecated name of save_every

    def __post_init__(self) -> None:
        if self.checkpoint_every is not None:
            warnings.warn("TrainConfig(checkpoint_every=...) is deprecated; use save_every "
                          "(checkpoint_every names BPTT segment replay on the layers)",
                          DeprecationWarning, stacklevel=3)
            self.save_every, self.checkpoint_every = self.checkpoint_every, None
        if self.max_steps is None and self.epochs is None and self.max_seconds is None:
            raise ValueError("max_steps, epochs, max_seconds: expected at least one budget, "
                             "got none")
        for name in ("max_steps", "epochs"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        for name in ("eval_every", "save_every", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name}: expected an int >= 0, got {v!r}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip: expected a number > 0 or None, got {self.clip!r}")
        if self.explode_factor is not None and not self.explode_factor > 1:
            raise ValueError(f"explode_factor: expected a number > 1 or None, got "
                             f"{self.explode_factor!r}")
        if self.checkpoint_path is None and self.out_dir is not None:
            self.checkpoint_path = str(Path(self.out_dir) / files.CHECKPOINT)


@contextlib.contextmanager
def _hold_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block is done, then raise ``KeyboardInterrupt``.

    Only in the main thread and while Python's default handler is installed
    (a program with its own handler keeps it)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


class Trainer:
    """Loops a :class:`~scratchrnn.training.tasks.Task` under a budget (see module doc)."""

    def __init__(self, model: Module, optimizer: Optimizer, task: Task, config: TrainConfig,
                 schedule: Schedule | None = None, vocab: Vocab | None = None,
                 generators: dict[str, Generator] | None = None,
                 on_eval: Callable[[Trainer, dict[str, float]], None] | None = None,
                 on_step: Callable[[Trainer], None] | None = None,
                 info: dict[str, Any] | None = None,
                 comm: distributed.Communicator | None = None) -> None:
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
        self.tokens_seen = 0     # items trained on (characters, sequences), across resumes
        self.best_val: float | None = None    # best validation loss so far
        self.writes_files = True  # False on data-parallel ranks other than 0
        self._fit_start: float | None = None
        self._fit_steps = 0
        self._row: dict[str, Any] | None = None      # the last step's metrics.csv row
        self._metrics: files.MetricsCSV | None = None
        # data parallelism: shard the task, rank 0's weights everywhere (no-op for one process)
        self.comm = distributed.setup(model, task, self._rngs(), comm)
        self.writes_files = self.comm.is_root

    # ---- the loop ------------------------------------------------------- #
    def _done(self, start: float) -> bool:
        c = self.config
        return ((c.max_steps is not None and self.step >= c.max_steps)
                or (c.epochs is not None and self.epoch >= c.epochs)
                or (c.max_seconds is not None   # every rank stops at the same step
                    and self.comm.any(time.perf_counter() - start >= c.max_seconds)))

    def run_seconds(self) -> float:
        """Seconds spent training in this run, every resumed part together."""
        now = 0.0 if self._fit_start is None else time.perf_counter() - self._fit_start
        return self.elapsed + now

    def total_steps(self) -> int | None:
        """The step at which the step or epoch budget ends (None: time only)."""
        c = self.config
        ends = []
        if c.max_steps is not None:
            ends.append(c.max_steps)
        if c.epochs is not None:
            n = len(self.task.batches(self.epoch))
            ends.append(self.step + (c.epochs - self.epoch) * n - self.position)
        return min(ends) if ends else None

    def eta_seconds(self) -> float | None:
        """Seconds left under the binding budget, from the pace since this process started."""
        c = self.config
        if self._fit_start is None:
            return None
        spent = time.perf_counter() - self._fit_start
        left = []
        total = self.total_steps()
        if total is not None and self._fit_steps:
            left.append((total - self.step) * spent / self._fit_steps)
        if c.max_seconds is not None:
            left.append(c.max_seconds - spent)
        return max(min(left), 0.0) if left else None

    def fit(self) -> History:
        """Train until the budget is spent; returns the history."""
        self.model.train()
        c = self.config
        start = self._fit_start = time.perf_counter()
        self._fit_steps = 0
        progress: Progress | None = None
        try:
            progress = Progress(self)
            self._files_open()
            with B.quiet_float_errors():
                stop = self._done(start)
                while not stop:
                    batches = self.task.batches(self.epoch)
                    if len(batches) == 0:
                        raise ValueError(f"task: no batches in epoch {self.epoch}")
                    if self.position == 0:
                        self.task.start_epoch()
                    epoch = self.epoch
                    while self.epoch == epoch and not stop:
                        self._one_step(batches[self.position], len(batches), progress)
                        stop = self._done(start)
                        if stop or (c.eval_every and self.step % c.eval_every == 0):
                            self.evaluate()     # always after the last step
                        self._flush_row()
                        if c.save_every and c.checkpoint_path and \
                                self.step % c.save_every == 0:
                            self.save(c.checkpoint_path)
                if not self.history.val or self.history.val[-1]["step"] != self.step:
                    self.evaluate()
                    self._flush_row()
        finally:
            self._flush_row()
            if progress is not None:
                progress.close()
            self.elapsed = self.run_seconds()
            self._fit_start = None
            if self._metrics is not None:
                self._metrics.close()
                self._metrics = None
        return self.history

    def _one_step(self, batch: Any, n_batches: int, progress: Progress) -> None:
        B.adapt_blas_threads()          # BLAS threads follow the machine's load (blas_threads.py)
        t0 = time.perf_counter()
        lr = self.schedule(self.step) if self.schedule is not None else self.optimizer.lr
        self.optimizer.lr = lr
        rng_start = {k: g.get_state() for k, g in self._rngs().items()}
        try:
            self.optimizer.zero_grad()
            result = self.task.train_step(self.model, batch)
            # The step's gradients are complete here: with N processes, the global batch's.
            result.loss, result.tokens = self.comm.average_gradients(
                self.optimizer.params, result.loss, result.tokens)
            self._check_loss(result.loss)
            params = self.optimizer.params
            norm = clip_grad_norm_(params, self.config.clip) if self.config.clip \
                else grad_norm(params)
            if not math.isfinite(norm):
                self._diverged(f"the gradient norm is {norm}")
        except BaseException:       # Ctrl-C or a stop: back to the last completed step
            for k, g in self._rngs().items():
                if k in rng_start:
                    g.set_state(rng_start[k])
            raise
        with _hold_interrupt():     # the commit: all of it or none of it
            self.optimizer.step()
            self.task.commit_step()
            self.step += 1
            self.position += 1
            if self.position >= n_batches:
                self.epoch, self.position = self.epoch + 1, 0
            self.tokens_seen += result.tokens
            self._fit_steps += 1
            tps = result.tokens / max(time.perf_counter() - t0, 1e-9)
            h = self.history
            h.step.append(self.step)
            h.loss.append(result.loss)
            h.lr.append(lr)
            h.grad_norm.append(norm)
            h.tokens_per_s.append(tps)
        self._row = {"step": self.step, "elapsed_s": round(self.run_seconds(), 3),
                     "train_loss": result.loss, "lr": lr, "grad_norm": norm,
                     "tokens_per_s": round(tps, 1)}
        self._check_weights()
        progress.step_done(result.loss, lr, norm, tps)
        if self.on_step is not None:
            self.on_step(self)

    def _check_loss(self, loss: float) -> None:
        if not math.isfinite(loss):
            self._diverged(f"the loss is {loss}")
        f = self.config.explode_factor
        first = self.history.loss[0] if self.history.loss else None
        if f is not None and first is not None and first > 0 and loss > f * first:
            self._diverged(f"the loss {loss:.4g} exploded (more than {f:g}x the first "
                           f"step's {first:.4g})")

    def _check_weights(self) -> None:
        bad = [n for n, p in self.model.named_parameters()
               if not bool(B.namespace(p.data).all(B.namespace(p.data).isfinite(p.data)))]
        if bad:
            self._diverged(f"its update made {', '.join(bad[:3])} non-finite", after=True)

    def _diverged(self, what: str, after: bool = False) -> None:
        where = (f"the last good checkpoint is kept at {self.last_checkpoint}"
                 if self.last_checkpoint else "no checkpoint was written")
        if after:
            raise TrainingDiverged(f"training stopped at step {self.step}: {what} (NaN/Inf); "
                                   f"{where}. Try a lower --lr or a smaller --clip.")
        raise TrainingDiverged(
            f"training stopped at step {self.step + 1}: {what}; the weights are those after "
            f"step {self.step} and {where}. Try a lower --lr or a smaller --clip.")

    def evaluate(self) -> dict[str, float]:
        """Validate; record the result, keep the best weights, refresh the files."""
        with B.quiet_float_errors():
            metrics = self.task.evaluate(self.model)
        if metrics:
            self.history.val.append({"step": self.step, **metrics})
            if self._row is not None and self._row["step"] == self.step:
                self._row.update(metrics)
            val = metrics.get("val_loss")
            if val is not None and math.isfinite(val) and \
                    (self.best_val is None or val < self.best_val):
                self._save_best(val)
                self.best_val = val         # only once best.npz holds it
            self._refresh_files()
            if self.on_eval is not None:
                self.on_eval(self, metrics)
        return metrics

    # ---- files (rank 0 only: see writes_files) -------------------------- #
    def _out(self, name: str) -> Path | None:
        d = self.config.out_dir
        return None if d is None or not self.writes_files else Path(d) / name

    def _files_open(self) -> None:
        path = self._out(files.METRICS)
        if path is not None:
            files.prepare_plot()
            self._metrics = files.MetricsCSV(path, keep_until_step=self.step)

    def _flush_row(self) -> None:
        if self._row is not None and self._metrics is not None:
            self._metrics.write(self._row)
        self._row = None

    def _refresh_files(self) -> None:
        """history.json and loss.png, as they stand now."""
        path = self._out(files.HISTORY)
        if path is not None:
            files.write_history(path, self.history)
            files.write_plot(self._out(files.PLOT), self.history, self.config.plot_title,
                             self.config.loss_unit)

    def _save_best(self, val: float) -> None:
        path = self._out(files.BEST)
        if path is not None:
            info = {**self.info, "best": {"step": self.step, "val_loss": val}}
            save_checkpoint(path, self.model, None, vocab=self.vocab, step=self.step, info=info)

    def write_outputs(self) -> None:
        """Write history.json and loss.png now (e.g. after an interrupt)."""
        self._refresh_files()

    # ---- checkpoints ---------------------------------------------------- #
    def _rngs(self) -> dict[str, Generator]:
        return {"default": B.default_generator(), **self.generators}

    def save(self, path: str | os.PathLike) -> Path | None:
        """Write a checkpoint (refused, as :class:`TrainingDiverged`, when a weight or
        the optimizer state is NaN/Inf); nothing, returning None, unless ``writes_files``.
        With N processes every rank calls it (rank 0 gathers the carried states and the
        random streams, and writes)."""
        rng = {k: g.get_state() for k, g in self._rngs().items()}
        ranks, arrays = self.comm.rank_states(rng), self.task.state_arrays()   # collectives
        refused = None
        if self.writes_files:
            info = {**self.info,
                    "trainer": {"epoch": self.epoch, "position": self.position,
                                "elapsed": self.run_seconds(), "tokens_seen": self.tokens_seen,
                                "best_val": self.best_val},
                    "history": self.history.to_dict(), **ranks}
            try:
                self.last_checkpoint = save_checkpoint(
                    path, self.model, self.optimizer, vocab=self.vocab, step=self.step,
                    rng=rng, info=info, arrays=arrays)
            except NonFiniteState as err:
                refused = str(err)
        # no rank goes on before rank 0's file is written, and all stop if it was refused
        if self.comm.any(refused is not None):
            kept = (f"the last good checkpoint is kept at {self.last_checkpoint}"
                    if self.last_checkpoint else "no checkpoint was written")
            raise TrainingDiverged(f"{refused or 'rank 0 refused the checkpoint'}; {kept}")
        return self.last_checkpoint if self.writes_files else None

    def load(self, path: str | os.PathLike | Checkpoint) -> Checkpoint:
        """Restore a checkpoint from :meth:`save` into this trainer (same model shape,
        and for a language model the same batch size as the carried state's).

        All or nothing: the weights, optimizer state, random states, trainer
        fields (``info.trainer``), history and carried state are all checked
        first; on an error (``ValueError`` naming the file and the field)
        nothing in the trainer has changed."""
        ck = path if isinstance(path, Checkpoint) else load_checkpoint(path)
        where = f"checkpoint {ck.path}"
        try:
            self.task.check_state_arrays(ck.arrays)
            resumed = _resumed_fields(ck.info)
            history = History.from_dict(ck.info.get("history", {}), "info.history")
            for name, state in ck.rng.items():
                try:
                    B.check_generator_state(state)
                except ValueError as err:
                    raise ValueError(f"rng[{name!r}]: {err}") from None
            self.comm.check_rank_states(ck.info)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        try:
            weights = self.model.check_state(ck.weights)
            optim = None if ck.optimizer is None else self.optimizer.check_state(ck.optimizer)
        except (KeyError, ValueError, TypeError) as err:
            raise ValueError(f"{where}: does not fit this model/optimizer ({err})") from None
        # ---- everything checked: restore ------------------------------------ #
        self.model.apply_state(weights)
        if optim is not None:
            self.optimizer.apply_state(optim)
        rngs = self._rngs()
        for name, state in ck.rng.items():
            if name in rngs:
                rngs[name].set_state(state)
        self.comm.restore_rank_states(ck.info, rngs)   # each rank's own streams
        self.step = ck.step
        (self.epoch, self.position, self.elapsed, self.tokens_seen,
         self.best_val) = resumed
        self.history = history
        self.task.load_state_arrays(ck.arrays, self.model.backend)
        self.last_checkpoint = ck.path
        return ck


def _resumed_fields(info: dict[str, Any]) -> tuple[int, int, float, int, float | None]:
    """(epoch, position, elapsed, tokens_seen, best_val) from ``info["trainer"]`` as
    :meth:`Trainer.save` writes it; ``ValueError`` naming the field otherwise."""
    t = info.get("trainer", {})
    if not isinstance(t, dict):
        raise ValueError(f"info.trainer: expected a JSON object, got {t!r:.60}")

    def count(key: str) -> int:
        v = t.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"info.trainer.{key}: expected an int >= 0, got {v!r:.60}")
        return v

    def number(key: str, default: float | None, low: float) -> float | None:
        v = t.get(key, default)
        if v is None and default is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or v < low:
            raise ValueError(f"info.trainer.{key}: expected a finite number"
                             f"{' >= 0' if low == 0 else ''}, got {v!r:.60}")
        return float(v)

    return (count("epoch"), count("position"), number("elapsed", 0.0, 0.0),
            count("tokens_seen"), number("best_val", None, -math.inf))
