"""The files a training run keeps up to date in its output folder.

==================  ===========================================================
``checkpoint.npz``  the latest training state (written by the trainer's save)
``best.npz``        the weights with the best validation loss so far
``metrics.csv``     one row per step, appended and flushed as the run goes:
                    ``step, elapsed_s, train_loss, lr, grad_norm,
                    tokens_per_s, val_loss, val_accuracy`` (the last two
                    empty where the step was not validated; the accuracy
                    of a language model is next-token accuracy)
``history.json``    the whole :class:`History`, rewritten at each evaluation
``loss.png``        the loss curve, redrawn at each evaluation
==================  ===========================================================

Everything except the streamed CSV rows is written atomically
(:mod:`.files`). When a run resumes at step t, rows past t (written by a run
that was killed after its last checkpoint) are dropped, so the CSV always
describes one consistent run.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from .files import atomic_write_text

CHECKPOINT = "checkpoint.npz"
BEST = "best.npz"
METRICS = "metrics.csv"
HISTORY = "history.json"
PLOT = "loss.png"
COLUMNS = ("step", "elapsed_s", "train_loss", "lr", "grad_norm", "tokens_per_s",
           "val_loss", "val_accuracy")
NAMES = (CHECKPOINT, BEST, METRICS, HISTORY, PLOT)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


class MetricsCSV:
    """``metrics.csv``: rows appended and flushed one at a time."""

    def __init__(self, path: str | os.PathLike, keep_until_step: int) -> None:
        """Open ``path``, keeping only the rows with step <= ``keep_until_step``."""
        self.path = Path(path)
        rows: list[list[str]] = []
        if self.path.is_file() and not self.path.is_symlink():
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                if tuple(next(reader, ())) == COLUMNS:
                    for row in reader:
                        try:
                            if len(row) == len(COLUMNS) and int(row[0]) <= keep_until_step:
                                rows.append(row)
                        except ValueError:       # a torn last line
                            continue
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([COLUMNS, *rows])
        atomic_write_text(self.path, buf.getvalue())      # replaces a symlink, never follows
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0))
        self._file = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file, lineterminator="\n")

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (missing columns empty) and flush it."""
        self._writer.writerow([_cell(row.get(k)) for k in COLUMNS])
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def write_history(path: str | os.PathLike, history: Any) -> Path:
    """Write ``history`` as JSON to ``path``, atomically."""
    return atomic_write_text(path, json.dumps(history.to_dict()))


def prepare_plot() -> None:
    """Import matplotlib now, before the first step (see plots.load_matplotlib)."""
    from .plots import load_matplotlib

    load_matplotlib()


def write_plot(path: str | os.PathLike, history: Any, title: str, unit: str) -> Path:
    """Draw ``history``'s loss curve to ``path`` (PNG), atomically."""
    from .plots import plot_history

    return plot_history(history, path, title, unit=unit)
