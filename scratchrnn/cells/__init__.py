"""Cells: the math of one time step, forward and backward, per cell type.

:data:`CELLS` holds every cell under its one name (``rnn_tanh``, ``rnn_relu``,
``gru``, ``lstm``, ``lstm_proj``); the models, the command line, checkpoints
and the examples name cells the same way, through :func:`cell_name`.
"""

from __future__ import annotations

from collections.abc import Iterable

from .base import CellParams, CellSpec, StepCache, sigmoid
from .elman import ELMAN_RELU, ELMAN_TANH, elman_spec, rnn_step_backward, rnn_step_forward
from .gru import GRU_CELL, gru_step_backward, gru_step_forward
from .lstm import LSTM_CELL, LSTM_PROJ_CELL, lstm_step_backward, lstm_step_forward

CELLS = {c.name: c for c in (ELMAN_TANH, ELMAN_RELU, GRU_CELL, LSTM_CELL, LSTM_PROJ_CELL)}

# Older names still accepted as input (the command line, model arguments, the
# configs of old checkpoints); nothing is written under them.
ALIASES = {"rnn": "rnn_tanh"}


def cell_name(name: object, choices: Iterable[str] = tuple(CELLS), what: str = "cell") -> str:
    """The one name of a cell: ``name`` if it is in ``choices`` (default: every
    cell of :data:`CELLS`), or the name its alias stands for (``"rnn"`` ->
    ``"rnn_tanh"``). Anything else is a ValueError naming ``what``."""
    choices = tuple(choices)
    canonical = ALIASES.get(name, name) if isinstance(name, str) else name
    if canonical not in choices:
        aliases = [f"{a!r} for {c!r}" for a, c in ALIASES.items() if c in choices]
        also = f" (or {', '.join(aliases)})" if aliases else ""
        raise ValueError(f"{what}: expected one of {', '.join(map(repr, choices))}{also}, "
                         f"got {name!r}")
    return canonical


DISPLAY_NAMES = {"rnn_tanh": "RNN (tanh)", "rnn_relu": "RNN (ReLU)", "gru": "GRU",
                 "lstm": "LSTM", "lstm_proj": "LSTM (projected)"}


def display_name(name: str, article: bool = False) -> str:
    """How messages and figures write a cell: ``"LSTM"``, ``"RNN (ReLU)"``...; with
    ``article``, the article that goes with the way the letters are read: ``"an LSTM"``
    ("el-es-tee-em"), ``"an RNN (tanh)"``, ``"a GRU"``."""
    shown = DISPLAY_NAMES[cell_name(name)]
    if not article:
        return shown
    return ("an " if shown[0] in "AEFHILMNORSX" else "a ") + shown   # letters read as a vowel


def cell_arg(text: str) -> str:
    """``argparse`` ``type=`` for a cell option: an alias becomes its cell's name
    (:func:`cell_name`); other text is returned as it is, for the option's
    ``choices`` to accept or refuse with argparse's message."""
    try:
        return cell_name(text)
    except ValueError:
        return text


__all__ = [
    "CellParams", "CellSpec", "StepCache", "sigmoid", "CELLS", "ALIASES", "cell_name", "cell_arg",
    "DISPLAY_NAMES", "display_name",
    "ELMAN_TANH", "ELMAN_RELU", "GRU_CELL", "LSTM_CELL", "LSTM_PROJ_CELL", "elman_spec",
    "rnn_step_forward", "rnn_step_backward", "gru_step_forward", "gru_step_backward",
    "lstm_step_forward", "lstm_step_backward",
]
