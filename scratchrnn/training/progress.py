"""What a run shows while it trains: a progress bar on a terminal, log lines off one.

The bar (tqdm, on stderr) counts steps against the step or epoch budget, or
seconds against a time budget, so it always has a total and a time left.
When stdout is not a terminal (a log file, a pipe), one line every
``log_every`` steps says the same::

    step 200/2000  loss 2.3141  lr 3.00e-03  41,693 tok/s  elapsed 0:10  ETA 1:30
"""

from __future__ import annotations

import sys
import time
from typing import Any


def clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``)."""
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """The bar and the log lines of one :meth:`Trainer.fit` call."""

    def __init__(self, trainer: Any) -> None:
        """``trainer``: the :class:`~.trainer.Trainer` (its step, budget, ETA)."""
        from tqdm.auto import tqdm

        c = trainer.config
        self.trainer = trainer
        show = c.progress if c.progress is not None else sys.stderr.isatty()
        self.lines = c.progress is not False and c.log_every > 0 and not sys.stdout.isatty()
        total = trainer.total_steps()
        self.by_time = total is None and c.max_seconds is not None
        self.start = time.perf_counter()
        if self.by_time:
            self.bar = tqdm(total=round(c.max_seconds), disable=not show, unit="s",
                            dynamic_ncols=True, leave=True,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s "
                                       "[{elapsed}<{remaining}{postfix}]")
        else:
            self.bar = tqdm(total=total, initial=trainer.step if total else 0,
                            disable=not show, unit="step", dynamic_ncols=True, leave=True)

    def step_done(self, loss: float, lr: float, norm: float, tokens_per_s: float) -> None:
        """Advance the bar (or print a line) after one training step."""
        if self.by_time:
            spent = min(time.perf_counter() - self.start, self.bar.total)
            self.bar.update(spent - self.bar.n)
            self.bar.set_postfix(step=self.trainer.step, loss=f"{loss:.3f}", refresh=False)
        else:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", gnorm=f"{norm:.2f}",
                                 tok_s=f"{tokens_per_s:,.0f}", refresh=False)
        tr = self.trainer
        if self.lines and tr.step % tr.config.log_every == 0:
            total, eta = tr.total_steps(), tr.eta_seconds()
            print(f"step {tr.step}" + (f"/{total}" if total else "")
                  + f"  loss {loss:.4f}  lr {lr:.2e}  {tokens_per_s:,.0f} tok/s"
                  + f"  elapsed {clock(tr.run_seconds())}"
                  + ("" if eta is None else f"  ETA {clock(eta)}"), flush=True)

    def close(self) -> Any:
        """Close the progress bar."""
        self.bar.close()
