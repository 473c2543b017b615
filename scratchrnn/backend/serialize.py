"""Reading and writing arrays on disk (``.npz``), for checkpoints.

This lives in :mod:`scratchrnn.backend` because it needs NumPy. A file holds
named host arrays plus one JSON document (stored as the UTF-8 bytes of the
array ``__meta__.json``), so one file is one atomic unit: it is written to a
temporary file in the same folder and renamed over the target with
``os.replace``, which either happens completely or not at all.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import to_numpy

META_KEY = "__meta__.json"


def write_npz(f: IO[bytes], arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Write ``arrays`` (any backend, copied to the host) and the JSON ``meta`` as one
    ``.npz`` into the open binary file ``f`` (the atomic rename is the caller's:
    see :func:`scratchrnn.training.files.atomic_write`)."""
    if META_KEY in arrays:
        raise ValueError(f"arrays: the key {META_KEY!r} is reserved")
    host = {name: to_numpy(a) for name, a in arrays.items()}
    text = json.dumps(meta, sort_keys=True)
    host[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    np.savez(f, **host)


def save_npz_atomic(path: str | os.PathLike, arrays: Mapping[str, Any],
                    meta: Mapping[str, Any]) -> Path:
    """:func:`write_npz` to ``path`` atomically (temp file in the same folder, then
    ``os.replace``; mode 0666 & ~umask like any new file); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write_npz(f, arrays, meta)
            f.flush()
            os.fsync(f.fileno())
            mask = os.umask(0o022)
            os.umask(mask)
            os.fchmod(f.fileno(), 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_npz(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_npz_atomic`: (host arrays, meta).

    Raises ``ValueError`` naming the file when it is not such a file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"checkpoint {path}: not a readable .npz file ({err})") from err
    raw = arrays.pop(META_KEY, None)
    if raw is None:
        raise ValueError(f"checkpoint {path}: missing {META_KEY} (not a scratchrnn checkpoint)")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"checkpoint {path}: corrupt metadata ({err})") from err
    return arrays, meta
