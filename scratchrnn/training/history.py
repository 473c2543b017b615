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
    def from_dict(cls, d: dict[str, Any]) -> History:
        """The history that :meth:`to_dict` wrote."""
        return cls(**{k: list(d.get(k, [])) for k in cls.__dataclass_fields__})
