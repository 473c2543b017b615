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

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import backend as B
from ..backend.serialize import read_npz_arrays, read_npz_index, write_npz
from ..cells import CELLS, cell_name
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
        try:                  # the shapes first: a config must not allocate what the file lacks
            check_model_metadata(self.model_kind, self.model_config,
                                 {k: tuple(v.shape) for k, v in self.weights.items()},
                                 self.vocab)
        except ValueError as err:
            raise ValueError(f"checkpoint {self.path}: {err}") from None
        model = build_checked_model(f"checkpoint {self.path}", self.model_kind,
                                    self.model_config, device=device, dtype=dtype)
        try:
            model.load_state_dict(self.weights)
        except (KeyError, ValueError, TypeError) as err:
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


# --------------------------------------------------------------------------- #
# Loading: everything is checked against the file and the config before any
# array is read or any model is built.
# --------------------------------------------------------------------------- #
def _count(config: dict[str, Any], key: str, optional: bool = False) -> int | None:
    value = config.get(key)
    if optional and not value:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"model_config[{key!r}]: expected a positive int, got {value!r}")
    return value


def _rnn_shapes(config: dict[str, Any], input_size: int, bidirectional: bool
                ) -> dict[str, tuple[int, ...]]:
    from ..models import CELLS as MODEL_CELLS

    cell = cell_name(config.get("cell"), MODEL_CELLS, "model_config['cell']")
    H, L = _count(config, "hidden_size"), _count(config, "num_layers")
    D, GH = 2 if bidirectional else 1, CELLS[cell].gates * H
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(L):
        layer_in = input_size if layer == 0 else H * D
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            shapes.update({f"rnn.weight_ih{sfx}": (GH, layer_in),
                           f"rnn.weight_hh{sfx}": (GH, H),
                           f"rnn.bias_ih{sfx}": (GH,), f"rnn.bias_hh{sfx}": (GH,)})
    return shapes


def expected_weight_shapes(kind: str, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape that ``build_model(kind, config)`` would allocate,
    computed without building it. Refuses (``ValueError`` naming the field) an
    unknown kind, a config that is not a dict, unknown keys, sizes that are not
    positive ints, an unknown cell and a dtype other than float32/float64."""
    from ..models import MODELS

    if not isinstance(kind, str) or kind not in MODELS:
        raise ValueError(f"model_kind: expected one of {sorted(MODELS)}, got {kind!r:.80}")
    if not isinstance(config, dict):
        raise ValueError(f"model_config: expected a JSON object, got {_json_type(config)}")
    dtype = config.get("dtype", "float32")
    if dtype not in B.FLOAT_DTYPES:
        raise ValueError(f"model_config['dtype']: expected one of {B.FLOAT_DTYPES}, got "
                         f"{dtype!r:.80}")
    allowed = set(inspect.signature(MODELS[kind].__init__).parameters) - {
        "self", "device", "generator"}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(f"model_config does not fit a {kind!r}: unexpected keys {unknown}")
    shapes: dict[str, tuple[int, ...]] = {}
    if kind == "language_model":
        V, E = _count(config, "vocab_size"), _count(config, "embedding_dim", optional=True)
        if E:
            shapes["embedding.weight"] = (V, E)
        shapes.update(_rnn_shapes(config, E or V, False))
        H = config["hidden_size"]
        shapes.update({"head.weight": (V, H), "head.bias": (V,)})
    elif kind == "classifier":
        C = _count(config, "num_classes")
        V = _count(config, "vocab_size", optional=True)
        In = _count(config, "input_size", optional=True)
        E = _count(config, "embedding_dim", optional=True)
        if V and E:
            shapes["embedding.weight"] = (V, E)
        bidirectional = bool(config.get("bidirectional"))
        rnn_in = In or E or V
        if rnn_in is None:
            raise ValueError("model_config: expected vocab_size or input_size, got neither")
        shapes.update(_rnn_shapes(config, rnn_in, bidirectional))
        width = config["hidden_size"] * (2 if bidirectional else 1)
        if config.get("pooling") == "attention":
            shapes["pool.weight"] = (width,)
        shapes.update({"head.weight": (C, width), "head.bias": (C,)})
    else:                                                       # "regressor"
        In, O = _count(config, "input_size"), _count(config, "output_size")
        shapes.update(_rnn_shapes(config, In, False))
        shapes.update({"head.weight": (O, config["hidden_size"]), "head.bias": (O,)})
    return shapes


def _json_type(value: Any) -> str:
    """What JSON calls the type of a decoded ``value`` (a list is an array, None null)."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def check_model_metadata(kind: Any, config: Any, stored: dict[str, tuple[int, ...]],
                         vocab: Vocab | None) -> dict[str, tuple[int, ...]]:
    """A stored model's kind and config, checked against its stored weights' shapes
    and its vocabulary before anything is built (``ValueError`` naming the field,
    without the file: the caller adds it). Returns the expected shapes."""
    expected = expected_weight_shapes(kind, config)
    diff = _fits(expected, stored)
    if diff:
        raise ValueError(f"the weights do not fit the model config ({diff})")
    if kind == "language_model" and vocab is not None and len(vocab) != config["vocab_size"]:
        raise ValueError(f"the vocabulary has {len(vocab)} tokens, the model config says "
                         f"vocab_size {config['vocab_size']}")
    return expected


def build_checked_model(where: str, kind: str, config: dict[str, Any], device: Any = None,
                        dtype: str | None = None) -> Module:
    """``build_model`` whose errors (a field the constructor refuses) name ``where``."""
    from ..models import build_model

    try:
        return build_model(kind, config, device=device, dtype=dtype)
    except (ValueError, TypeError) as err:
        what = str(err) if str(err).startswith("model") else f"model_config: {err}"
        raise ValueError(f"{where}: {what}") from None


def _fits(expected: dict[str, tuple[int, ...]], stored: dict[str, tuple[int, ...]]) -> str:
    """'' when the stored shapes are the expected ones, else what differs."""
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = [f"{k}: config says {expected[k]}, file has {stored[k]}"
             for k in sorted(set(expected) & set(stored)) if expected[k] != stored[k]]
    parts = ([f"missing {missing}"] if missing else []) + \
        ([f"unexpected {unexpected}"] if unexpected else []) + wrong[:3]
    return "; ".join(parts)


def _require(path: Path, ok: bool, what: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"checkpoint {path}: {what}, got {value!r:.80}")


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Before reading any array it checks the metadata's types, that every
    member is one a checkpoint has, that each array's declared size matches
    the file, and that the weights' shapes are those the model config
    implies; after reading, that weights and optimizer state are finite
    real numbers. Every error names the file.
    """
    path = Path(path)
    index, meta = read_npz_index(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path}: expected format {FORMAT!r}, got "
                         f"{meta.get('format')!r} (not a scratchrnn checkpoint)")
    if meta.get("version") != VERSION:
        raise ValueError(f"checkpoint {path}: expected format version {VERSION}, got "
                         f"{meta.get('version')!r} (written by another scratchrnn version)")
    missing = [k for k in ("model_kind", "model_config", "optimizer", "vocab", "step", "rng",
                           "info") if k not in meta]
    if missing:
        raise ValueError(f"checkpoint {path}: corrupt metadata (missing {missing})")
    kind, config, step = meta["model_kind"], meta["model_config"], meta["step"]
    _require(path, isinstance(kind, str), "model_kind: expected a string", kind)
    _require(path, isinstance(config, dict), "model_config: expected a JSON object", config)
    if "cell" in config:        # older checkpoints name the tanh Elman cell "rnn"
        try:
            config = {**config, "cell": cell_name(config["cell"], what="model_config['cell']")}
        except ValueError as err:
            raise ValueError(f"checkpoint {path}: {err}") from None
    _require(path, isinstance(step, int) and not isinstance(step, bool) and step >= 0,
             "step: expected an int >= 0", step)
    _require(path, isinstance(meta["rng"], dict) and all(isinstance(v, dict)
                                                         for v in meta["rng"].values()),
             "rng: expected a JSON object of generator states", meta["rng"])
    _require(path, isinstance(meta["info"], dict), "info: expected a JSON object", meta["info"])
    for name, state in meta["rng"].items():
        try:
            B.check_generator_state(state)
        except ValueError as err:
            raise ValueError(f"checkpoint {path}: rng[{name!r}]: {err}") from None
    vocab = None
    if meta["vocab"] is not None:
        _require(path, isinstance(meta["vocab"], dict), "vocab: expected a JSON object",
                 meta["vocab"])
        try:
            vocab = Vocab.from_dict(meta["vocab"])
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"checkpoint {path}: {err}") from None

    # ---- members and their declared shapes, before anything is read ------- #
    groups: dict[str, dict[str, Any]] = {"model": {}, "optim": {}, "extra": {}}
    for name, info in index.items():
        prefix, _, rest = name.partition("/")
        if prefix not in groups or not rest:
            raise ValueError(f"checkpoint {path}: unexpected member {name!r} (a checkpoint "
                             f"holds model/, optim/ and extra/ arrays only)")
        groups[prefix][rest] = info
    for group in ("model", "optim"):
        for name, info in groups[group].items():
            if info.kind != "f":
                raise ValueError(f"checkpoint {path}: {group}/{name}: expected float weights, "
                                 f"got dtype {info.dtype}")
    stored = {k: info.shape for k, info in groups["model"].items()}
    try:
        check_model_metadata(kind, config, stored, vocab)
    except ValueError as err:
        raise ValueError(f"checkpoint {path}: {err}") from None
    opt_meta = meta["optimizer"]
    optimizer = None
    if opt_meta is not None:
        _require(path, isinstance(opt_meta, dict) and isinstance(opt_meta.get("params"), list)
                 and all(k in opt_meta for k in ("type", "lr", "hyper", "steps")),
                 "optimizer: expected an object with type, lr, hyper, steps, params", opt_meta)
        params = opt_meta["params"]
        state: dict[str, dict[str, Any]] = {}
        for p in params:
            _require(path, p in stored, "optimizer: expected parameters of the model",
                     p)
            state[p] = {}
        for k, info in groups["optim"].items():
            pname, _, slot = k.rpartition("/")
            if pname not in state:
                raise ValueError(f"checkpoint {path}: optim/{k}: a state array for "
                                 f"{pname!r}, which the optimizer does not list")
            if info.shape != stored[pname]:
                raise ValueError(f"checkpoint {path}: optim/{k}: expected shape "
                                 f"{stored[pname]} (the weight's), got {info.shape}")
            state[pname][slot] = k
    elif groups["optim"]:
        raise ValueError(f"checkpoint {path}: optimizer arrays without optimizer metadata")
    for k, info in groups["extra"].items():
        if info.kind not in "biuf":
            raise ValueError(f"checkpoint {path}: extra/{k}: expected real numbers, got dtype "
                             f"{info.dtype}")
    if kind == "language_model" and "trainer" in meta["info"]:
        _check_carried_state(path, config, groups["extra"], meta["info"])

    # ---- read, then check the values -------------------------------------- #
    arrays = read_npz_arrays(path, list(index))
    for name, a in arrays.items():
        if name.startswith(("model/", "optim/")) and not B.all_finite(a):
            raise ValueError(f"checkpoint {path}: {name}: expected finite values, got NaN "
                             f"or Inf")
    weights = {k: arrays["model/" + k] for k in groups["model"]}
    extra = {k: arrays["extra/" + k] for k in groups["extra"]}
    if opt_meta is not None:
        optimizer = {k: opt_meta[k] for k in ("type", "lr", "hyper", "steps")}
        optimizer["state"] = {p: {slot: arrays["optim/" + k] for slot, k in slots.items()}
                              for p, slots in state.items()}
    return Checkpoint(path, kind, config, weights, optimizer, vocab, step, meta["rng"],
                      meta["info"], extra)


def _check_carried_state(path: Path, config: dict[str, Any], extra: dict[str, Any],
                         info: dict[str, Any]) -> None:
    """A language model's carried TBPTT state (``extra/state0``, ``state1``, as the
    trainer writes it) must be the model's (L, batch, H) in a float dtype, one per
    carried state."""
    states = sorted(k for k in extra if k.startswith("state"))
    if not states:
        return
    n = CELLS[config["cell"]].carry_size
    if states != [f"state{i}" for i in range(n)]:
        raise ValueError(f"checkpoint {path}: carried state: expected {n} array(s) for a "
                         f"{config.get('cell')} model, got {states}")
    run = info.get("run", {}) if isinstance(info.get("run"), dict) else {}
    batch = run.get("batch_size")
    for k in states:
        a = extra[k]
        want = (config["num_layers"], batch if isinstance(batch, int) else None,
                config["hidden_size"])
        if a.kind != "f" or len(a.shape) != 3 or any(
                w is not None and w != g for w, g in zip(want, a.shape)):
            shown = tuple("batch" if w is None else w for w in want)
            raise ValueError(f"checkpoint {path}: carried state extra/{k}: expected a float "
                             f"array of shape {shown} (num_layers, batch_size, hidden_size), "
                             f"got {a.shape} {a.dtype}")
