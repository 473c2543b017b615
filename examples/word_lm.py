"""
Word-level language model: a 64-unit tanh RNN predicts the next word
====================================================================

The text is split into lower-cased words and punctuation marks; the
vocabulary lists them by descending frequency (id 0 is the unknown word).
Training windows are 20 words long, 16 parallel streams per batch, with the
hidden state carried from one window to the next (truncated BPTT). Each
word id is looked up in a 64-dimensional embedding, fed to a single-layer
vanilla (tanh) RNN with 64 units and a linear read-out over the vocabulary;
cross-entropy, Adam (lr 0.01), gradients clipped to a global norm of 5.
Afterwards it writes 25 words after the prompt "I can", each drawn at random
from the 5 most likely next words (top-k sampling), and saves the loss curve.

Run it::

    python examples/word_lm.py                        # Tiny Shakespeare's words
    python examples/word_lm.py --text my_book.txt     # any UTF-8 text file

Data: $SCRATCHRNN_DATA/tinyshakespeare/input.txt (downloaded once if missing).

Full run
--------

The full run (``python examples/word_lm.py``, 1 epoch, 740 steps, 1 min 11 s):
validation loss 5.79, perplexity 328 over 11,467 words. Three epochs bring
the training loss to 4.91 but the validation loss up to 6.02: it overfits.

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

from scratchrnn.cells import cell_arg, display_name
from scratchrnn.data import Vocab, load_tinyshakespeare, split_stream
from scratchrnn.models import CELLS, LanguageModel
from scratchrnn.training import Adam
from scratchrnn.training.plots import plot_history
from scratchrnn.training.sampling import sample
from scratchrnn.training.tasks import LanguageModelTask
from scratchrnn.training.trainer import TrainConfig, Trainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _common.parser(__doc__)
    p.add_argument("--text", metavar="FILE", default=None,
                   help="train on this UTF-8 text file (default: Tiny Shakespeare)")
    p.add_argument("--seq-len", type=int, default=20, help="words per window")
    p.add_argument("--batch-size", type=int, default=16, help="parallel streams per step")
    p.add_argument("--embedding", type=int, default=64, help="embedding size")
    p.add_argument("--hidden", type=int, default=64, help="RNN hidden units")
    p.add_argument("--cell", type=cell_arg, choices=tuple(CELLS), default="rnn_tanh",
                   help="recurrent cell (the lesson: vanilla tanh RNN; 'rnn' is an alias of "
                   "rnn_tanh)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    p.add_argument("--clip", type=float, default=5.0, help="max global gradient norm")
    p.add_argument("--epochs", type=int, default=1,
                   help="passes over the training words (at lr 0.01 the validation loss "
                   "rises again from the second)")
    p.add_argument("--steps", type=int, default=None, help="stop after N steps instead")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="the last part of the text, held out for the validation loss")
    p.add_argument("--prompt", default="I can", help="words to continue")
    p.add_argument("--length", type=int, default=25, help="words to generate")
    p.add_argument("--top-k", type=int, default=5, help="sample among the k likeliest words")
    p.add_argument("--print-every", type=int, default=200, help="print the loss every N steps")
    _common.add_common_flags(p, "word_lm", quick="5 steps on 20,000 words (smoke test)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    source = "Tiny Shakespeare" if args.text is None else args.text
    backend, text = _common.start(args, "word_lm.py", load_tinyshakespeare if args.text is None
                                  else lambda: Path(args.text).read_text(encoding="utf-8"))

    vocab = Vocab.build_words(text)                    # by frequency; "<unk>" is id 0
    ids = vocab.encode(text)
    if args.quick:
        ids, args.steps, args.print_every = ids[:20_000], 5, 1
    train_ids, val_ids = split_stream(ids, args.val_fraction)
    task = LanguageModelTask(train_ids, val_ids, args.batch_size, args.seq_len, backend)
    model = LanguageModel(len(vocab), args.hidden, 1, cell=args.cell,
                          embedding_dim=args.embedding, device=backend)
    optimizer = Adam(model.named_parameters(), lr=args.lr)
    config = TrainConfig(max_steps=args.steps, epochs=None if args.steps else args.epochs,
                         clip=args.clip or None, eval_every=len(task.train), progress=False)
    print(f"{source}: {len(ids):,} words, vocabulary of {len(vocab):,} "
          f"(most frequent: {' '.join(vocab.itos[1:11])}); {len(train_ids):,} words for "
          f"training in {len(task.train)} windows of {args.batch_size}x{args.seq_len}, "
          f"{len(val_ids):,} for validation")
    print(f"model: {model.num_parameters():,} parameters on {backend.label}\n{model}")

    start = time.perf_counter()

    def report(trainer: Trainer) -> None:
        if trainer.step % args.print_every == 0:
            recent = trainer.history.loss[-args.print_every:]
            print(f"step {trainer.step:5d} (epoch {trainer.epoch + 1}, "
                  f"{time.perf_counter() - start:5.0f} s)  loss {sum(recent) / len(recent):.3f}",
                  flush=True)

    def validated(trainer: Trainer, metrics: dict[str, float]) -> None:
        print(f"  validation loss {metrics['val_loss']:.3f} "
              f"(perplexity {math.exp(metrics['val_loss']):.0f})", flush=True)

    trainer = Trainer(model, optimizer, task, config, on_step=report, on_eval=validated)
    history = trainer.fit()                            # validates after every epoch
    seconds = time.perf_counter() - start

    text = sample(model, vocab, args.prompt, args.length, temperature=1.0,
                  top_k=args.top_k, seed=args.seed)
    print(f"\n{text}")
    png = plot_history(history, Path(args.out) / "word_lm_loss.png",
                       f"word-level {display_name(args.cell)} {args.hidden} on {source}")
    val = history.val[-1]["val_loss"]
    last = history.loss[-min(len(history.loss), args.print_every):]
    print(f"\nloss curve: {png}")
    print(f"summary: {trainer.step} steps in {seconds:.0f} s on {backend.label}; train loss "
          f"{sum(last) / len(last):.3f}, validation loss {val:.3f} (perplexity "
          f"{math.exp(val):.0f}; a uniform guess over the vocabulary: {len(vocab):,})")


if __name__ == "__main__":
    main()
