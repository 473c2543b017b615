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

from ..backend.serialize import load_safetensors, read_safetensors_index, save_safetensors_atomic
from ..data.vocab import Vocab
from ..nn.module import Module
from .checkpoint import _json_type, build_checked_model, check_model_metadata

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
    """Rebuild a model written by :func:`save_safetensors`: (model, vocabulary or None).

    Before anything is built, the metadata is checked (format and version,
    the kind, the config's fields, the vocabulary and its size against
    ``vocab_size``) and the stored tensors' shapes against those the config
    implies, so a small file cannot make it allocate a large model. Every
    error is a ``ValueError`` naming the file and the field.
    """
    index, meta = read_safetensors_index(path)
    where = f"safetensors {path}"
    if meta.get("format") != FORMAT or "model_kind" not in meta:
        raise ValueError(f"{where}: no scratchrnn model metadata (a file of bare "
                         f"weights loads with model.load_state_dict(path))")
    if meta.get("version") != VERSION:
        raise ValueError(f"{where}: format version {meta.get('version')!r:.40} is not "
                         f"supported (this scratchrnn reads version {VERSION!r}; the file "
                         f"was written by another scratchrnn version)")
    config = _json_field(where, meta, "model_config")
    vocab = None
    if "vocab" in meta:
        d = _json_field(where, meta, "vocab")
        if not isinstance(d, dict):
            raise ValueError(f"{where}: vocab: expected a JSON object, got {_json_type(d)}")
        try:
            vocab = Vocab.from_dict(d)
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{where}: {err}") from None
    try:
        check_model_metadata(meta["model_kind"], config,
                             {k: shape for k, (_, shape) in index.items()}, vocab)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    model = build_checked_model(where, meta["model_kind"], config, device=device)
    arrays, _ = load_safetensors(path)
    try:
        model.load_state_dict(arrays)
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{where}: weights do not fit the model ({err})") from None
    return model, vocab


def _json_field(where: str, meta: dict[str, str], key: str) -> Any:
    try:
        return json.loads(meta[key])
    except (json.JSONDecodeError, KeyError) as err:
        what = "missing" if isinstance(err, KeyError) else f"not valid JSON ({err})"
        raise ValueError(f"{where}: {key}: {what}") from None
