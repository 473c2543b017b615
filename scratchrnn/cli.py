"""The command line: ``scratchrnn train | sample | gradcheck`` (also ``python -m scratchrnn``).

``scratchrnn train`` with no arguments trains a character-level LSTM language
model on the embedded corpus (CPython's help-topic prose) for about two
minutes, printing samples as it goes, and writes a checkpoint, a loss-curve
PNG and a final sample into ``--out``. ``scratchrnn sample CHECKPOINT``
generates text from a checkpoint.

Bad arguments end with a one-line error and exit status 2; errors while
running (a missing file, a diverged run) with one line and status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

DEFAULT_OUT = "scratchrnn-run"
CHECKPOINT = "checkpoint.npz"


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _float_in(low: float, high: float, low_open: bool = False, high_open: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = (value > low if low_open else value >= low) and \
            (value < high if high_open else value <= high)
        if not ok:
            lo, hi = "(" if low_open else "[", ")" if high_open else "]"
            raise argparse.ArgumentTypeError(f"expected a number in {lo}{low}, {high}{hi}, "
                                             f"got {text!r}")
        return value
    return parse


_positive = _float_in(0.0, float("inf"), low_open=True)


def _thread_policy(text: str) -> str | int:
    from .backend.blas_threads import parse_policy

    try:
        return parse_policy(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, off or a positive integer, "
                                         f"got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scratchrnn", description="Recurrent networks from scratch, with "
                     "hand-written backpropagation through time.")
    sub = parser.add_subparsers(dest="command", metavar="{train,sample,gradcheck}",
                                parser_class=_Parser)
    sub.required = True

    t = sub.add_parser("train", help="train a character-level language model",
                       description="Train a character-level language model (default: an LSTM "
                       "on the embedded corpus, about two minutes).")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--text", metavar="FILE", help="train on this UTF-8 text file")
    src.add_argument("--data", choices=("default", "tinyshakespeare"), default=None,
                     help="a named corpus (default: the embedded CPython help prose)")
    t.add_argument("--cell", choices=("rnn", "gru", "lstm"), default="lstm")
    t.add_argument("--hidden", type=_positive_int, default=256, help="hidden units (256)")
    t.add_argument("--layers", type=_positive_int, default=1, help="stacked layers (1)")
    t.add_argument("--embedding", type=int, default=0,
                   help="embedding size; 0 = one-hot characters (0)")
    t.add_argument("--dropout", type=_float_in(0.0, 1.0, high_open=True), default=None,
                   help="dropout on the recurrent output and between layers (0, or 0.2 when "
                   "the budget covers more than 12 passes over the text)")
    t.add_argument("--seq-len", type=_positive_int, default=64, help="TBPTT window (64)")
    t.add_argument("--batch-size", type=_positive_int, default=32, help="parallel streams (32)")
    t.add_argument("--lr", type=_positive, default=3e-3, help="learning rate (3e-3)")
    t.add_argument("--optimizer", choices=("adam", "adamw", "sgd", "adagrad", "rmsprop"),
                   default="adam")
    t.add_argument("--schedule", choices=("constant", "cosine", "step", "plateau"),
                   default=None, help="learning-rate schedule; cosine/step need --steps; "
                   "plateau halves the rate after 4 evaluations without a better validation "
                   "loss (constant, or plateau when the budget covers more than 12 passes)")
    t.add_argument("--warmup", type=int, default=0, help="linear warm-up steps (0)")
    t.add_argument("--clip", type=float, default=5.0,
                   help="max global gradient norm; 0 = no clipping (5)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive_int, help="train this many steps")
    budget.add_argument("--minutes", type=_positive, help="train this long (default 2)")
    t.add_argument("--device", default="cpu", help="cpu | cuda[:N] | strict (cpu)")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=_thread_policy, default=None, metavar="auto|off|N",
                   help="BLAS threads: auto follows the load (as many as the cores other "
                   "processes leave free), N fixes them (bit-identical reruns), off leaves "
                   "BLAS alone (default: $SCRATCHRNN_THREADS, else auto)")
    t.add_argument("--val-fraction", type=_float_in(0.0, 0.5, low_open=True), default=0.05,
                   help="the last part of the text kept for validation (0.05)")
    t.add_argument("--eval-every", type=_positive_int, default=100,
                   help="validate, checkpoint and print a sample every N steps (100)")
    t.add_argument("--sample-length", type=int, default=200, help="characters per sample")
    t.add_argument("--out", default=DEFAULT_OUT, help=f"output folder ({DEFAULT_OUT})")
    t.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue a run from its checkpoint (file or --out folder)")
    t.add_argument("--quiet", action="store_true", help="no progress bar or samples")

    s = sub.add_parser("sample", help="generate text from a checkpoint",
                       description="Generate text from a language-model checkpoint.")
    s.add_argument("checkpoint", help="a checkpoint file (or the --out folder of a run)")
    s.add_argument("--prompt", default="", help="text to start from")
    s.add_argument("--length", type=int, default=500, help="characters to generate (500)")
    s.add_argument("--temperature", type=_float_in(0.0, 100.0), default=0.8,
                   help="0 = greedy (0.8)")
    s.add_argument("--top-k", type=_positive_int, default=None)
    s.add_argument("--top-p", type=_float_in(0.0, 1.0, low_open=True), default=None)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--device", default="cpu")

    sub.add_parser("gradcheck", help="check every hand-written gradient numerically",
                   add_help=False)
    return parser


# --------------------------------------------------------------------------- #
def _checkpoint_path(path: str) -> Path:
    p = Path(path)
    return p / CHECKPOINT if p.is_dir() else p


def _load_text(args: argparse.Namespace) -> tuple[str, str]:
    from .data import default_corpus, load_tinyshakespeare

    if args.text:
        path = Path(args.text)
        if not path.is_file():
            raise FileNotFoundError(f"--text: no file at {path}")
        return path.read_text(encoding="utf-8"), str(path)
    if args.data == "tinyshakespeare":
        return load_tinyshakespeare(), "tinyshakespeare"
    return default_corpus(), "default (CPython help topics)"


def cmd_train(args: argparse.Namespace) -> int:
    from . import backend as B
    from .data import Vocab, split_stream
    from .models import LanguageModel
    from .training import make_optimizer, make_schedule
    from .training.checkpoint import load_checkpoint
    from .training.plots import plot_history
    from .training.sampling import sample
    from .training.tasks import LanguageModelTask
    from .training.trainer import TrainConfig, Trainer

    if args.schedule in ("cosine", "step") and args.steps is None:
        raise ValueError(f"--schedule {args.schedule}: needs --steps (a known length)")
    if args.clip < 0:
        raise ValueError(f"--clip: expected a number >= 0, got {args.clip}")
    backend = B.get_backend(args.device)
    out = Path(args.out)
    ckpt = load_checkpoint(_checkpoint_path(args.resume)) if args.resume else None
    text, source = _load_text(args)
    steps = args.steps
    minutes = args.minutes if args.minutes is not None else (None if steps else 2.0)
    picked = _fill_budget_defaults(args, len(text), steps, minutes)
    if ckpt is not None:
        if ckpt.vocab is None or ckpt.model_kind != "language_model":
            raise ValueError(f"--resume: {ckpt.path} is not a language-model checkpoint")
        vocab = ckpt.vocab
        B.manual_seed(args.seed)
        model = ckpt.build_model(device=backend)
        run = ckpt.info.get("run", {})
        opt_name, lr = run.get("optimizer", args.optimizer), run.get("lr", args.lr)
        seq_len, batch_size = run.get("seq_len", args.seq_len), run.get("batch_size",
                                                                         args.batch_size)
        unseen = sorted(set(text) - set(vocab.itos))
        if unseen and vocab.unk is None:
            raise ValueError(f"--resume: the text has characters the checkpoint's vocabulary "
                             f"lacks ({''.join(unseen[:10])!r}); resume on the same text")
    else:
        vocab = Vocab.build_chars(text)
        B.manual_seed(args.seed)
        model = LanguageModel(len(vocab), args.hidden, args.layers, args.cell,
                              args.embedding or None, args.dropout, dtype=args.dtype,
                              device=backend)
        opt_name, lr, seq_len, batch_size = args.optimizer, args.lr, args.seq_len, \
            args.batch_size
    ids = vocab.encode(text)
    train_ids, val_ids = split_stream(ids, args.val_fraction)
    task = LanguageModelTask(train_ids, val_ids, batch_size, seq_len, backend)
    optimizer = make_optimizer(opt_name, model.named_parameters(), lr)
    schedule = make_schedule(args.schedule, lr, steps or 1, args.warmup)
    config = TrainConfig(max_steps=steps, max_seconds=None if minutes is None else minutes * 60,
                         clip=args.clip or None, eval_every=args.eval_every,
                         checkpoint_every=args.eval_every,
                         checkpoint_path=str(out / CHECKPOINT),
                         progress=False if args.quiet else None)
    info = {"run": {"source": source, "optimizer": opt_name, "lr": lr, "seq_len": seq_len,
                    "batch_size": batch_size}}
    say = _printer(args.quiet)

    def on_eval(tr: Trainer, metrics: dict[str, float]) -> None:
        schedule.observe(tr.step, metrics["val_loss"])      # plateau: cut the rate if stalled
        say(f"step {tr.step}: validation loss {metrics['val_loss']:.4f} nats/char")
        if not args.quiet and args.sample_length > 0:
            text = sample(model, vocab, "", args.sample_length, 0.8, seed=tr.step)
            say("---- sample ----\n" + text.strip("\n") + "\n----------------")

    trainer = Trainer(model, optimizer, task, config, schedule, vocab, on_eval=on_eval,
                      info=info)
    if ckpt is not None:
        trainer.load(ckpt)
        for v in trainer.history.val:                     # plateau: the same rates as before
            schedule.observe(v["step"], v["val_loss"])
        if steps is not None and trainer.step >= steps:
            raise ValueError(f"--steps {steps}: the checkpoint is already at step "
                             f"{trainer.step}")
        say(f"resumed from {ckpt.path} at step {trainer.step}")
    print(f"training a {model.config['cell'].upper()} language model "
          f"({model.num_parameters():,} parameters, {len(vocab)} characters) on {source}: "
          f"{len(train_ids):,} training / {len(val_ids):,} validation characters, "
          + (f"{steps} steps" if steps else f"{minutes:g} minutes") + f", on {backend.label}"
          + (f"\n{picked}" if picked and ckpt is None else ""), flush=True)
    start = time.perf_counter()
    try:
        B.set_thread_policy(args.threads)
        history = trainer.fit()
    except KeyboardInterrupt:
        path = trainer.save(out / CHECKPOINT)
        print(f"\ninterrupted at step {trainer.step}; checkpoint written to {path} "
              f"(continue with --resume {path})", file=sys.stderr)
        return 130
    wall = time.perf_counter() - start
    ck_path = trainer.save(out / CHECKPOINT)
    png = plot_history(history, out / "loss.png", f"{model.config['cell'].upper()} "
                       f"{model.config['hidden_size']} on {source}")
    final = sample(model, vocab, "", max(args.sample_length, 500), 0.8, seed=args.seed)
    (out / "sample.txt").write_text(final, encoding="utf-8")
    (out / "history.json").write_text(json.dumps(history.to_dict()), encoding="utf-8")
    val = history.val[-1]["val_loss"] if history.val else float("nan")
    overall = trainer.step * batch_size * seq_len / max(trainer.elapsed, 1e-9)
    print(f"\nfinished {trainer.step} steps in {wall:.0f} s: validation loss {val:.4f} "
          f"nats/char; {overall:,.0f} tokens/s overall (with validation and samples), "
          f"{_median_rate(history):,.0f} tokens/s in a median training step")
    print("final sample:\n" + final.strip("\n"))
    print(f"\ncheckpoint:  {ck_path}\nloss curve:  {png}\nsample:      {out / 'sample.txt'}")
    print(f"generate more with: scratchrnn sample {ck_path} --prompt 'The '")
    return 0


def _fill_budget_defaults(args: argparse.Namespace, text_chars: int, steps: int | None,
                          minutes: float | None) -> str:
    """--dropout and --schedule, where not given, by the passes the budget will make over the
    text (scratchrnn/training/defaults.py); returns a line saying what was picked."""
    from .training.defaults import budget_defaults

    train_chars = int(text_chars * (1.0 - args.val_fraction))
    picked = budget_defaults(train_chars, args.batch_size, args.seq_len, steps, minutes)
    chosen = []
    if args.dropout is None:
        args.dropout = picked.dropout
        chosen.append(f"dropout {args.dropout:g}")
    if args.schedule is None:
        args.schedule = picked.schedule
        chosen.append(f"{args.schedule} learning rate")
    return (f"defaults for about {picked.passes:.0f} passes over the text: "
            + ", ".join(chosen)) if chosen else ""


def _median_rate(history: Any) -> float:
    """Median tokens/s over the recorded steps (robust to the slow first step)."""
    rates = sorted(history.tokens_per_s)
    return rates[len(rates) // 2] if rates else 0.0


def _printer(quiet: bool):
    def say(message: str) -> None:
        if quiet:
            return
        from tqdm.auto import tqdm

        tqdm.write(message)
    return say


def cmd_sample(args: argparse.Namespace) -> int:
    from . import backend as B
    from .training.checkpoint import load_checkpoint
    from .training.sampling import sample

    ckpt = load_checkpoint(_checkpoint_path(args.checkpoint))
    if ckpt.vocab is None or ckpt.model_kind != "language_model":
        raise ValueError(f"checkpoint {ckpt.path}: not a language model with a vocabulary")
    if args.length < 0:
        raise ValueError(f"--length: expected an integer >= 0, got {args.length}")
    model = ckpt.build_model(device=B.get_backend(args.device))
    print(sample(model, ckpt.vocab, args.prompt, args.length, args.temperature, args.top_k,
                 args.top_p, args.seed))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "gradcheck":
        from . import gradcheck

        return gradcheck.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        return cmd_sample(args)
    except Exception as err:   # one line, no traceback, for every run-time failure
        from .training.trainer import TrainingDiverged

        if os.environ.get("SCRATCHRNN_DEBUG"):
            raise

        kind = "training diverged" if isinstance(err, TrainingDiverged) else "error"
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"scratchrnn {args.command}: {kind}: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
