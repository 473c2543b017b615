"""What a training run measured, step by step (plain lists, JSON-ready)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class History:
    """Everything measured, step by step (plain lists, JSON-ready)."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)   # each with its "step"

    def to_dict(self) -> dict[str, Any]:
        """The history as a JSON-ready dict of lists."""
        return {k: list(getattr(self, k)) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "history") -> History:
        """Undo :meth:`to_dict`; ``ValueError`` naming ``where`` and the field when a
        list is not a list of numbers (``val``: of objects)."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(d).__name__}")
        for k in cls.__dataclass_fields__:
            v = d.get(k, [])
            item = dict if k == "val" else (int, float)
            if not isinstance(v, list) or not all(
                    isinstance(x, item) and not isinstance(x, bool) for x in v):
                what = "objects" if k == "val" else "numbers"
                raise ValueError(f"{where}.{k}: expected a list of {what}, got {v!r:.60}")
        return cls(**{k: list(d.get(k, [])) for k in cls.__dataclass_fields__})
