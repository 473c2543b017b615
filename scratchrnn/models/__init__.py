"""Ready models for the three shapes of problem: language model, classifier, regressor."""

from __future__ import annotations

from typing import Any

from ..nn.module import Module
from .classifier import SequenceClassifier
from .language_model import CELLS, LanguageModel, make_rnn, model_cell
from .regressor import SequenceRegressor

MODELS: dict[str, type[Module]] = {
    "language_model": LanguageModel, "classifier": SequenceClassifier,
    "regressor": SequenceRegressor,
}


def build_model(kind: str, config: dict[str, Any], device: Any = None,
                dtype: str | None = None) -> Module:
    """Rebuild a model from its ``kind`` and ``config`` (as stored in a checkpoint)."""
    cls = MODELS.get(kind)
    if cls is None:
        raise ValueError(f"model kind: expected one of {sorted(MODELS)}, got {kind!r}")
    cfg = dict(config)
    if dtype is not None:
        cfg["dtype"] = dtype
    try:
        return cls(**cfg, device=device)
    except TypeError as err:
        raise ValueError(f"model config for {kind!r} does not fit: {err}") from None


__all__ = ["LanguageModel", "SequenceClassifier", "SequenceRegressor", "build_model", "MODELS",
           "CELLS", "make_rnn", "model_cell"]
