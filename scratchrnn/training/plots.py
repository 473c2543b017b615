"""The loss-curve figure (matplotlib, headless)."""

from __future__ import annotations

import os
from pathlib import Path

from .files import atomic_write
from .history import History


def smooth(values: list[float], beta: float = 0.9) -> list[float]:
    """Bias-corrected exponential moving average (as TensorBoard draws it)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = beta * avg + (1.0 - beta) * v
        out.append(avg / (1.0 - beta ** i))
    return out


def load_matplotlib():
    """``matplotlib.pyplot`` on the headless Agg backend (imported once, up front by a
    run that plots, so a Ctrl-C cannot land inside this slow import mid-run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_loss_figure = None     # the one figure every loss curve of this process is drawn on


def loss_figure():
    """The loss-curve figure (7 x 4.2 in at 110 dpi), cleared: one per process, drawn
    again at every evaluation. A new figure per drawing would allocate a new 1.4 MB
    Agg buffer and leave a reference cycle (figure <-> canvas <-> axes) for the cyclic
    garbage collector, which runs rarely in a long run: dead figures piled up and
    the freed buffers fragmented the heap, so a run's memory grew with its number
    of evaluations. This one figure is not registered with pyplot."""
    global _loss_figure
    if _loss_figure is None:
        load_matplotlib()
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        _loss_figure = Figure(figsize=(7, 4.2), dpi=110)
        FigureCanvasAgg(_loss_figure)
    _loss_figure.clear()
    return _loss_figure


def plot_history(history: History, path: str | os.PathLike, title: str = "",
                 unit: str = "nats/token") -> Path:
    """Training loss (raw and smoothed) and validation loss against the step;
    the y axis is labelled with ``unit`` (nats/char for a character model)."""
    fig = loss_figure()
    ax = fig.subplots()
    ax.plot(history.step, history.loss, color="tab:blue", alpha=0.25, lw=0.8,
            label="training loss")
    ax.plot(history.step, smooth(history.loss), color="tab:blue", lw=1.6,
            label="training loss (smoothed)")
    val = [(v["step"], v["val_loss"]) for v in history.val if "val_loss" in v]
    if val:
        ax.plot([s for s, _ in val], [v for _, v in val], "o-", color="tab:orange", lw=1.6,
                ms=4, label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss ({unit})" if unit else "loss")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Lay out ``fig``, write it to ``path`` atomically (folders created; the
    format from the suffix, PNG without one) and close it (a pyplot figure; the
    shared :func:`loss_figure` is not pyplot's and stays open)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format=fmt))
    finally:
        plt.close(fig)
