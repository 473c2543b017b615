"""Layers: modules with forward and a hand-written backward."""

from .module import Module, Parameter
from .recurrent import GRU, LSTM, RNN, RNNBase

__all__ = ["Module", "Parameter", "RNN", "GRU", "LSTM", "RNNBase"]
