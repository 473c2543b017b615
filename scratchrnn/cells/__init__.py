"""Cells: the math of one time step, forward and backward, per cell type."""

from .base import CellParams, CellSpec, StepCache, sigmoid
from .elman import ELMAN_RELU, ELMAN_TANH, elman_spec, rnn_step_backward, rnn_step_forward
from .gru import GRU_CELL, gru_step_backward, gru_step_forward
from .lstm import LSTM_CELL, LSTM_PROJ_CELL, lstm_step_backward, lstm_step_forward

CELLS = {c.name: c for c in (ELMAN_TANH, ELMAN_RELU, GRU_CELL, LSTM_CELL, LSTM_PROJ_CELL)}

__all__ = [
    "CellParams", "CellSpec", "StepCache", "sigmoid", "CELLS",
    "ELMAN_TANH", "ELMAN_RELU", "GRU_CELL", "LSTM_CELL", "LSTM_PROJ_CELL", "elman_spec",
    "rnn_step_forward", "rnn_step_backward", "gru_step_forward", "gru_step_backward",
    "lstm_step_forward", "lstm_step_backward",
]
