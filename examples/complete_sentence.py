"""
Sentence completion toy: a 12-unit RNN memorises three sentences and completes "good"
=====================================================================================

The three sentences "hey how are you", "good i am fine" and "have a nice day" are
padded with spaces to one length and fed as one-hot characters to a 1-layer tanh
RNN with 12 hidden units and a linear read-out over the characters. Trained on
the whole batch of three for 100 epochs (Adam, lr 0.01) to predict each next
character, the network completes "good" greedily to "good i am fine ".

Run it::

    python examples/complete_sentence.py              # seconds
    python examples/complete_sentence.py --epochs 30  # too short: watch it fail

The training loop is written out (forward, loss, backward, step) to show the
whole API in a dozen lines; the other examples use the library's Trainer.

Full run
--------

The full run (``python examples/complete_sentence.py``, 1 s): loss 2.46 at
epoch 10, 0.177 at epoch 100; "good" is completed to "good i am fine "
(seeds 0 to 7 all do).

Measured on a shared 2-core x86-64 VM with other jobs running (upper
bounds), 2026-11-23 to 2026-11-30. The page shows a ``--quick`` run made
when the site was built: a few steps, so its numbers are far from these.
"""

from __future__ import annotations

import argparse
import sys
import time

import _common

import scratchrnn as S
from scratchrnn.data import Vocab, pad_batch
from scratchrnn.models import LanguageModel
from scratchrnn.training import Adam
from scratchrnn.training.sampling import generate

SENTENCES = ("hey how are you", "good i am fine", "have a nice day")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _common.parser(__doc__)
    p.add_argument("--hidden", type=int, default=12, help="hidden units")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    p.add_argument("--epochs", type=int, default=100, help="full-batch training epochs")
    p.add_argument("--prompt", default="good", help="text to complete")
    p.add_argument("--length", type=int, default=15, help="characters in the completion")
    p.add_argument("--print-every", type=int, default=10, help="print the loss every N epochs")
    _common.add_common_flags(p, "complete_sentence", quick="10 epochs (a smoke test)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.quick:
        args.epochs = 10
    backend, _ = _common.start(args, "complete_sentence.py")

    # Data: pad to one length, one id per character, time-major (T, B).
    width = max(len(s) for s in SENTENCES)
    padded = [s.ljust(width) for s in SENTENCES]
    vocab = Vocab.build_chars("".join(padded))
    ids, _ = pad_batch([vocab.encode(s) for s in padded], backend=backend)   # (T+1, 3)
    x, y = ids[:-1, ...], ids[1:, ...]              # input chars, next chars (T, 3)
    print(f"{len(SENTENCES)} sentences of {width} characters, {len(vocab)} distinct characters")

    # Model: one-hot characters -> RNN(12, tanh) -> Linear over the characters.
    model = LanguageModel(len(vocab), hidden_size=args.hidden, num_layers=1, cell="rnn_tanh",
                          embedding_dim=None, device=backend)
    optimizer = Adam(model.named_parameters(), lr=args.lr)
    loss_fn = S.CrossEntropyLoss()
    print(f"model: {model.num_parameters()} parameters\n{model}")

    start = time.perf_counter()
    loss_value = float("nan")
    for epoch in range(1, args.epochs + 1):
        optimizer.zero_grad()
        logits, _ = model(x)                            # (T, 3, V)
        loss = loss_fn(logits, y)                       # mean over the T·3 characters
        model.backward(loss_fn.backward())              # BPTT; gradients accumulate
        optimizer.step()
        loss_value = S.backend.to_scalar(loss)
        if epoch % args.print_every == 0 or epoch == args.epochs:
            print(f"epoch {epoch:4d}/{args.epochs}  loss {loss_value:.4f}")
    seconds = time.perf_counter() - start

    # Greedy completion (temperature 0): the prompt runs once, then one step per character.
    try:
        prompt_ids = vocab.encode(args.prompt)
    except ValueError as err:
        sys.exit(f"complete_sentence.py: --prompt: {err}")
    new = generate(model, prompt_ids, max(args.length - len(args.prompt), 0), temperature=0.0)
    completion = args.prompt + vocab.decode(new)
    print(f"\ncompletion of {args.prompt!r}: {completion!r}")
    print(f"summary: {args.epochs} epochs in {seconds:.2f} s on {backend.label}, "
          f"final loss {loss_value:.4f}, {args.prompt!r} -> {completion!r}")


if __name__ == "__main__":
    main()
