"""
Character-level Shakespeare: a 2-layer GRU learns to spell, one character at a time
===================================================================================

Tiny Shakespeare is lower-cased and split into words and punctuation marks,
joined again by single spaces ("first citizen : before we proceed ..."), and
cut into 100-character windows. Each character enters as a one-hot vector; a
2-layer GRU with 256 hidden units (dropout 0.5 between the layers) and a
linear read-out predict the next character; cross-entropy, Adam (lr 0.002).
The text is laid out as ``--batch-size`` parallel streams, so the hidden state
at the end of one window starts the next (truncated BPTT). Every
``--print-every`` steps it prints the loss and a 100-character sample from the
prompt "thy"; at the end it samples 300 characters from "to" at temperature
0.1 (nearly greedy, repetitive) and 1.0 (varied, more mistakes).

Run it::

    python examples/char_shakespeare.py                    # the lesson (about 10 minutes)
    python examples/char_shakespeare.py --epochs 1 --out runs/shakespeare
    python examples/char_shakespeare.py --device cuda      # with CuPy on a GPU

Data: $SCRATCHRNN_DATA/tinyshakespeare/input.txt (downloaded once if missing).

Full run
--------

The full run (``python examples/char_shakespeare.py``, 3 epochs, 495 steps of
64 windows of 100 characters, 9 min 42 s): validation loss 1.595
nats/char (training 1.52; a uniform guess over the characters: 3.64).

Measured on a shared 2-core x86-64 VM with other jobs running (upper
bounds), 2026-11-23 to 2026-11-30. The page shows a ``--quick`` run made
when the site was built: a few steps, so its numbers are far from these.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import _common

from scratchrnn.data import Vocab, load_tinyshakespeare, split_stream, words
from scratchrnn.models import LanguageModel
from scratchrnn.training import Adam
from scratchrnn.training.plots import plot_history
from scratchrnn.training.sampling import sample
from scratchrnn.training.tasks import LanguageModelTask
from scratchrnn.training.trainer import TrainConfig, Trainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _common.parser(__doc__)
    p.add_argument("--hidden", type=int, default=256, help="GRU hidden units per layer")
    p.add_argument("--layers", type=int, default=2, help="stacked GRU layers")
    p.add_argument("--dropout", type=float, default=0.5, help="dropout between GRU layers")
    p.add_argument("--seq-len", type=int, default=100, help="characters per window")
    p.add_argument("--batch-size", type=int, default=64, help="parallel streams per step")
    p.add_argument("--lr", type=float, default=0.002, help="Adam learning rate")
    p.add_argument("--clip", type=float, default=5.0, help="max gradient norm (0: none)")
    p.add_argument("--epochs", type=int, default=3, help="passes over the training text")
    p.add_argument("--steps", type=int, default=None, help="stop after N steps instead")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="the last part of the text, held out for the validation loss")
    p.add_argument("--print-every", type=int, default=50,
                   help="print the loss and a sample every N steps")
    _common.add_common_flags(p, "char_shakespeare",
                             quick="3 steps of a 64-unit model on 50,000 characters (a smoke test)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    backend, text = _common.start(args, "char_shakespeare.py", load_tinyshakespeare)
    text = " ".join(words(text))          # lower-cased words and punctuation, single spaces
    if args.quick:
        text, args.steps, args.batch_size, args.print_every = text[:50_000], 3, 16, 1
        args.hidden = 64

    vocab = Vocab.build_chars(text)
    train_ids, val_ids = split_stream(vocab.encode(text), args.val_fraction)
    task = LanguageModelTask(train_ids, val_ids, args.batch_size, args.seq_len, backend,
                             max_val_windows=2 if args.quick else None)
    model = LanguageModel(len(vocab), args.hidden, args.layers, cell="gru",
                          embedding_dim=None, dropout=args.dropout, device=backend)
    model.drop.p = 0.0        # the lesson drops out between the GRU layers only, not before
    optimizer = Adam(model.named_parameters(), lr=args.lr)
    config = TrainConfig(max_steps=args.steps, epochs=None if args.steps else args.epochs,
                         clip=args.clip or None, eval_every=args.print_every, progress=False)
    print(f"{len(text):,} characters ({len(vocab)} distinct): {len(train_ids):,} for training "
          f"in {len(task.train)} windows of {args.batch_size}x{args.seq_len}, "
          f"{len(val_ids):,} for validation")
    print(f"model: {model.num_parameters():,} parameters on {backend.label}\n{model}")

    start = time.perf_counter()

    def report(trainer: Trainer, metrics: dict[str, float]) -> None:
        recent = trainer.history.loss[-args.print_every:]
        text = sample(model, vocab, "thy", 100, temperature=1.0, seed=trainer.step)
        print(f"step {trainer.step:5d} (epoch {trainer.epoch + 1}, "
              f"{time.perf_counter() - start:6.0f} s)  train loss {sum(recent) / len(recent):.3f}"
              f"  val loss {metrics['val_loss']:.3f}\n    {text!r}", flush=True)

    trainer = Trainer(model, optimizer, task, config, on_eval=report)
    history = trainer.fit()
    seconds = time.perf_counter() - start

    for temperature in (0.1, 1.0):
        text = sample(model, vocab, "to", 300, temperature=temperature, seed=args.seed)
        print(f"\nsample from 'to' at temperature {temperature}:\n{text}")
    out = Path(args.out)
    png = plot_history(history, out / "char_shakespeare_loss.png",
                       f"{args.layers}-layer GRU {args.hidden} on Tiny Shakespeare")
    last = history.loss[-min(len(history.loss), args.print_every):]
    print(f"\nloss curve: {png}")
    print(f"summary: {trainer.step} steps ({trainer.step * args.batch_size * args.seq_len:,} "
          f"characters) in {seconds:.0f} s on {backend.label}; train loss "
          f"{sum(last) / len(last):.3f}, validation loss {history.val[-1]['val_loss']:.3f} "
          f"nats/char (uniform guess: {math.log(len(vocab)):.3f})")


if __name__ == "__main__":
    main()
