"""Checkpoints: everything needed to resume a run or sample from a model.

One ``.npz`` file (written atomically by :func:`.files.atomic_write`:
temporary file in the same folder, then ``os.replace``) holds the arrays

    model/<parameter name>          the weights
    optim/<parameter name>/<slot>   the optimizer state (Adam's exp_avg, ...)
    extra/<key>                     anything else (e.g. the carried TBPTT state)

and one JSON document with the format name and version, the model's kind and
config (enough to rebuild it), the optimizer's type and hyper-parameters, the
vocabulary, the random generators' states, the step and free-form extras.
Loading checks the format and version first and names the file in every error.

Saving refuses non-finite weights or optimizer state (:class:`NonFiniteState`)
before anything is written, so a checkpoint on disk is always a usable one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import backend as B
from ..backend.serialize import load_npz, write_npz
from ..data.vocab import Vocab
from ..nn.module import Module
from .files import atomic_write
from .optim import Optimizer

FORMAT = "scratchrnn-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A checkpoint as read from disk (arrays on the host)."""

    path: Path
    model_kind: str                       # registry name, see scratchrnn.models.build_model
    model_config: dict[str, Any]          # the model's constructor arguments
    weights: dict[str, Any]               # parameter name -> host array
    optimizer: dict[str, Any] | None      # Optimizer.state_dict() with host arrays
    vocab: Vocab | None
    step: int
    rng: dict[str, Any] = field(default_factory=dict)     # generator name -> state
    info: dict[str, Any] = field(default_factory=dict)    # free-form JSON (history, args)
    arrays: dict[str, Any] = field(default_factory=dict)  # free-form arrays

    def build_model(self, device: Any = None, dtype: str | None = None) -> Module:
        """Rebuild the model from its config and load the weights."""
        from ..models import build_model

        model = build_model(self.model_kind, self.model_config, device=device, dtype=dtype)
        try:
            model.load_state_dict(self.weights)
        except (KeyError, ValueError) as err:
            raise ValueError(f"checkpoint {self.path}: weights do not fit the model "
                             f"({err})") from None
        return model


class NonFiniteState(ValueError):
    """Weights or optimizer state hold NaN/Inf: not written as a checkpoint."""


def nonfinite_arrays(arrays: dict[str, Any]) -> list[str]:
    """Names of the floating-point arrays in ``arrays`` that hold a NaN or an Inf."""
    bad = []
    for name, a in arrays.items():
        if B.is_array(a) and B.is_floating(a):
            xp = B.namespace(a)
            if not bool(xp.all(xp.isfinite(a))):
                bad.append(name)
    return bad


def save_checkpoint(path: str | os.PathLike, model: Module, optimizer: Optimizer | None = None,
                    *, vocab: Vocab | None = None, step: int = 0,
                    rng: dict[str, Any] | None = None, info: dict[str, Any] | None = None,
                    arrays: dict[str, Any] | None = None,
                    allow_nonfinite: bool = False) -> Path:
    """Write a checkpoint of ``model`` (which must have ``kind`` and ``config``).

    Raises :class:`NonFiniteState` (and writes nothing) when a weight or an
    optimizer-state array holds NaN/Inf, unless ``allow_nonfinite``.
    """
    tensors: dict[str, Any] = {f"model/{k}": v for k, v in model.state_dict().items()}
    opt_meta = None
    if optimizer is not None:
        sd = optimizer.state_dict()
        for pname, slots in sd["state"].items():
            for slot, value in slots.items():
                tensors[f"optim/{pname}/{slot}"] = value
        opt_meta = {k: sd[k] for k in ("type", "lr", "hyper", "steps")}
        opt_meta["params"] = sorted(sd["state"])
    if not allow_nonfinite:
        bad = nonfinite_arrays(tensors)
        if bad:
            shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
            raise NonFiniteState(f"checkpoint {path}: not written, {shown} hold NaN/Inf "
                                 f"(step {step})")
    for k, v in (arrays or {}).items():
        tensors[f"extra/{k}"] = v
    meta = {
        "format": FORMAT, "version": VERSION,
        "model_kind": getattr(model, "kind", type(model).__name__),
        "model_config": dict(getattr(model, "config", {})),
        "optimizer": opt_meta, "vocab": None if vocab is None else vocab.to_dict(),
        "step": int(step), "rng": rng or {}, "info": info or {},
    }
    return atomic_write(path, lambda f: write_npz(f, tensors, meta))


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    arrays, meta = load_npz(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path}: expected format {FORMAT!r}, got "
                         f"{meta.get('format')!r}")
    if meta.get("version") != VERSION:
        raise ValueError(f"checkpoint {path}: expected format version {VERSION}, got "
                         f"{meta.get('version')!r} (written by another scratchrnn version)")
    try:
        weights = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
        extra = {k[6:]: v for k, v in arrays.items() if k.startswith("extra/")}
        optimizer = None
        if meta["optimizer"] is not None:
            state: dict[str, dict[str, Any]] = {p: {} for p in meta["optimizer"]["params"]}
            for k, v in arrays.items():
                if k.startswith("optim/"):
                    pname, _, slot = k[6:].rpartition("/")
                    state[pname][slot] = v
            optimizer = {k: meta["optimizer"][k] for k in ("type", "lr", "hyper", "steps")}
            optimizer["state"] = state
        vocab = None if meta["vocab"] is None else Vocab.from_dict(meta["vocab"])
        return Checkpoint(path, meta["model_kind"], meta["model_config"], weights, optimizer,
                          vocab, int(meta["step"]), meta["rng"], meta["info"], extra)
    except (KeyError, TypeError) as err:
        raise ValueError(f"checkpoint {path}: corrupt metadata (missing {err})") from None
