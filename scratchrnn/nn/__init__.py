"""Layers: modules with forward and a hand-written backward."""

from .dropout import Dropout
from .embedding import Embedding, one_hot
from .linear import Linear
from .module import Module, Parameter
from .pooling import AttentionPool, LastPool, MeanPool
from .recurrent import GRU, LSTM, RNN, RNNBase

__all__ = ["Module", "Parameter", "RNN", "GRU", "LSTM", "RNNBase",
           "Linear", "Embedding", "one_hot", "Dropout", "LastPool", "MeanPool", "AttentionPool"]
