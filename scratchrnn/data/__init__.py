"""Text data: vocabularies, batching for TBPTT and padded sequences, data sets."""

from .batching import (
    LMBatches,
    LMWindow,
    batch_indices,
    pad_batch,
    permutation,
    split_stream,
    train_val_split,
)
from .datasets import (
    AG_NEWS_CLASSES,
    default_corpus,
    load_ag_news,
    load_names,
    load_tinyshakespeare,
)
from .vocab import Vocab, words

__all__ = [
    "Vocab", "words", "LMBatches", "LMWindow", "pad_batch", "permutation", "batch_indices",
    "train_val_split", "split_stream", "default_corpus", "load_tinyshakespeare", "load_names",
    "load_ag_news", "AG_NEWS_CLASSES",
]
