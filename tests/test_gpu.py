"""GPU checks (``pytest -m gpu``): skipped without CuPy and a CUDA device.

* the fused CuPy kernels (``scratchrnn.backend.cupy_cells``) equal the portable
  path on the GPU, and both equal the NumPy result, for every cell, with
  lengths, both directions and initial states, in float32 and float64;
* checkpointed BPTT on the GPU gives the normal results (forward bit-for-bit,
  gradients to rounding);
* the whole gradient-check and PyTorch-parity suites pass with
  ``SCRATCHRNN_BACKEND=cupy``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from layer_results import CELLS, assert_close, assert_same, collect_results

import scratchrnn as sr
from scratchrnn import backend as B

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not B.cuda_available(), reason="needs CuPy and a CUDA device"),
]

TOL = {"float64": dict(rtol=1e-9, atol=1e-11), "float32": dict(rtol=5e-5, atol=5e-6)}
T, BATCH, I, H = 9, 5, 6, 7
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def cupy_kernels_on(monkeypatch, restore_fast_paths):
    monkeypatch.setenv("SCRATCHRNN_CUPY_KERNELS", "1")   # opt in to the fused CuPy kernels


def run(cell: str, device: str, dtype: str, fused: bool, every=None) -> dict:
    B.set_fast_paths(fused)
    be = B.get_backend(device)
    layer = CELLS[cell](input_size=I, hidden_size=H, num_layers=2, bidirectional=True,
                        dtype=dtype, device=device, generator=B.Generator(5),
                        checkpoint_every=every)
    layer.record_hidden_grads = True
    rng = np.random.default_rng(5)
    x = be.asarray(rng.standard_normal((T, BATCH, I)), dtype=dtype)
    h0 = be.asarray(rng.standard_normal((4, BATCH, H)), dtype=dtype)
    state = (h0, h0 * 0.5) if cell == "lstm" else h0
    out, h_n = layer(x, state, np.array([T, 4, 0, 9, 1]))
    d_out = be.asarray(rng.standard_normal(tuple(out.shape)), dtype=dtype)
    dx, dh0 = layer.backward(d_out)
    return collect_results(layer, out, h_n, dx, dh0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fused_kernels_equal_portable(cell, dtype):
    portable = run(cell, "cuda", dtype, fused=False)
    fused = run(cell, "cuda", dtype, fused=True)
    assert_close(portable, fused, **TOL[dtype])
    assert_close(run(cell, "cpu", dtype, fused=False), fused, **TOL[dtype])


def test_fused_path_really_runs_on_cupy():
    from scratchrnn.backend import fast_scan

    B.set_fast_paths(True)
    layer = sr.LSTM(I, H, device="cuda")
    x = B.get_backend("cuda").asarray(np.ones((T, BATCH, I)), dtype="float32")
    layer(x)
    assert all(isinstance(t, fast_scan.FastTape) for t in layer._tapes.values())


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_checkpointed_same_results_on_gpu(cell, fused):
    normal = run(cell, "cuda", "float64", fused)
    ckpt = run(cell, "cuda", "float64", fused, every=True)
    assert_same(normal, ckpt, "float64")


@pytest.mark.parametrize("suite", ["tests/test_gradcheck_layers.py", "tests/test_parity_torch.py"])
def test_suite_passes_on_cupy(suite):
    if not (ROOT / suite).exists():
        pytest.skip(f"{suite} not present")
    env = dict(os.environ, SCRATCHRNN_BACKEND="cupy")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           suite], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
