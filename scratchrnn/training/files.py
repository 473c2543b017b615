"""Writing a run's files: atomically, with one permission policy, never through a symlink.

Every file a run writes (checkpoints, ``history.json``, ``loss.png``,
``sample.txt``, ``metrics.csv`` when rewritten; ``export``'s safetensors too)
goes through :func:`atomic_write` (it lives in :mod:`scratchrnn.backend.serialize`,
which writes the array files, and is re-exported here)::

    temp = <folder>/<name>.<pid>.<random>.tmp     created with O_EXCL (never follows a link)
    write, flush, fsync, chmod 0666 & ~umask      the same mode as any new file of the user
    os.replace(temp, <folder>/<name>)             replaces the directory entry itself:
                                                  a symlink at <name> is replaced, not followed

so a reader sees the old file or the new one, never a part, and a write can
never land outside the folder. A kill between the first and last line leaves
the temp file; :func:`clean_stale_temps` removes those whose writing process
is gone (the pid is in the name).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..backend.serialize import atomic_write, file_mode

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "file_mode",
           "stale_temps", "clean_stale_temps", "check_writable_folder"]

_TEMP = re.compile(r"^(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically, UTF-8 (see :func:`atomic_write`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # someone else's live process
        return True
    return True


def stale_temps(folder: str | os.PathLike, names: Iterator[str] | None = None) -> list[Path]:
    """Temp files of :func:`atomic_write` in ``folder`` whose writer is gone
    (only for the target ``names`` when given)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = None if names is None else set(names)
    out = []
    for entry in folder.iterdir():
        m = _TEMP.match(entry.name)
        if m and (wanted is None or m["name"] in wanted) and entry.is_file() \
                and not entry.is_symlink() and not _alive(int(m["pid"])):
            out.append(entry)
    return sorted(out)


def clean_stale_temps(folder: str | os.PathLike, names: Iterator[str] | None = None
                      ) -> list[Path]:
    """Delete :func:`stale_temps`; returns what was deleted."""
    gone = []
    for p in stale_temps(folder, names):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            gone.append(p)
    return gone


def check_writable_folder(folder: str | os.PathLike, what: str = "--out",
                          create: bool = True) -> Path:
    """Prove a file can be written in ``folder``, or raise a ``ValueError`` naming
    ``what`` (called before any training). ``create``: make the folder now; else a
    missing folder is left missing, and the nearest existing folder above it must be
    writable (so that creating it later, when the run starts, will work)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what}: {folder} exists and is not a folder")
    probe = folder
    if not create:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise ValueError(f"{what}: {probe} exists and is not a folder")
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".write-test.{os.getpid()}.", suffix=".tmp",
                                   dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ValueError(f"{what}: cannot write in {folder} ({reason})") from None
    return folder
