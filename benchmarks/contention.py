"""Contention benchmark: training time alone and beside one CPU-bound process.

Two workloads, each trained by the library's Trainer in a fresh process:

* ``news``: the news classifier's three models (``examples/news_classifier.py``:
  embedding 64 → RNN/LSTM-32 → 4 classes, batches of 16 padded AG News items),
  ``--news-steps`` steps each;
* ``lm``: the main job's step (``scratchrnn train``: one-hot characters → LSTM-256
  → linear, batch 32 × 64 characters, Adam, clipping at 5), ``--lm-steps`` steps.

Each runs alone and beside a spinning Python process (``while True: pass``),
under each thread policy:

* ``old``: BLAS's own choice, the earlier default (``SCRATCHRNN_THREADS=off``:
  OpenBLAS's thread per core, spinning while it waits for work);
* ``new``: the default policy (``auto``: as many threads as the cores other
  processes leave free, re-read every second; ``scratchrnn/backend/blas_threads.py``);
* ``one``: ``OPENBLAS_NUM_THREADS=1``, the old workaround (not run by default);
* ``nospin``: BLAS's own thread count, but its idle threads sleep after 2^4 cycles
  instead of spinning for 2^28 (``OPENBLAS_THREAD_TIMEOUT=4``, read by NumPy's
  scipy-openblas when it loads; not run by default).

A process first trains for ``--warmup`` seconds (compiles, caches, and lets ``auto``
take two readings of the load), then times the steps. Rounds rotate the order;
each figure is the median over rounds. It prints, per workload and policy, the time
alone, beside the spinner, and their ratio (target: at most 2.5), and the new
policy's time alone over the old one's (target: at most 1, within noise).

    SCRATCHRNN_DATA=../shared/data python benchmarks/contention.py [--rounds 3]

Without AG News (``$SCRATCHRNN_DATA/ag_news/test.csv``) the news models train on
random items of the same shape (20,000-word vocabulary, 20-60 words).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import blas_env

POLICIES = {
    "old": {"SCRATCHRNN_THREADS": "off"},
    "new": {},
    "one": {"OPENBLAS_NUM_THREADS": "1"},
    "nospin": {"SCRATCHRNN_THREADS": "off", "OPENBLAS_THREAD_TIMEOUT": "4"},
}
CONDITIONS = ("alone", "beside")
SPIN = "while True: pass"


# --------------------------------------------------------------------------- #
# Worker: one workload, one process
# --------------------------------------------------------------------------- #
def without_lengths(inner):
    """The example's variant (b): the classifier reads every padded item to its end."""
    import scratchrnn as S

    class WithoutLengths(S.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, ids, lengths=None):
            return self.inner(ids)

        def backward(self, dlogits):
            return self.inner.backward(dlogits)

    return WithoutLengths()


def news_trainers(steps: int, warm_steps: int) -> list:
    """The news classifier's three models, each with a Trainer for ``steps`` (+ warm-up)."""
    import random

    from scratchrnn import manual_seed
    from scratchrnn.data import Vocab, load_ag_news, train_val_split
    from scratchrnn.models import SequenceClassifier
    from scratchrnn.training import Adam
    from scratchrnn.training.tasks import ClassificationTask
    from scratchrnn.training.trainer import TrainConfig, Trainer

    try:
        rows = load_ag_news()
        train_rows, _ = train_val_split(rows, 0.2, seed=0)
        vocab = Vocab.build_words([t for _, t in train_rows], pad="<pad>")
        items = [(vocab.encode(t), label) for label, t in train_rows]
        vocab_size = len(vocab)
    except (FileNotFoundError, RuntimeError):
        rng = random.Random(0)
        vocab_size = 20000
        items = [([rng.randrange(2, vocab_size) for _ in range(rng.randint(20, 60))],
                  rng.randrange(4)) for _ in range(6000)]
    trainers = []
    for cell, pooling, lengths in (("rnn", "mean", True), ("lstm", "last", False),
                                   ("lstm", "last", True)):
        manual_seed(0)
        model = SequenceClassifier(4, vocab_size=vocab_size, hidden_size=32, cell=cell,
                                   embedding_dim=64, pooling=pooling)
        if not lengths:
            model = without_lengths(model)
        task = ClassificationTask(items, None, 16, seed=0, pad_id=0)
        config = TrainConfig(max_steps=steps + warm_steps, clip=None, progress=False)
        trainers.append(Trainer(model, Adam(model.named_parameters(), lr=1e-3), task, config))
    return trainers


def lm_trainer(steps: int, warm_steps: int):
    """The main job: char LSTM-256 on the embedded corpus, batch 32 × 64."""
    from scratchrnn import manual_seed
    from scratchrnn.data import Vocab, default_corpus, split_stream
    from scratchrnn.models import LanguageModel
    from scratchrnn.training import Adam
    from scratchrnn.training.tasks import LanguageModelTask
    from scratchrnn.training.trainer import TrainConfig, Trainer

    text = default_corpus()
    vocab = Vocab.build_chars(text)
    train_ids, _ = split_stream(vocab.encode(text), 0.05)
    manual_seed(0)
    model = LanguageModel(len(vocab), 256)
    task = LanguageModelTask(train_ids, None, 32, 64)
    config = TrainConfig(max_steps=steps + warm_steps, clip=5.0, progress=False)
    return Trainer(model, Adam(model.named_parameters(), lr=3e-3), task, config)


def worker(workload: str, steps: int, warmup_s: float) -> dict:
    from scratchrnn import backend as B
    from scratchrnn.backend import blas_threads as bt

    cpus = bt._affinity()

    trainers = news_trainers(steps, 0) if workload == "news" else [lm_trainer(steps, 0)]
    # warm-up: a few steps of each model, until warmup_s has passed
    start = time.perf_counter()
    warm = 0
    while warm < 3 or time.perf_counter() - start < warmup_s:
        for tr in trainers:
            tr.config.max_steps = tr.step + 1
            tr.fit()
        warm += 1
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    load0 = bt.read_cpu_sample(cpus)
    for tr in trainers:
        tr.config.max_steps = tr.step + steps
        tr.fit()
    seconds = time.perf_counter() - t0
    load1 = bt.read_cpu_sample(cpus)
    others = bt.others_busy(load0, load1) if load0 and load1 else float("nan")
    return {"seconds": seconds, "cpu_s": time.process_time() - cpu0,
            "threads": B.get_blas_threads(), "policy": str(B.thread_policy().policy),
            "others": round(others, 2)}   # cores' worth other processes used meanwhile


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #
def run_one(workload: str, policy: str, condition: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    for var in ("SCRATCHRNN_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                "GOTO_NUM_THREADS"):
        env.pop(var, None)                 # each policy starts from a clean slate
    env.update(POLICIES[policy])
    steps = args.news_steps if workload == "news" else args.lm_steps
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", workload,
           "--steps", str(steps), "--warmup", str(args.warmup)]
    spinner = None
    if condition == "beside":
        spinner = subprocess.Popen([sys.executable, "-c", SPIN])
        time.sleep(0.5)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              cwd=os.path.dirname(os.path.abspath(__file__)))
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    if proc.returncode != 0:
        print(f"[{workload} {policy} {condition}] failed:\n{proc.stderr[-2000:]}",
              file=sys.stderr)
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_line() -> str:
    try:
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load average unknown"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="news,lm", help="comma list of news, lm")
    ap.add_argument("--policies", default="old,new", help="comma list of " + ",".join(POLICIES))
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per measurement")
    ap.add_argument("--news-steps", type=int, default=200, help="timed steps per news model")
    ap.add_argument("--lm-steps", type=int, default=100, help="timed main-job steps")
    ap.add_argument("--warmup", type=float, default=2.5, help="seconds trained before timing")
    ap.add_argument("--json", default=None, help="also write raw results here")
    ap.add_argument("--openblas-coretype", default="auto", help=blas_env.CHOICES_HELP)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:                        # the parent has set OPENBLAS_CORETYPE for us
        print(json.dumps(worker(args.worker, args.steps, args.warmup)))
        return

    print(blas_env.apply(args.openblas_coretype))
    print(f"{os.cpu_count()} CPUs; before: {load_line()}", flush=True)
    workloads, policies = args.workloads.split(","), args.policies.split(",")
    for p in policies:
        if p not in POLICIES:
            ap.error(f"--policies: expected names from {sorted(POLICIES)}, got {p!r}")
    combos = [(w, p, c) for w in workloads for p in policies for c in CONDITIONS]
    runs: dict[tuple[str, str, str], list[dict]] = {k: [] for k in combos}
    for r in range(args.rounds):
        shift = r % len(combos)
        for key in combos[shift:] + combos[:shift]:
            result = run_one(*key, args)
            if result:
                runs[key].append(result)
                print(f"  round {r + 1} {' '.join(key):20s} {result['seconds']:7.2f} s  "
                      f"threads {result['threads']} at the end  others used "
                      f"{result['others']} cores  "
                      f"({load_line()})", flush=True)

    def med(key: tuple[str, str, str]) -> float:
        times = [x["seconds"] for x in runs[key]]
        return statistics.median(times) if times else float("nan")

    print(f"\nafter: {load_line()}")
    def others(key: tuple[str, str, str]) -> str:
        return "/".join(f"{x['others']:.1f}" for x in runs[key])

    print("\nothers: cores' worth of CPU other processes took during each timed run "
          "(beside: the spinner is 1.0 of it; more means a third party loaded the machine)")
    print("\n| workload | policy | alone s | beside s | beside / alone | alone / old alone "
          "| others alone; beside |")
    print("|---|---|---|---|---|---|---|")
    for w in workloads:
        for p in policies:
            alone, beside = med((w, p, "alone")), med((w, p, "beside"))
            vs_old = alone / med((w, "old", "alone")) if "old" in policies else float("nan")
            spread = " / ".join(f"{x['seconds']:.1f}" for x in runs[(w, p, "beside")])
            print(f"| {w} | {p} | {alone:.2f} | {beside:.2f} ({spread}) | "
                  f"**{beside / alone:.2f}x** | {vs_old:.2f} | {others((w, p, 'alone'))}; "
                  f"{others((w, p, 'beside'))} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({" ".join(k): v for k, v in runs.items()}, f, indent=1)


if __name__ == "__main__":
    main()
