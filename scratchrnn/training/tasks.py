"""What the trainer trains: one class per shape of problem.

A task owns its data and knows how to run one training step on a batch
(forward, loss, backward: gradients accumulate in the model) and how to
evaluate. The :class:`~scratchrnn.training.trainer.Trainer` only loops.

* :class:`LanguageModelTask` -- TBPTT windows; the final state of each window
  is the initial state of the next (as a constant: no gradient flows back
  across the window boundary) and is reset to zero at each epoch start. The
  new state becomes current only in :meth:`Task.commit_step`, which the
  trainer calls once the optimizer step is done, so a step interrupted
  half-way leaves the carried state of the last completed step.
* :class:`ClassificationTask` -- padded token sequences with lengths,
  shuffled per (seed, epoch); evaluation reports loss and accuracy.
* :class:`RegressionTask` -- real-valued series (T, N, I) with targets
  (N, O) or (T, N, O), mean squared error.

Many processes (:mod:`.distributed`): after ``shard(comm)`` a task trains on
rank r's share of each batch -- its streams of the TBPTT window, its part of
the examples -- and returns the mean loss over that share with its size; the
trainer's one Allreduce turns both into the global batch's. Evaluation sums
over every rank's share of the validation data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import backend as B
from ..backend import Array, Backend
from ..data.batching import LMBatches, batch_indices, pad_batch, shard_range
from ..losses import CrossEntropyLoss, MSELoss
from ..nn.module import Module
from .distributed import Communicator, SingleProcess


@dataclass(slots=True)
class StepResult:
    """One training step's mean loss and the number of items it averaged over."""
    loss: float        # the batch's mean loss
    tokens: int        # items the loss averaged over (target tokens, sequences)


def _carry_arrays(state: Any) -> dict[str, Array]:
    """A recurrent state (h_n or (h_n, c_n)) as named arrays for a checkpoint."""
    if state is None:
        return {}
    parts = state if isinstance(state, tuple) else (state,)
    return {f"state{i}": a for i, a in enumerate(parts)}


class Task:
    """Interface: ``batches(epoch)``, ``start_epoch()``, ``train_step``, ``evaluate``."""

    comm: Communicator = SingleProcess()   # the processes that share each batch

    def shard(self, comm: Communicator) -> None:
        """Train on this rank's share of each batch from now on (data parallelism).

        This base version keeps whole batches: every rank computes the same
        gradient, which is right but no faster than one process.
        """
        self.comm = comm

    def batches(self, epoch: int) -> Sequence[Any]:  # pragma: no cover
        """The batches of one epoch, in order."""
        raise NotImplementedError

    def start_epoch(self) -> None:
        """Called before the first batch of every epoch."""

    def commit_step(self) -> None:
        """Called once a step's optimizer update is done: make state that
        :meth:`train_step` computed (e.g. the carried TBPTT state) current."""

    def train_step(self, model: Module, batch: Any) -> StepResult:  # pragma: no cover
        """Forward, loss and backward on one batch (gradients added into ``p.grad``)."""
        raise NotImplementedError

    def evaluate(self, model: Module) -> dict[str, float]:  # pragma: no cover
        """Validation metrics (``val_loss``, and ``val_accuracy`` for a classifier); {} without
        validation data."""
        raise NotImplementedError

    def state_arrays(self) -> dict[str, Array]:
        """Arrays that a checkpoint must keep to resume mid-epoch."""
        return {}

    def check_state_arrays(self, arrays: dict[str, Any]) -> None:
        """Refuse (ValueError) :meth:`state_arrays` saved under a setup the task cannot
        continue from; called before anything is restored."""

    def load_state_arrays(self, arrays: dict[str, Any], backend: Backend) -> None:
        """Restore :meth:`state_arrays`."""


class LanguageModelTask(Task):
    """Next-token prediction with truncated BPTT over a token stream."""

    def __init__(self, train_ids: Sequence[int], val_ids: Sequence[int] | None,
                 batch_size: int, seq_len: int, backend: Any = None,
                 max_val_windows: int | None = None) -> None:
        self.train = LMBatches(train_ids, batch_size, seq_len, backend)
        self.batch_size = batch_size  # all streams (after shard, train has this rank's)
        self.val = None
        if val_ids is not None and len(val_ids) >= 2 * batch_size:
            self.val = LMBatches(val_ids, batch_size, seq_len, backend)
        self.max_val_windows = max_val_windows
        self.loss = CrossEntropyLoss()
        self.state: Any = None        # carried across windows: h_n or (h_n, c_n)
        self.next_state: Any = None   # the running step's h_n, current after commit_step

    def batches(self, epoch: int) -> Sequence[int]:
        """The window indices of one epoch, in order: each stream continues where the last
        window stopped."""
        return range(len(self.train))

    def shard(self, comm: Communicator) -> None:
        """Keep this rank's streams (columns) of every training and validation window."""
        self.comm = comm
        self.train = self.train.shard(comm.rank, comm.size)
        if self.val is not None:
            self.val = self.val.shard(comm.rank, comm.size)

    def start_epoch(self) -> None:
        self.state = self.next_state = None

    def commit_step(self) -> None:
        self.state = self.next_state

    def train_step(self, model: Module, batch: int) -> StepResult:
        """One window: forward from the carried state, cross-entropy, backward; the new state is
        kept for the next window."""
        w = self.train.window(batch)
        logits, self.next_state = model(w.x, self.state)                  # (L, B, V)
        loss = self.loss(logits, w.y)
        model.backward(self.loss.backward())
        return StepResult(B.to_scalar(loss), int(w.y.shape[0] * w.y.shape[1]))

    def evaluate(self, model: Module) -> dict[str, float]:
        """Mean cross-entropy per token over the validation stream (state carried), and
        the next-token accuracy: the share of tokens that are the logits' argmax."""
        if self.val is None:
            return {}
        was_training = model.training
        model.eval()
        total, correct, count, state = 0.0, 0, 0, None
        n = len(self.val) if self.max_val_windows is None else \
            min(len(self.val), self.max_val_windows)
        for i in range(n):
            w = self.val.window(i)
            logits, state = model(w.x, state)                         # (L, B, V)
            xp = B.namespace(logits)
            k = int(w.y.shape[0] * w.y.shape[1])
            total += B.to_scalar(self.loss(logits, w.y)) * k
            hits = xp.argmax(logits, axis=-1) == w.y                   # (L, B)
            correct += int(B.to_scalar(xp.sum(xp.astype(hits, xp.int64))))
            count += k
        model.train(was_training)
        total, correct, count = self.comm.sum_floats([total, correct, count])   # every rank's
        return {"val_loss": total / count, "val_accuracy": correct / count}

    def state_arrays(self) -> dict[str, Array]:
        """The carried state of all B streams (every rank's, joined: a collective)."""
        return {k: self.comm.allgather_concat(a, axis=1)
                for k, a in _carry_arrays(self.state).items()}

    def check_state_arrays(self, arrays: dict[str, Any]) -> None:
        """The carried state (state0[, state1], each (L, batch, H)) must be for this
        task's batch size: it cannot be carried into a different number of streams."""
        batch = self.batch_size
        for k in sorted(k for k in arrays if k.startswith("state")):
            shape = tuple(arrays[k].shape)
            if len(shape) == 3 and shape[1] != batch:
                raise ValueError(f"the carried TBPTT state ({k}, shape {shape}) was saved with "
                                 f"batch size {shape[1]}, the task's batch size is {batch}; "
                                 f"resume with batch_size={shape[1]} (or start a new run)")

    def load_state_arrays(self, arrays: dict[str, Any], backend: Backend) -> None:
        self.check_state_arrays(arrays)
        n = sum(1 for k in arrays if k.startswith("state"))
        lo, hi = shard_range(arrays["state0"].shape[1], self.comm.rank, self.comm.size) \
            if n else (0, 0)
        parts = [backend.asarray(arrays[f"state{i}"][:, lo:hi]) for i in range(n)]
        self.state = None if not parts else parts[0] if len(parts) == 1 else tuple(parts)
        self.next_state = self.state


class ClassificationTask(Task):
    """Variable-length token sequences -> class labels."""

    def __init__(self, train: Sequence[tuple[Sequence[int], int]],
                 val: Sequence[tuple[Sequence[int], int]] | None, batch_size: int,
                 seed: int = 0, pad_id: int = 0, backend: Any = None) -> None:
        self.train_set, self.val_set = list(train), list(val or [])
        self.batch_size, self.seed, self.pad_id = batch_size, seed, pad_id
        self.backend = B.get_backend(backend)
        self.loss = CrossEntropyLoss()

    def batches(self, epoch: int) -> Sequence[list[int]]:
        """The item indices of each batch of one epoch, shuffled by the seed and the epoch."""
        return batch_indices(len(self.train_set), self.batch_size, True, self.seed, epoch)

    def _tensors(self, items: Sequence[tuple[Sequence[int], int]]) -> tuple[Array, ...]:
        ids, lengths = pad_batch([s for s, _ in items], self.pad_id, self.backend)
        labels = self.backend.asarray([int(y) for _, y in items])
        return ids, lengths, labels

    def train_step(self, model: Module, batch: list[int]) -> StepResult:
        """This process's share of one batch, padded: forward with its lengths, cross-entropy,
        backward."""
        lo, hi = shard_range(len(batch), self.comm.rank, self.comm.size)
        batch = batch[lo:hi]                                  # this rank's share
        if not batch:
            return StepResult(0.0, 0)
        ids, lengths, labels = self._tensors([self.train_set[i] for i in batch])
        loss = self.loss(model(ids, lengths), labels)                     # logits (B, C)
        model.backward(self.loss.backward())
        return StepResult(B.to_scalar(loss), len(batch))

    def evaluate(self, model: Module) -> dict[str, float]:
        """Mean loss and accuracy over the validation set."""
        if not self.val_set:
            return {}
        was_training = model.training
        model.eval()
        xp = self.backend.xp
        total, correct = 0.0, 0
        lo, hi = shard_range(len(self.val_set), self.comm.rank, self.comm.size)
        mine = self.val_set[lo:hi]                            # this rank's share
        for start in range(0, len(mine), self.batch_size):
            items = mine[start:start + self.batch_size]
            ids, lengths, labels = self._tensors(items)
            logits = model(ids, lengths)
            total += B.to_scalar(self.loss(logits, labels)) * len(items)
            correct += int(B.to_scalar(xp.sum(xp.astype(xp.argmax(logits, axis=1) == labels,
                                                        xp.int64))))
        model.train(was_training)
        total, correct = self.comm.sum_floats([total, correct])
        n = len(self.val_set)
        return {"val_loss": total / n, "val_accuracy": correct / n}


class RegressionTask(Task):
    """Real-valued series x (T, N, I) -> targets y (N, O) or (T, N, O), MSE."""

    def __init__(self, x: Array, y: Array, x_val: Array | None = None,
                 y_val: Array | None = None, batch_size: int = 32, seed: int = 0) -> None:
        self.x, self.y, self.x_val, self.y_val = x, y, x_val, y_val
        self.batch_size, self.seed = batch_size, seed
        self.loss = MSELoss()

    def _take(self, a: Array, idx: list[int]) -> Array:
        xp = B.namespace(a)
        where = B.backend_of(a).asarray(idx)
        return xp.take(a, where, axis=a.ndim - 2)      # the batch axis: (T, n, ·) or (n, ·)

    def batches(self, epoch: int) -> Sequence[list[int]]:
        """The item indices of each batch of one epoch, shuffled by the seed and the epoch."""
        return batch_indices(self.x.shape[1], self.batch_size, True, self.seed, epoch)

    def train_step(self, model: Module, batch: list[int]) -> StepResult:
        """This process's share of one batch: forward, mean squared error, backward."""
        lo, hi = shard_range(len(batch), self.comm.rank, self.comm.size)
        batch = batch[lo:hi]                                  # this rank's share
        if not batch:
            return StepResult(0.0, 0)
        pred = model(self._take(self.x, batch))
        loss = self.loss(pred, self._take(self.y, batch))
        model.backward(self.loss.backward())
        return StepResult(B.to_scalar(loss), len(batch))

    def evaluate(self, model: Module) -> dict[str, float]:
        """``{'val_loss': ...}`` on the validation set in eval mode; {} without one."""
        if self.x_val is None:
            return {}
        was_training = model.training
        model.eval()
        loss = B.to_scalar(self.loss(model(self.x_val), self.y_val))
        model.train(was_training)
        return {"val_loss": loss}
