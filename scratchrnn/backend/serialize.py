"""Reading and writing arrays on disk (``.npz``), for checkpoints.

This lives in :mod:`scratchrnn.backend` because it needs NumPy. A file holds
named host arrays plus one JSON document (stored as the UTF-8 bytes of the
array ``__meta__.json``), so one file is one atomic unit: it is written to a
temporary file in the same folder and renamed over the target with
``os.replace``, which either happens completely or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


def file_mode() -> int:
    """The mode of a new file under the current umask (0666 & ~umask): the one
    permission policy of every file the library writes."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a temp file beside ``path``, then rename it over ``path``.

    The temp file ``<name>.<pid>.<random>.tmp`` is created with O_EXCL (it never
    follows a link), flushed, fsync'ed and given :func:`file_mode`; ``os.replace``
    swaps the directory entry itself, so a symlink at ``path`` is replaced, not
    followed, and a reader sees the old file or the new one, never a part.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def save_npz_atomic(path: str | os.PathLike, arrays: Mapping[str, Any],
                    meta: Mapping[str, Any]) -> Path:
    """:func:`write_npz` to ``path`` with :func:`atomic_write`; returns the path."""
    return atomic_write(path, lambda f: write_npz(f, arrays, meta))


@dataclass(frozen=True)
class ArrayInfo:
    """What an ``.npy`` member's header declares (read without loading the data)."""

    shape: tuple[int, ...]
    dtype: str                      # NumPy's name: 'float32', 'int64', ...
    kind: str                       # NumPy's kind letter: 'f' float, 'i'/'u' int, 'c' ...


_TEXT_START = (b"{", b"[", b"#", b"\xef\xbb\xbf")       # JSON, comments, a UTF-8 BOM


def _not_npz_message(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] == b"PK":
        return f"checkpoint {path}: not a readable .npz file (a damaged zip archive)"
    if head[:6] == b"\x93NUMPY":
        what = "a single .npy array"
    elif head.lstrip().startswith(_TEXT_START) or (head and _is_text(head)):
        what = "a text file" if not head.lstrip().startswith((b"{", b"[")) else "a JSON file"
    elif not head:
        what = "an empty file"
    else:
        what = "not a zip (.npz) archive"
    return f"checkpoint {path}: not a scratchrnn checkpoint ({what})"


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def read_npz_index(path: str | os.PathLike, max_meta_bytes: int = 1 << 28
                   ) -> tuple[dict[str, ArrayInfo], dict[str, Any]]:
    """The arrays' declared shapes and dtypes, and the JSON ``meta``, of a file
    written by :func:`save_npz_atomic`, reading only headers and metadata.

    Every error names the file. Refused: a file that is not a zip archive
    (text, JSON, a lone ``.npy``), members that are not ``.npy`` arrays,
    compressed members, object (pickled) or structured dtypes, and headers
    whose declared size does not match the member's size in the archive. So
    no array read from the file is larger than the file itself.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(_not_npz_message(path))
    index: dict[str, ArrayInfo] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.infolist():
                if not member.filename.endswith(".npy"):
                    raise ValueError(f"checkpoint {path}: unexpected member "
                                     f"{member.filename!r} (not an .npy array)")
                name = member.filename[:-4]
                if member.compress_type != zipfile.ZIP_STORED:   # np.savez stores, never packs
                    raise ValueError(f"checkpoint {path}: array {name!r} is compressed "
                                     f"({member.compress_size} bytes for {member.file_size}); "
                                     f"scratchrnn writes uncompressed arrays only")
                with zf.open(member) as f:
                    info, header_len = _read_header(f, path, name)
                n = int(np.prod(info.shape, dtype=np.float64)) if info.shape else 1
                if n * np.dtype(info.dtype).itemsize + header_len != member.file_size:
                    raise ValueError(f"checkpoint {path}: array {name!r} declares shape "
                                     f"{info.shape} ({info.dtype}) but holds "
                                     f"{member.file_size - header_len} bytes")
                if name == META_KEY and member.file_size - header_len > max_meta_bytes:
                    raise ValueError(f"checkpoint {path}: metadata of {member.file_size} "
                                     f"bytes (more than {max_meta_bytes})")
                index[name] = info
            if META_KEY not in index:
                raise ValueError(f"checkpoint {path}: missing {META_KEY} (not a scratchrnn "
                                 f"checkpoint)")
            with zf.open(META_KEY + ".npy") as f:
                raw = np.lib.format.read_array(f, allow_pickle=False)
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as err:
        raise ValueError(f"checkpoint {path}: not a readable .npz file ({err})") from err
    del index[META_KEY]
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"checkpoint {path}: corrupt metadata ({err})") from err
    if not isinstance(meta, dict):
        raise ValueError(f"checkpoint {path}: corrupt metadata (expected a JSON object, got "
                         f"a JSON {type(meta).__name__})")
    return index, meta


def _read_header(f: Any, path: Path, name: str) -> tuple[ArrayInfo, int]:
    """An ``.npy`` header: (its shape/dtype, the header's length in bytes)."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as err:
        raise ValueError(f"checkpoint {path}: array {name!r} has a corrupt header "
                         f"({err})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biufc":
        raise ValueError(f"checkpoint {path}: array {name!r} holds pickled (object) or "
                         f"structured data ({dtype}); refusing to load it")
    return ArrayInfo(tuple(int(d) for d in shape), str(dtype), dtype.kind), f.tell()


def read_npz_arrays(path: str | os.PathLike, names: list[str] | None = None
                    ) -> dict[str, np.ndarray]:
    """Read the arrays ``names`` (default: all but the metadata) of a file whose
    index :func:`read_npz_index` has already checked."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            wanted = names if names is not None else [
                m.filename[:-4] for m in zf.infolist() if m.filename[:-4] != META_KEY]
            for name in wanted:
                with zf.open(name + ".npy") as f:
                    out[name] = np.lib.format.read_array(f, allow_pickle=False)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"checkpoint {path}: not a readable .npz file ({err})") from err
    return out


def load_npz(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_npz_atomic`: (host arrays, meta).

    Raises ``ValueError`` naming the file when it is not such a file.
    """
    _, meta = read_npz_index(path)
    return read_npz_arrays(path), meta


# --------------------------------------------------------------------------- #
# safetensors: the ecosystem's format for weights that move between libraries
# --------------------------------------------------------------------------- #
def save_safetensors_atomic(path: str | os.PathLike, arrays: Mapping[str, Any],
                            metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``arrays`` (any backend) as a ``.safetensors`` file, atomically.

    ``metadata`` values must be strings (the format's rule).
    """
    from safetensors.numpy import save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    host = {name: np.ascontiguousarray(to_numpy(a)) for name, a in arrays.items()}
    meta = None if metadata is None else {str(k): str(v) for k, v in metadata.items()}
    data = save(host, metadata=meta)
    return atomic_write(path, lambda f: f.write(data))


# the tensor dtypes read (the format's names); BF16 and F16 are widened to float32 (exact)
SAFETENSORS_DTYPES = ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32",
                      "U16", "U8")


def read_safetensors_index(path: str | os.PathLike
                           ) -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict[str, str]]:
    """(name -> (dtype, shape), string metadata) of a ``.safetensors`` file, from its
    header alone (no tensor is read). Errors name the file; a dtype outside
    :data:`SAFETENSORS_DTYPES` is refused by name."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"safetensors: no file at {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            index = {}
            for name in f.keys():
                sl = f.get_slice(name)
                index[name] = (str(sl.get_dtype()), tuple(int(d) for d in sl.get_shape()))
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        raise ValueError(f"safetensors {path}: not a readable .safetensors file ({err})") \
            from None
    for name, (dtype, _) in index.items():
        if dtype not in SAFETENSORS_DTYPES:
            raise ValueError(f"safetensors {path}: tensor {name!r}: dtype {dtype} is not "
                             f"supported (expected one of {', '.join(SAFETENSORS_DTYPES)})")
    return index, meta


def _read_bf16(path: Path, name: str) -> np.ndarray:
    """A BF16 tensor as float32: its 16 bits are the top half of a float32 (exact)."""
    with open(path, "rb") as f:
        (n,) = np.frombuffer(f.read(8), dtype="<u8")
        header = json.loads(f.read(int(n)))
    entry = header[name]
    begin, end = entry["data_offsets"]
    bits = np.fromfile(path, dtype="<u2", count=(end - begin) // 2, offset=8 + int(n) + begin)
    return (bits.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def load_safetensors(path: str | os.PathLike, names: list[str] | None = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(host arrays, string metadata) of a ``.safetensors`` file (the tensors ``names``,
    default all), checked by :func:`read_safetensors_index`; BF16 and F16 tensors come
    back as float32. Errors name the file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    index, meta = read_safetensors_index(path)
    arrays: dict[str, np.ndarray] = {}
    try:
        with safe_open(str(path), framework="numpy") as f:
            for name in index if names is None else names:
                if index[name][0] == "BF16":
                    arrays[name] = _read_bf16(path, name)
                else:
                    a = f.get_tensor(name)
                    arrays[name] = a.astype(np.float32) if index[name][0] == "F16" else a
    except (SafetensorError, OSError, ValueError, TypeError, KeyError) as err:
        raise ValueError(f"safetensors {path}: not a readable .safetensors file ({err})") \
            from None
    return arrays, meta
