"""The single-step functions, for people studying the math.

Each ``*_step_forward`` computes one time step and returns a cache;
``*_step_backward`` takes the upstream gradient and that cache and returns
the gradients of the step's inputs and parameters. Their docstrings (and the
modules in :mod:`scratchrnn.cells`) give the equations.
"""

from .cells import (
    CellParams,
    gru_step_backward,
    gru_step_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_step_backward,
    rnn_step_forward,
    sigmoid,
)

__all__ = [
    "CellParams", "sigmoid",
    "rnn_step_forward", "rnn_step_backward",
    "gru_step_forward", "gru_step_backward",
    "lstm_step_forward", "lstm_step_backward",
]
