"""scratchrnn: recurrent neural networks from scratch, with BPTT written out by hand."""

from . import backend, functional
from .backend import get_backend, manual_seed, to_numpy
from .nn import GRU, LSTM, RNN, Module, Parameter

__version__ = "0.1.0"

__all__ = [
    "backend", "functional", "get_backend", "manual_seed", "to_numpy",
    "Module", "Parameter", "RNN", "GRU", "LSTM",
]
