"""Weights that leave the library: ``.safetensors`` files with PyTorch's names.

A model's ``state_dict()`` already uses PyTorch's parameter names, and the
models name their parts as a PyTorch user would (``embedding``, ``rnn``,
``head``), so an exported LanguageModel loads with ::

    from safetensors.torch import load_file
    torch_model.load_state_dict(load_file("model.safetensors"))

into the equivalent ``torch.nn`` model (``nn.Embedding`` named ``embedding``
when the model has one, ``nn.LSTM``/``nn.GRU``/``nn.RNN`` named ``rnn``,
``nn.Linear`` named ``head``). The file's metadata (strings, as the format
requires) holds what rebuilds the model here:

    format        "scratchrnn-safetensors"
    version       "1"
    model_kind    "language_model" | "classifier" | "regressor"
    model_config  the constructor's arguments, as JSON
    vocab         the vocabulary, as JSON (absent when there is none)

The other way, ``model.load_state_dict("model.safetensors")`` loads weights
written by ``safetensors.torch.save_file(torch_model.state_dict(), path)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..backend.serialize import load_safetensors, save_safetensors_atomic
from ..data.vocab import Vocab
from ..nn.module import Module

FORMAT = "scratchrnn-safetensors"
VERSION = "1"


def save_safetensors(model: Module, path: str | os.PathLike,
                     vocab: Vocab | None = None) -> Path:
    """Write ``model``'s weights (PyTorch's names, the model's dtype) and, in the
    metadata, its kind, config and ``vocab``; atomically. Returns the path."""
    meta = {"format": FORMAT, "version": VERSION,
            "model_kind": str(getattr(model, "kind", type(model).__name__)),
            "model_config": json.dumps(dict(getattr(model, "config", {})), sort_keys=True)}
    if vocab is not None:
        meta["vocab"] = json.dumps(vocab.to_dict())
    return save_safetensors_atomic(path, model.state_dict(), meta)


def load_safetensors_model(path: str | os.PathLike, device: Any = None
                           ) -> tuple[Module, Vocab | None]:
    """Rebuild a model written by :func:`save_safetensors`: (model, vocabulary or None)."""
    from ..models import build_model

    arrays, meta = load_safetensors(path)
    if meta.get("format") != FORMAT or "model_kind" not in meta:
        raise ValueError(f"safetensors {path}: no scratchrnn model metadata (a file of bare "
                         f"weights loads with model.load_state_dict(path))")
    try:
        config = json.loads(meta["model_config"])
        vocab = Vocab.from_dict(json.loads(meta["vocab"])) if "vocab" in meta else None
    except (json.JSONDecodeError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"safetensors {path}: corrupt metadata ({err})") from None
    model = build_model(meta["model_kind"], config, device=device)
    try:
        model.load_state_dict(arrays)
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"safetensors {path}: weights do not fit the model ({err})") from None
    return model, vocab
