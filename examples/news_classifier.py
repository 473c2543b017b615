"""
News classification: three ways to read a padded batch of headlines with an RNN
===============================================================================

The AG News test split (7,600 titles with their descriptions, 4 classes:
World, Sports, Business, Sci/Tech) is split 80/20 into training and
validation items; a word vocabulary is built from the training part. Items
of one batch (16) have different lengths, so they are padded to the longest
and the batch carries a ``lengths`` vector. Three models, each embedding 64 →
recurrent layer with 32 hidden units → linear over the 4 classes:

(a) vanilla tanh RNN, the hidden states *averaged over the valid steps*;
(b) LSTM, the state after the *last padded step* (the lengths are ignored,
    so the model also reads the padding of the shorter items);
(c) LSTM with ``lengths``: each item's state stops at its own last word,
    the equivalent of PyTorch's packed sequences.

It reports each model's validation accuracy, plots the training loss and
validation accuracy per epoch, and prints a few validation headlines with
their true and predicted classes. ``--bidirectional`` and ``--layers``
change all three models.

Run it::

    python examples/news_classifier.py
    python examples/news_classifier.py --bidirectional --layers 2

Data: $SCRATCHRNN_DATA/ag_news/test.csv.

Full run
--------

The full run (``python examples/news_classifier.py``, 5 epochs per model,
1 min 2 s): validation accuracy (a) 0.779, (b) 0.461, (c) 0.764. With
``--bidirectional --layers 2`` (3 min 31 s): (a) 0.784, (b) 0.516, (c) 0.755.

Measured on a shared 2-core x86-64 VM with other jobs running (upper
bounds), 2026-11-23 to 2026-11-30. The page shows a ``--quick`` run made
when the site was built: a few steps, so its numbers are far from these.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import _common

import scratchrnn as S
from scratchrnn.data import AG_NEWS_CLASSES, Vocab, load_ag_news, pad_batch, train_val_split
from scratchrnn.models import SequenceClassifier
from scratchrnn.training import Adam
from scratchrnn.training.plots import save_figure, smooth
from scratchrnn.training.tasks import ClassificationTask
from scratchrnn.training.trainer import History, TrainConfig, Trainer

VARIANTS = {
    "a": ("(a) RNN, mean of the valid steps", "rnn_tanh", "mean", True),
    "b": ("(b) LSTM, last padded step", "lstm", "last", False),
    "c": ("(c) LSTM with lengths (packed)", "lstm", "last", True),
}


class WithoutLengths(S.Module):
    """Runs a classifier as if every padded item were full length (variant b)."""

    def __init__(self, inner: S.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, ids: Any, lengths: Any = None) -> Any:
        return self.inner(ids)                          # the lengths are dropped on purpose

    def backward(self, dlogits: Any) -> Any:
        return self.inner.backward(dlogits)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _common.parser(__doc__)
    p.add_argument("--variants", default="abc", help="which of the models (a) (b) (c) to train")
    p.add_argument("--embedding", type=int, default=64, help="embedding size")
    p.add_argument("--hidden", type=int, default=32, help="hidden units per direction")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    p.add_argument("--bidirectional", action="store_true", help="read both ways")
    p.add_argument("--batch-size", type=int, default=16, help="items per batch")
    p.add_argument("--lr", type=float, default=0.001, help="Adam learning rate")
    p.add_argument("--epochs", type=int, default=5, help="passes over the training items")
    p.add_argument("--val-fraction", type=float, default=0.2, help="items held out")
    p.add_argument("--min-freq", type=int, default=1, help="keep words seen this often")
    p.add_argument("--show", type=int, default=6, help="validation headlines to print")
    _common.add_common_flags(p, "news_classifier",
                             quick="3 steps per model on 400 items (a smoke test)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    backend, rows = _common.start(args, "news_classifier.py", load_ag_news)  # [(label, text)]
    if args.quick:
        rows = rows[::19]                                # 400 items, all four classes
    train_rows, val_rows = train_val_split(rows, args.val_fraction, seed=args.seed)
    vocab = Vocab.build_words([text for _, text in train_rows], min_freq=args.min_freq,
                              pad="<pad>")               # "<pad>" 0, "<unk>" 1, then words
    train = [(vocab.encode(text), label) for label, text in train_rows]
    val = [(vocab.encode(text), label) for label, text in val_rows]
    steps_per_epoch = -(-len(train) // args.batch_size)
    print(f"AG News: {len(train):,} training / {len(val):,} validation items, vocabulary of "
          f"{len(vocab):,} words, {steps_per_epoch} batches of {args.batch_size} per epoch")

    results: dict[str, dict[str, Any]] = {}
    for key in args.variants:
        title, cell, pooling, use_lengths = VARIANTS[key]
        S.manual_seed(args.seed)
        model: S.Module = SequenceClassifier(
            len(AG_NEWS_CLASSES), vocab_size=len(vocab), hidden_size=args.hidden,
            num_layers=args.layers, cell=cell, embedding_dim=args.embedding, pooling=pooling,
            bidirectional=args.bidirectional, device=backend)
        if not use_lengths:
            model = WithoutLengths(model)
        task = ClassificationTask(train, val, args.batch_size, seed=args.seed,
                                  pad_id=vocab.pad_id, backend=backend)
        config = TrainConfig(max_steps=3 if args.quick else None,
                             epochs=None if args.quick else args.epochs, clip=None,
                             eval_every=steps_per_epoch, progress=False)

        def report(trainer: Trainer, metrics: dict[str, float], title: str = title) -> None:
            print(f"  {title}: epoch {trainer.epoch + 1}  validation loss "
                  f"{metrics['val_loss']:.3f}  accuracy {metrics['val_accuracy']:.3f}",
                  flush=True)

        print(f"\n{title}: {model.num_parameters():,} parameters on {backend.label}")
        trainer = Trainer(model, Adam(model.named_parameters(), lr=args.lr), task, config,
                          on_eval=report)
        start = time.perf_counter()
        history = trainer.fit()
        results[key] = {"title": title, "model": model, "history": history,
                        "seconds": time.perf_counter() - start,
                        "accuracy": history.val[-1]["val_accuracy"]}

    best = max(results.values(), key=lambda r: r["accuracy"])
    print(f"\nvalidation headlines, classified by {best['title']}:")
    show = val_rows[:args.show]
    predicted = predict(best["model"], [vocab.encode(text) for _, text in show],
                        vocab.pad_id, backend)
    for (label, text), guess in zip(show, predicted):
        mark = "ok" if guess == label else "  "
        print(f"  {mark} true {AG_NEWS_CLASSES[label]:9s} predicted "
              f"{AG_NEWS_CLASSES[guess]:9s} {text[:70]}")

    png = plot(results, Path(args.out) / "news_classifier.png")
    print(f"\nplot: {png}")
    print("summary: validation accuracy (4 classes, chance 0.25)"
          + ("" if not args.bidirectional else ", bidirectional")
          + (f", {args.layers} layers" if args.layers > 1 else ""))
    for r in results.values():
        print(f"  {r['title']:36s} {r['accuracy']:.3f}  ({r['seconds']:.0f} s)")


def predict(model: S.Module, seqs: list[list[int]], pad_id: int, backend: Any) -> list[int]:
    """Class ids for a list of token-id lists."""
    model.eval()
    ids, lengths = pad_batch(seqs, pad_id, backend)                     # (T, B), (B,)
    logits = model(ids, lengths)                                        # (B, C)
    return [int(c) for c in S.to_numpy(backend.xp.argmax(logits, axis=1))]


def plot(results: dict[str, dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for r in results.values():
        h: History = r["history"]
        left.plot(h.step, smooth(h.loss, 0.98), label=r["title"])
        right.plot(range(1, len(h.val) + 1), [v["val_accuracy"] for v in h.val], "o-",
                   label=r["title"])
    left.set(xlabel="step", ylabel="training loss (smoothed)", title="AG News training loss")
    right.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
