"""Programs that tests/test_distributed.py runs under ``mpiexec -n N`` (and alone).

    python tests/mpi_worker.py classify OUT      a SequenceClassifier on padded batches
                                                 with lengths; every rank writes
                                                 OUT/rank{r}.npz (weights) and .json
    python tests/mpi_worker.py cli-fault ARGS..  ``scratchrnn train ARGS`` where rank 1
                                                 raises at step 5 (bad data on one rank)
    python tests/mpi_worker.py cli-nan ARGS..    ... where rank 1's loss is NaN at step 5
    python tests/mpi_worker.py uncaught          rank 1 raises outside the CLI at step 3
    python tests/mpi_worker.py killed            rank 1 is killed (SIGKILL) at step 3
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

from scratchrnn import backend as B
from scratchrnn.models import SequenceClassifier
from scratchrnn.training import Adam, make_schedule
from scratchrnn.training.distributed import world
from scratchrnn.training.tasks import ClassificationTask, LanguageModelTask
from scratchrnn.training.trainer import TrainConfig, Trainer


def examples(n: int, seed: int) -> list[tuple[list[int], int]]:
    """n token sequences of length 1..9 over 12 ids; the label is (first + last) mod 3."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        seq = [int(t) for t in rng.integers(1, 12, size=int(rng.integers(1, 10)))]
        out.append((seq, (seq[0] + seq[-1]) % 3))
    return out


def classify(out: Path) -> None:
    """23 examples in batches of 5 (the last has 3: shares of 1 and 2), 3 epochs."""
    comm = world()
    B.manual_seed(0)
    model = SequenceClassifier(3, vocab_size=12, hidden_size=6, cell="gru", embedding_dim=4,
                               pooling="mean", bidirectional=True, dtype="float64")
    task = ClassificationTask(examples(23, 1), examples(11, 2), batch_size=5, seed=3)
    opt = Adam(model.named_parameters(), lr=0.02)
    config = TrainConfig(epochs=3, clip=0.5, eval_every=4, progress=False)
    trainer = Trainer(model, opt, task, config, make_schedule("cosine", 0.02, 15), comm=comm)
    history = trainer.fit()
    np.savez(out / f"rank{comm.rank}.npz",
             **{k: B.to_numpy(v) for k, v in model.state_dict().items()})
    (out / f"rank{comm.rank}.json").write_text(json.dumps(
        {"size": comm.size, "step": trainer.step, "loss": history.loss,
         "grad_norm": history.grad_norm, "val": history.val}))


def cli_fault(argv: list[str], nan: bool) -> int:
    """The CLI, with bad data (an exception or a NaN loss) on rank 1 at step 5."""
    from scratchrnn.cli import main

    train_step = LanguageModelTask.train_step

    def failing(self, model, batch):
        result = train_step(self, model, batch)
        if self.comm.rank == 1 and batch == 4:
            if not nan:
                raise ValueError("bad data on this rank (test)")
            result.loss = float("nan")
        return result

    LanguageModelTask.train_step = failing
    return main(argv)


def lm_trainer(steps: int) -> Trainer:
    B.manual_seed(0)
    from scratchrnn.models import LanguageModel

    text = [int(c) for c in "31415926535897932384626433832795028841971693993751" * 4]
    model = LanguageModel(10, 8, 1, "lstm", dtype="float64")
    task = LanguageModelTask(text[:150], text[150:], batch_size=4, seq_len=7)
    return Trainer(model, Adam(model.named_parameters(), 0.01), task,
                   TrainConfig(max_steps=steps, progress=False))


def fail_at_step_3(how: str) -> None:
    """Rank 1 raises (uncaught) or is killed at step 3; rank 0 would wait forever."""
    trainer = lm_trainer(50)

    def on_step(tr: Trainer) -> None:
        if tr.comm.rank == 1 and tr.step == 3:
            if how == "killed":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("rank 1 fails on purpose (test)")

    trainer.on_step = on_step
    trainer.fit()


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "classify":
        classify(Path(rest[0]))
    elif mode in ("cli-fault", "cli-nan"):
        sys.exit(cli_fault(rest, nan=mode == "cli-nan"))
    else:
        fail_at_step_3(mode)
