"""Shared fixtures: every numeric test runs on every available backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scratchrnn import backend as B

DATA = Path(os.environ.get("SCRATCHRNN_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))


def available_backends() -> list[str]:
    names = ["numpy", "strict"]
    if B.cuda_available():
        names.append("cupy")
    return names


@pytest.fixture(params=available_backends())
def backend_name(request) -> str:
    """'numpy', 'strict' (array_api_strict on device1) and, with a GPU, 'cupy'."""
    return request.param


@pytest.fixture
def data_dir() -> Path:
    if not DATA.exists():
        pytest.skip(f"data directory {DATA} not found (set SCRATCHRNN_DATA)")
    return DATA
