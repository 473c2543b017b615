"""Data sets: an embedded default corpus and loaders for the reference data.

* :func:`default_corpus` -- English prose that ships with CPython itself (the
  help topics of ``pydoc_data.topics``, ~465,000 characters): always there,
  no download, no file outside the installed packages.
* :func:`load_tinyshakespeare` -- the char-rnn corpus (1,115,394 bytes).
* :func:`load_names` -- surnames by language of origin (one file per language).
* :func:`load_ag_news` -- the AG News test split (7,600 news items, 4 classes).

Files are looked up in this order: an explicit ``path`` (the file or a data
folder), then ``$SCRATCHRNN_DATA``, then (Tiny Shakespeare only) the cache
folder ``$SCRATCHRNN_CACHE`` or ``~/.cache/scratchrnn``. Tiny Shakespeare's
public URL and SHA-256 are known, so when it is found nowhere it is
downloaded once into the cache and checked; without network the error says
how to provide the file instead.
"""

from __future__ import annotations

import csv
import hashlib
import os
import unicodedata
import urllib.request
from pathlib import Path

TINYSHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/"
                       "data/tinyshakespeare/input.txt")
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
AG_NEWS_CLASSES = ("World", "Sports", "Business", "Sci/Tech")


def default_corpus() -> str:
    """CPython's help-topic prose (``pydoc_data.topics``), topics in sorted order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k].strip() for k in sorted(topics)) + "\n"


def data_dir() -> Path | None:
    """``$SCRATCHRNN_DATA`` as a path, or None when unset."""
    value = os.environ.get("SCRATCHRNN_DATA")
    return Path(value).expanduser() if value else None


def _data_var() -> str:
    """What ``SCRATCHRNN_DATA`` holds, for a message about a file not found there."""
    root = data_dir()
    return "SCRATCHRNN_DATA is not set" if root is None else f"SCRATCHRNN_DATA is {root}"


def cache_dir() -> Path:
    """Where downloads are kept: ``$SCRATCHRNN_CACHE``, else ``~/.cache/scratchrnn``."""
    value = os.environ.get("SCRATCHRNN_CACHE")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "scratchrnn"


def _find(relative: str, path: str | os.PathLike | None, name: str) -> Path | None:
    """The first existing file among: ``path`` (a file, or a folder holding
    ``relative``), then ``$SCRATCHRNN_DATA/relative``."""
    if path is not None:
        p = Path(path).expanduser()
        for cand in (p, p / relative, p / Path(relative).name):
            if cand.is_file():
                return cand
        raise FileNotFoundError(f"{name}: expected the file {relative} at {p}, found nothing")
    root = data_dir()
    if root is not None and (root / relative).is_file():
        return root / relative
    return None


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, target: Path, sha256: str, timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``target`` (atomically) and check its SHA-256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as f:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
    except OSError as err:   # URLError, timeouts, DNS failures are all OSErrors
        tmp.unlink(missing_ok=True)
        raise OSError(f"could not download {url}: {err}") from err
    got = sha256_of(tmp)
    if got != sha256:
        tmp.unlink(missing_ok=True)
        raise OSError(f"download of {url}: expected SHA-256 {sha256}, got {got}")
    os.replace(tmp, target)
    return target


def load_tinyshakespeare(path: str | os.PathLike | None = None, download_ok: bool = True,
                         url: str = TINYSHAKESPEARE_URL) -> str:
    """Tiny Shakespeare as one string (see the module docstring for where it is looked for)."""
    rel = "tinyshakespeare/input.txt"
    found = _find(rel, path, "tinyshakespeare")
    cached = cache_dir() / rel
    if found is None and cached.is_file():
        found = cached
    if found is None:
        how = (f"put input.txt in $SCRATCHRNN_DATA/{rel} ({_data_var()}), "
               f"pass its path, or download it from {url} (sha256 {TINYSHAKESPEARE_SHA256})")
        if not download_ok:
            raise FileNotFoundError(f"tinyshakespeare: not found; {how}")
        try:
            found = download(url, cached, TINYSHAKESPEARE_SHA256)
        except OSError as err:
            raise FileNotFoundError(f"tinyshakespeare: not found and {err}; {how}") from None
    return found.read_text(encoding="utf-8")


def load_names(path: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """{language: [surname, ...]} from every ``names/<Language>.txt``, NFC-normalised."""
    folder = None
    if path is not None:
        p = Path(path).expanduser()
        folder = p if any(p.glob("*.txt")) and not (p / "names").is_dir() else p / "names"
    elif data_dir() is not None:
        folder = data_dir() / "names"
    if folder is None or not folder.is_dir() or not any(folder.glob("*.txt")):
        raise FileNotFoundError(
            f"names: expected a folder of <Language>.txt files at "
            f"{folder or '$SCRATCHRNN_DATA/names'} ({_data_var()}); set SCRATCHRNN_DATA or "
            f"pass its path "
            f"(the data of PyTorch's char-RNN classification tutorial)")
    out = {}
    for f in sorted(folder.glob("*.txt")):
        lines = f.read_text(encoding="utf-8").splitlines()
        out[f.stem] = [unicodedata.normalize("NFC", s.strip()) for s in lines if s.strip()]
    return out


def load_ag_news(path: str | os.PathLike | None = None) -> list[tuple[int, str]]:
    """[(label 0..3, 'title. description'), ...] from the AG News test split
    (labels: 0 World, 1 Sports, 2 Business, 3 Sci/Tech)."""
    rel = "ag_news/test.csv"
    found = _find(rel, path, "ag_news")
    if found is None:
        raise FileNotFoundError(f"ag_news: not found; put test.csv in $SCRATCHRNN_DATA/{rel} "
                                f"({_data_var()}) or pass its path")
    rows = []
    with open(found, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.reader(f)):
            if i == 0 and row and row[0] == "label":
                continue
            if len(row) != 3:
                raise ValueError(f"ag_news {found}: line {i + 1}: expected 3 fields "
                                 f"(label, title, description), got {len(row)}")
            text = (row[1].strip() + ". " + row[2].replace("\\", " ").strip())
            rows.append((int(row[0]) - 1, text))
    return rows
