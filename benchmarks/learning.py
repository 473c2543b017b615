"""Learning benchmark: scratchrnn against PyTorch on Tiny Shakespeare.

A 1-layer LSTM with 256 hidden units (one-hot characters in, a linear layer
over the 65 characters out) is trained for a fixed number of steps by both
libraries: same initial weights (PyTorch loads ours), same optimizer (Adam),
same gradient clipping, same TBPTT windows in the same order with the state
carried across them. Both are then scored on the last 10% of the text.

    SCRATCHRNN_DATA=../shared/data python benchmarks/learning.py [--steps 500]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import blas_env

# scratchrnn (and with it numpy) is imported in main(), after blas_env.apply().


def torch_run(ours: Any, train: Any, val: Any, steps: int, lr: float,
              clip: float, threads: int) -> tuple[float, float]:
    """The same model, optimizer and windows in PyTorch; returns (val loss, seconds)."""
    import torch
    import torch.nn.functional as F

    from scratchrnn import backend as B

    torch.set_num_threads(threads)
    V, H = ours.vocab_size, ours.config["hidden_size"]

    class TorchLM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = torch.nn.LSTM(V, H)
            self.head = torch.nn.Linear(H, V)

        def forward(self, ids, state):
            h, state = self.rnn(F.one_hot(ids, V).float(), state)
            return self.head(h), state

    model = TorchLM()
    model.load_state_dict({k: torch.from_numpy(B.to_numpy(v).copy())
                           for k, v in ours.state_dict().items()})
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    windows = [(torch.from_numpy(B.to_numpy(w.x)), torch.from_numpy(B.to_numpy(w.y)))
               for w in train]
    start = time.perf_counter()
    state, step = None, 0
    while step < steps:
        for i, (x, y) in enumerate(windows):
            if step == steps:
                break
            if i == 0:
                state = None                                  # reset per epoch
            logits, state = model(x, state)
            state = tuple(s.detach() for s in state)          # truncated BPTT
            loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            step += 1
    seconds = time.perf_counter() - start
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for w in val:
            x, y = torch.from_numpy(B.to_numpy(w.x)), torch.from_numpy(B.to_numpy(w.y))
            logits, state = model(x, state)
            total += float(F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))) * y.numel()
            count += y.numel()
    return total / count, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2,
                    help="BLAS threads for both libraries (threadpoolctl / torch)")
    ap.add_argument("--data", default=None, help="path to input.txt or its data folder")
    ap.add_argument("--openblas-coretype", default="auto", help=blas_env.CHOICES_HELP)
    args = ap.parse_args()
    print(blas_env.apply(args.openblas_coretype))

    from scratchrnn import backend as B
    from scratchrnn.data import Vocab, load_tinyshakespeare, split_stream
    from scratchrnn.models import LanguageModel
    from scratchrnn.training import Adam
    from scratchrnn.training.tasks import LanguageModelTask
    from scratchrnn.training.trainer import TrainConfig, Trainer

    text = load_tinyshakespeare(args.data, download_ok=False)
    vocab = Vocab.build_chars(text)
    train_ids, val_ids = split_stream(vocab.encode(text), 0.1)
    task = LanguageModelTask(train_ids, val_ids, args.batch_size, args.seq_len)
    model = LanguageModel(len(vocab), args.hidden, 1, "lstm", None,
                          generator=B.Generator(args.seed))
    init = {k: B.to_numpy(v).copy() for k, v in model.state_dict().items()}
    initial = LanguageModel(len(vocab), args.hidden, 1, "lstm", None)
    initial.load_state_dict(init)
    print(f"Tiny Shakespeare: {len(train_ids):,} training / {len(val_ids):,} validation "
          f"characters, vocabulary {len(vocab)}; 1-layer LSTM {args.hidden}, Adam lr "
          f"{args.lr}, clip {args.clip}, batch {args.batch_size} x seq {args.seq_len}, "
          f"{args.steps} steps ({args.steps * args.batch_size * args.seq_len:,} tokens)")
    print(f"validation loss at initialisation: {task.evaluate(model)['val_loss']:.4f}")

    trainer = Trainer(model, Adam(model.named_parameters(), lr=args.lr), task,
                      TrainConfig(max_steps=args.steps, clip=args.clip, progress=False))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                      # then NumPy's BLAS picks its own thread count
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=args.threads):
            trainer.fit()
    else:
        trainer.fit()
    ours_s = trainer.elapsed                # the training loop, without the final validation
    ours_val = trainer.history.val[-1]["val_loss"]
    torch_val, torch_s = torch_run(initial, task.train, task.val, args.steps, args.lr,
                                   args.clip, args.threads)
    print(f"{'library':<12} {'val loss (nats/char)':>22} {'wall clock (s)':>15}")
    print(f"{'scratchrnn':<12} {ours_val:>22.4f} {ours_s:>15.1f}  (training only, BLAS "
          f"threads: {args.threads})")
    print(f"{'pytorch':<12} {torch_val:>22.4f} {torch_s:>15.1f}  (training only, torch "
          f"threads: {args.threads})")


if __name__ == "__main__":
    main()
