"""Data-parallel speed: tokens/s of the main job's model on 1 and N MPI processes.

The model is ``scratchrnn train``'s default: a character LSTM-256 (one-hot
input) on the embedded corpus, Adam, clipping at 5, 32 streams x 64-step
TBPTT windows, float32. Each run is ``mpiexec -n N python data_parallel.py
--worker`` with one BLAS thread per process (``OPENBLAS_NUM_THREADS=1``), so N
processes use N cores; a 1-process run with N BLAS threads is shown as well,
for what one process gets from the same cores. Rank 0 reports:

* tokens/s: global batch tokens (32 x 64) / median step time (after warm-up),
* the allreduce share: time in the step's gradient exchange (pack the flat
  buffer, Allreduce, unpack) / step time, summed over the measured steps;
* the wait share: time rank 0 waits for the slowest rank before it (a barrier
  timed just before the exchange; on a shared machine, other jobs' load).

A last row is the ceiling for this machine: N independent processes, each
training its own model on B/N streams at the same time, with no exchange at
all. What they lose against N times one process is lost to the cores
sharing caches and memory, not to communication.

With ``--repeat k`` the runs are interleaved k times and each row shows its
fastest run (on a shared machine, the one least disturbed by other jobs).

    python benchmarks/data_parallel.py [--ranks 2] [--steps 80] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import blas_env

HERE = Path(__file__).resolve().parent
WARMUP = 5


def worker(steps: int, alone: bool) -> None:
    from scratchrnn import backend as B
    from scratchrnn.data import Vocab, default_corpus, split_stream
    from scratchrnn.engines import default_engine, select_engine
    from scratchrnn.models import LanguageModel
    from scratchrnn.training import Adam
    from scratchrnn.training.distributed import SingleProcess, world
    from scratchrnn.training.tasks import LanguageModelTask
    from scratchrnn.training.trainer import TrainConfig, Trainer

    comm = world()
    size = comm.size
    if alone:                               # no exchange: every process on its own B/N
        comm = SingleProcess()
    x = B.get_backend("cpu").zeros((64, 32, 1), "float32")
    engine = select_engine(default_engine(), x).name   # what the LSTM runs on
    text = default_corpus()
    vocab = Vocab.build_chars(text)
    train_ids, _ = split_stream(vocab.encode(text), 0.05)
    B.manual_seed(0)
    model = LanguageModel(len(vocab), 256, 1, "lstm", None, 0.0, dtype="float32")
    task = LanguageModelTask(train_ids, None, 32 // size if alone else 32, 64)
    trainer = Trainer(model, Adam(model.named_parameters(), 3e-3), task,
                      TrainConfig(max_steps=steps, clip=5.0, progress=False), comm=comm)
    seconds = {"wait": 0.0, "exchange": 0.0}
    exchange = comm.average_gradients

    def timed(params, loss, count):                  # wait for the slowest, then exchange
        t0 = time.perf_counter()
        comm.barrier()
        t1 = time.perf_counter()
        out = exchange(params, loss, count)
        seconds["wait"] += t1 - t0
        seconds["exchange"] += time.perf_counter() - t1
        return out

    comm.average_gradients = timed
    marks: list[tuple[float, dict]] = []
    trainer.on_step = lambda tr: marks.append((time.perf_counter(), dict(seconds)))
    trainer.fit()
    steps_s = [b[0] - a[0] for a, b in zip(marks[WARMUP:], marks[WARMUP + 1:])]
    median, total = sorted(steps_s)[len(steps_s) // 2], sum(steps_s)
    if world().is_root:
        share = {k: (marks[-1][1][k] - marks[WARMUP][1][k]) / total for k in seconds}
        print(json.dumps({"ranks": size, "tokens_per_s": 32 * 64 / median,
                          "median_step_ms": 1e3 * median, "allreduce_share": share["exchange"],
                          "wait_share": share["wait"], "engine": engine}),
              flush=True)


def run(ranks: int, threads: int, steps: int, alone: bool = False) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PYTHONPATH=str(HERE.parent))
    mpiexec = Path(sys.executable).parent / "mpiexec"
    cmd = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(ranks), sys.executable,
           str(Path(__file__).resolve()), "--worker", "--steps", str(steps)]
    cmd += ["--alone"] if alone else []
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True,
                         timeout=1800).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, default=2, help="processes to compare with 1")
    parser.add_argument("--steps", type=int, default=80, help="steps per run (80)")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds (1)")
    parser.add_argument("--blas", default="auto", help=blas_env.CHOICES_HELP)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--alone", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    line = blas_env.apply(args.blas)
    if args.worker:
        worker(args.steps, args.alone)
        return
    print(line)
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    n = args.ranks
    configs = {"1 x 1": (1, 1, False), f"1 x {n}": (1, n, False), f"{n} x 1": (n, 1, False),
               f"{n} x 1, alone (ceiling)": (n, 1, True)}
    best: dict[str, dict] = {}
    for _ in range(args.repeat):
        for name, (ranks, threads, alone) in configs.items():
            r = run(ranks, threads, args.steps, alone)
            if name not in best or r["tokens_per_s"] > best[name]["tokens_per_s"]:
                best[name] = r
    base = best["1 x 1"]
    print(f"engine: {base['engine']}")
    print(f"{'processes x BLAS threads':>26} {'tokens/s':>10} {'step ms':>8} "
          f"{'allreduce':>10} {'waiting':>8} {'speed-up':>9}")
    for name, r in best.items():
        print(f"{name:>26} {r['tokens_per_s']:>10,.0f} {r['median_step_ms']:>8.1f} "
              f"{100 * r['allreduce_share']:>9.1f}% {100 * r['wait_share']:>7.1f}% "
              f"{r['tokens_per_s'] / base['tokens_per_s']:>8.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
