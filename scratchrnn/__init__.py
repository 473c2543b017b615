"""scratchrnn: recurrent neural networks from scratch, with BPTT written out by hand."""

# _interrupt first: in the `scratchrnn` command, Ctrl-C while the package imports exits 130
from . import _interrupt, backend, data, functional, losses, models, training
from .backend import get_backend, manual_seed, to_numpy
from .data import Vocab
from .losses import CrossEntropyLoss, MSELoss
from .models import LanguageModel, SequenceClassifier, SequenceRegressor
from .nn import (
    GRU,
    LSTM,
    RNN,
    AttentionPool,
    Dropout,
    Embedding,
    LastPool,
    Linear,
    MeanPool,
    Module,
    Parameter,
)
from .training import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    RMSprop,
    Trainer,
    clip_grad_norm_,
    clip_grad_value_,
    load_checkpoint,
    sample,
    save_checkpoint,
)

_interrupt.imports_done()

__version__ = "0.1.0"

__all__ = [
    "backend", "functional", "get_backend", "manual_seed", "to_numpy",
    "Module", "Parameter", "RNN", "GRU", "LSTM",
    "losses", "Linear", "Embedding", "Dropout", "LastPool", "MeanPool", "AttentionPool",
    "CrossEntropyLoss", "MSELoss",
    "data", "models", "training", "Vocab", "LanguageModel", "SequenceClassifier",
    "SequenceRegressor", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "clip_grad_norm_",
    "clip_grad_value_", "Trainer", "save_checkpoint", "load_checkpoint", "sample",
]
