"""The numba kernel cache runs only the code it generated, from a folder only this user
can write in."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import uuid
import warnings
from pathlib import Path

import pytest

nk = pytest.importorskip("scratchrnn.engines.numba_kernels")


def source_and_name() -> tuple[str, str]:
    """A fresh module text (never imported before) and the file name the cache gives it."""
    source = f"X = 1\nTAG = {uuid.uuid4().hex!r}\n"
    key = hashlib.sha256((source + Path(nk.__file__).read_text(encoding="utf-8")).encode())
    return source, f"lstm_{key.hexdigest()[:16]}.py"


def plant(folder: Path, name: str, marker: Path) -> None:
    """What another user would leave there: code that runs on import."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(f"open({str(marker)!r}, 'w').close()\nX = 666\n")


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    """SCRATCHRNN_CACHE and TMPDIR inside tmp_path; the per-process folder reset."""
    primary, tmp = tmp_path / "cache", tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("SCRATCHRNN_CACHE", str(primary))
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    monkeypatch.setattr(nk, "_private_tmp", None, raising=False)
    return primary / "scratchrnn" / "numba", tmp / f"scratchrnn-numba-{os.getuid()}"


def load(source: str):
    module = nk._load("lstm", source)
    sys.modules.pop(module.__name__, None)
    return module


def test_a_world_writable_fallback_folder_is_not_imported_from(tmp_path, cache_env):
    """The primary folder unusable (a file is in the way), the fallback in $TMPDIR
    world-writable with a planted module of the right name: it must not run."""
    primary, fallback = cache_env
    primary.parent.mkdir(parents=True)
    primary.write_text("not a folder")
    source, name = source_and_name()
    marker = tmp_path / "planted-code-ran"
    plant(fallback, name, marker)
    fallback.chmod(0o777)
    with pytest.warns(RuntimeWarning, match=r"numba kernel cache: .*scratchrnn-numba-\d+ can "
                                            r"be written by other users \(mode 0777\)"):
        module = load(source)
    assert module.X == 1 and not marker.exists()
    used = Path(module.__file__).parent
    assert used != fallback and stat.S_IMODE(used.stat().st_mode) == 0o700
    assert Path(module.__file__).read_text() == source


def test_a_folder_of_another_user_is_not_imported_from(tmp_path, cache_env, monkeypatch):
    primary, fallback = cache_env
    source, name = source_and_name()
    marker = tmp_path / "planted-code-ran"
    for folder in (primary, fallback):
        plant(folder, name, marker)
        folder.chmod(0o700)
    me = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: me + 4242)    # both folders now belong to another
    with pytest.warns(RuntimeWarning, match="belongs to uid"):
        module = load(source)
    assert module.X == 1 and not marker.exists()
    assert Path(module.__file__).parent not in (primary, fallback)


def test_a_changed_file_in_the_own_folder_is_replaced_not_run(tmp_path, cache_env):
    primary, _ = cache_env
    source, name = source_and_name()
    marker = tmp_path / "planted-code-ran"
    plant(primary, name, marker)
    primary.chmod(0o700)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = load(source)
    assert module.X == 1 and not marker.exists()
    assert Path(module.__file__) == primary / name and (primary / name).read_text() == source


def test_the_cache_folder_is_made_private(cache_env):
    primary, _ = cache_env
    source, name = source_and_name()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(source)
    assert stat.S_IMODE(primary.stat().st_mode) == 0o700 and (primary / name).is_file()
    primary.chmod(0o755)            # an own folder nobody else could write in: tightened
    load(source_and_name()[0])
    assert stat.S_IMODE(primary.stat().st_mode) == 0o700


def test_a_cache_inside_a_folder_others_can_change_is_refused(tmp_path, cache_env,
                                                             monkeypatch):
    """Others may rename a folder away in a world-writable parent without the sticky bit
    (and put their own in its place): the cache is not kept there; with it (like /tmp) the
    folder is fine."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("SCRATCHRNN_CACHE", str(shared))
    with pytest.warns(RuntimeWarning, match="which other users can change"):
        module = load(source_and_name()[0])
    assert Path(module.__file__).parent != shared / "scratchrnn" / "numba"
    shared.chmod(0o1777)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = load(source_and_name()[0])
    assert Path(module.__file__).parent == shared / "scratchrnn" / "numba"
