"""Before/after: one layer's training step timed from two source trees, side by side.

For a change that must not alter speed (a refactor), each round runs the same
step (forward over T + backward of ``output.sum()``, the default engine) in a
fresh process from each tree, alternating which goes first, and the table
reports the median times and their ratio (after / before; below 1 is faster).
Shapes are those of ``layers.py``.

    python benchmarks/compare_trees.py --before ../old-checkout --after . \\
        [--cells lstm,gru] [--shapes small,mid,large] [--rounds 5] [--threads 2]
        [--clock cpu --threads 1]      # process CPU time: steadier when others load the machine
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from layers import GATES, SHAPES

_WORKER = r"""
import json, sys, time
import numpy as np
import scratchrnn as sr
cell, T, B, I, H, dtype, repeats, clock = sys.argv[1:]
now = time.process_time if clock == "cpu" else time.perf_counter
T, B, I, H, repeats = int(T), int(B), int(I), int(H), int(repeats)
cls = {"rnn_tanh": sr.RNN, "gru": sr.GRU, "lstm": sr.LSTM}[cell]
model = cls(I, H, dtype=dtype)
x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
d_out = np.ones((T, B, H), dtype=dtype)
def step():
    model.zero_grad()
    model(x)
    model.backward(d_out)
for _ in range(2):
    step()
times = []
for _ in range(repeats):
    t0 = now(); step(); times.append(now() - t0)
print(json.dumps(min(times)))
"""


def run(tree: Path, cell: str, shape: str, dtype: str, repeats: int, threads: int,
        clock: str, extra_env: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()), OPENBLAS_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads))
    env.update(item.split("=", 1) for item in extra_env)
    T, B, I, H = SHAPES[shape]
    out = subprocess.run([sys.executable, "-c", _WORKER, cell, str(T), str(B), str(I), str(H),
                          dtype, str(repeats), clock], env=env, capture_output=True, text=True,
                         check=True, cwd=tree)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, type=Path)
    ap.add_argument("--after", default=Path("."), type=Path)
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--shapes", default="small,mid,large")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per process (min)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--env-before", action="append", default=[], metavar="NAME=VALUE",
                    help="environment for the before tree (e.g. SCRATCHRNN_FAST=0)")
    ap.add_argument("--env-after", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="cpu: process CPU time, steadier on a busy machine (use --threads 1)")
    args = ap.parse_args(argv)
    print(f"# {args.rounds} rounds, {args.threads} threads, {args.dtype}, {args.clock} clock; "
          f"load before: "
          f"{os.getloadavg()[0]:.2f}")
    print("| cell | shape | before ms | after ms | after / before |")
    print("|---|---|---|---|---|")
    from scratchrnn.cells import cell_name

    for cell in (cell_name(c, GATES, "--cells") for c in args.cells.split(",")):
        for shape in args.shapes.split(","):
            times: dict[str, list[float]] = {"before": [], "after": []}
            for r in range(args.rounds):
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for which in order:
                    tree = args.before if which == "before" else args.after
                    env = args.env_before if which == "before" else args.env_after
                    times[which].append(run(tree, cell, shape, args.dtype, args.repeats,
                                            args.threads, args.clock, env))
            b, a = statistics.median(times["before"]), statistics.median(times["after"])
            print(f"| {cell} | {shape} | {b * 1e3:.1f} | {a * 1e3:.1f} | {a / b:.2f} |",
                  flush=True)
    print(f"# load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
