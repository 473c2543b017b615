"""Vocabularies: tokens <-> integer ids, for characters or words.

A :class:`Vocab` is an ordered token list; the id of a token is its
position. An optional unknown token (``unk``) receives every token that was
not seen when the vocabulary was built; without one, encoding an unseen
token is an error that names it. ``to_dict``/``from_dict`` give plain JSON
data, so a checkpoint carries its vocabulary with the weights.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Split text into words and single punctuation marks (lower-cased)."""
    return _WORD.findall(text.lower())


class Vocab:
    """An ordered list of distinct tokens with an optional unknown token."""

    def __init__(self, tokens: Sequence[str], level: str = "char", unk: str | None = None,
                 pad: str | None = None) -> None:
        if level not in ("char", "word"):
            raise ValueError(f"level: expected 'char' or 'word', got {level!r}")
        specials = [t for t in (pad, unk) if t is not None]
        itos = specials + [t for t in tokens if t not in specials]
        if len(set(itos)) != len(itos):
            raise ValueError("tokens: expected distinct tokens, got duplicates")
        if not itos:
            raise ValueError("tokens: expected at least one token, got none")
        self.itos: list[str] = itos
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(itos)}
        self.level, self.unk, self.pad = level, unk, pad

    # ---- building ------------------------------------------------------ #
    @classmethod
    def build_chars(cls, text: str, unk: str | None = None, pad: str | None = None) -> Vocab:
        """Every distinct character of ``text``, sorted."""
        return cls(sorted(set(text)), "char", unk, pad)

    @classmethod
    def build_words(cls, text: str | Iterable[str], min_freq: int = 1,
                    max_size: int | None = None, unk: str = "<unk>",
                    pad: str | None = None) -> Vocab:
        """Words of ``text`` (or an iterable of texts) by descending frequency
        (ties alphabetical), keeping those seen ``min_freq`` times, at most ``max_size``."""
        texts = [text] if isinstance(text, str) else list(text)
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(words(t))
        ranked = sorted((w for w, c in counts.items() if c >= min_freq),
                        key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[:max_size]
        return cls(ranked, "word", unk, pad)

    # ---- use ----------------------------------------------------------- #
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    @property
    def unk_id(self) -> int | None:
        """The id of the unknown token, or None when there is none."""
        return None if self.unk is None else self.stoi[self.unk]

    @property
    def pad_id(self) -> int | None:
        """The id of the padding token, or None when there is none."""
        return None if self.pad is None else self.stoi[self.pad]

    def tokenize(self, text: str) -> list[str]:
        """``text`` split into characters or words, as the vocabulary's level says."""
        return list(text) if self.level == "char" else words(text)

    def encode(self, text: str | Sequence[str]) -> list[int]:
        """Text (or a token list) -> ids; unseen tokens map to ``unk``."""
        tokens = self.tokenize(text) if isinstance(text, str) else text
        stoi, unk = self.stoi, self.unk_id
        if unk is not None:
            return [stoi.get(t, unk) for t in tokens]
        try:
            return [stoi[t] for t in tokens]
        except KeyError as err:
            raise ValueError(f"text: token {err.args[0]!r} is not in the vocabulary "
                             f"({len(self)} tokens, no unknown token)") from None

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (ValueError on an id outside the vocabulary)."""
        sep = "" if self.level == "char" else " "
        n = len(self.itos)
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise ValueError(f"ids: expected values in [0, {n}), got {i}")
            out.append(self.itos[i])
        return sep.join(out)

    # ---- saving -------------------------------------------------------- #
    def to_dict(self) -> dict[str, Any]:
        """The vocabulary as a JSON-ready dict."""
        return {"itos": list(self.itos), "level": self.level, "unk": self.unk, "pad": self.pad}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocab:
        """The vocabulary that :meth:`to_dict` wrote."""
        try:
            vocab = cls(d["itos"], d["level"], d.get("unk"), d.get("pad"))
        except (KeyError, TypeError) as err:
            raise ValueError(f"vocab: expected keys itos, level, unk, pad, got {d!r:.80}") \
                from err
        if vocab.itos != list(d["itos"]):
            raise ValueError("vocab: stored token order does not start with its specials")
        return vocab

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocab({len(self)} {self.level} tokens, unk={self.unk!r})"
