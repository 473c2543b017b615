"""The single-step functions, for people studying the math.

Each ``*_step_forward`` computes one time step and returns a :class:`StepCache`;
``*_step_backward`` takes the upstream gradient and that cache and returns the
gradients of the step's inputs and parameters. Both check their inputs as the
layers do (one backend, one floating dtype, the shapes below).

Shapes: B batch, I input, H hidden, P = H (or ``proj_size`` for an LSTM with
``params.w_hr``), G gates (1 Elman, 3 GRU, 4 LSTM). Rows are the batch, so
every product is ``x W^T`` (PyTorch's orientation)::

    x (B, I)   h_prev (B, P)   c_prev (B, H)        W_ih (G·H, I)   W_hh (G·H, P)
    b_ih, b_hh (G·H,)          W_hr (P, H)          gate blocks (B, H) each

Every step, every cell::

    xw = x W_ih^T + b_ih        (B, G·H)        hw = h_prev W_hh^T + b_hh   (B, G·H)
    the cell's equations below, on the G blocks of xw and hw

and backward, from the cell's ``da_x`` = ∂L/∂xw and ``da_h`` = ∂L/∂hw (equal
except for the GRU)::

    dx      = da_x W_ih        (B, I)       dW_ih = da_x^T x        (G·H, I)
    dh_prev = da_h W_hh + (the cell's direct term)    (B, P)
    dW_hh   = da_h^T h_prev    (G·H, P)     db_ih = Σ_B da_x,  db_hh = Σ_B da_h  (G·H,)
    with proj_size: dW_hr = dh^T m (P, H), m = o ⊙ tanh(c_t) the state before W_hr

The cells' equations follow, from the modules that compute them
(:mod:`scratchrnn.cells.elman`, :mod:`~scratchrnn.cells.gru`,
:mod:`~scratchrnn.cells.lstm`; the step above is :mod:`scratchrnn.cells.base`).
"""

from .cells import (
    CellParams,
    StepCache,
    elman,
    gru,
    gru_step_backward,
    gru_step_forward,
    lstm,
    lstm_step_backward,
    lstm_step_forward,
    rnn_step_backward,
    rnn_step_forward,
    sigmoid,
)

# The equations are stated once, in the cells' modules; help() shows them here too.
if __doc__ is not None:          # (None under python -OO)
    __doc__ = "\n\n".join([__doc__.rstrip(), *(
        f"{m.__name__}\n{'-' * len(m.__name__)}\n\n{m.__doc__.strip()}"
        for m in (elman, gru, lstm))])

__all__ = [
    "CellParams", "StepCache", "sigmoid",
    "rnn_step_forward", "rnn_step_backward",
    "gru_step_forward", "gru_step_backward",
    "lstm_step_forward", "lstm_step_backward",
]
