"""Data sets: the embedded corpus, the loaders, and the offline failure message."""

from __future__ import annotations

import pytest

from scratchrnn.data import datasets as D


def test_default_corpus_is_embedded_english():
    text = D.default_corpus()
    assert len(text) > 300_000
    assert " the " in text and "statement" in text


def test_tinyshakespeare(data_dir, monkeypatch):
    monkeypatch.setenv("SCRATCHRNN_DATA", str(data_dir))
    text = D.load_tinyshakespeare(download_ok=False)
    assert len(text) == 1115394 and text.startswith("First Citizen:")
    assert D.sha256_of(data_dir / "tinyshakespeare/input.txt") == D.TINYSHAKESPEARE_SHA256
    assert D.load_tinyshakespeare(data_dir / "tinyshakespeare" / "input.txt") == text


def test_tinyshakespeare_offline_message(tmp_path, monkeypatch):
    """Not found anywhere and the download fails: the message says how to provide it."""
    monkeypatch.delenv("SCRATCHRNN_DATA", raising=False)
    monkeypatch.setenv("SCRATCHRNN_CACHE", str(tmp_path / "cache"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(D.urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="SCRATCHRNN_DATA") as err:
        D.load_tinyshakespeare(url="http://example.invalid/input.txt")
    assert "network is unreachable" in str(err.value)
    assert not (tmp_path / "cache" / "tinyshakespeare" / "input.txt").exists()
    with pytest.raises(FileNotFoundError, match="not found"):
        D.load_tinyshakespeare(download_ok=False)


def test_download_checks_sha256(tmp_path, monkeypatch):
    import io

    monkeypatch.setattr(D.urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b"fake"))
    with pytest.raises(OSError, match="expected SHA-256"):
        D.download("http://example.invalid/x", tmp_path / "x.txt", D.TINYSHAKESPEARE_SHA256)
    assert not (tmp_path / "x.txt").exists()


def test_names(data_dir):
    names = D.load_names(data_dir)
    classic = {"Arabic", "Chinese", "Czech", "Dutch", "English", "French", "German", "Greek",
               "Irish", "Italian", "Japanese", "Korean", "Polish", "Portuguese", "Russian",
               "Scottish", "Spanish", "Vietnamese"}
    assert classic <= set(names)                     # the 18 of the tutorial (and any extras)
    assert len(names["English"]) > 3000 and all(names.values())
    assert "Nguyen" in names["Vietnamese"]


def test_ag_news(data_dir, monkeypatch):
    monkeypatch.setenv("SCRATCHRNN_DATA", str(data_dir))
    rows = D.load_ag_news()
    assert len(rows) == 7600
    assert {label for label, _ in rows} == {0, 1, 2, 3}
    assert rows[0][0] == 2 and rows[0][1].startswith("Fears for T N pension")


def test_explicit_path_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="ag_news: expected the file"):
        D.load_ag_news(tmp_path)
    with pytest.raises(FileNotFoundError, match="names: expected a folder"):
        D.load_names(tmp_path)


def test_not_found_messages_say_what_scratchrnn_data_holds(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("SCRATCHRNN_DATA", str(empty))
    monkeypatch.setenv("SCRATCHRNN_CACHE", str(tmp_path / "cache"))
    for load in (lambda: D.load_tinyshakespeare(download_ok=False), D.load_ag_news,
                 D.load_names):
        with pytest.raises(FileNotFoundError, match=f"SCRATCHRNN_DATA is {empty}"):
            load()
    monkeypatch.delenv("SCRATCHRNN_DATA")
    with pytest.raises(FileNotFoundError, match="SCRATCHRNN_DATA is not set"):
        D.load_ag_news()
