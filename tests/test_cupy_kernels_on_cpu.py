"""The CuPy fused kernels' CUDA sources, compiled as C++ and run on the CPU, equal the
portable path.

No GPU is needed. ``cuda_on_cpu`` compiles every ``cupy.ElementwiseKernel`` body
of ``scratchrnn/backend/cupy_cells.py`` for the host and loads the module with
that stand-in for ``cupy``. The fused driver (``backend.fast_scan``) then runs on
NumPy arrays with these kernels in place of the numba ones. Each case compares
every result of a forward + backward with the portable path, as
``test_fast_paths`` does for numba: outputs, final states, ∂L/∂x, ∂L/∂h0,
parameter gradients and ∂L/∂h_t, with lengths, both directions and
initial states, in float32 and float64. Where ``nvcc`` is installed, each kernel
also compiles as CUDA device code. What stays unverified without a GPU is the
GPU itself: launches, device memory and cuBLAS (``tests/test_gpu.py``).
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from cuda_on_cpu import CXX, NVCC, CpuElementwiseKernel, load_cupy_cells
from layer_results import CELLS, assert_close
from test_fast_paths import TOL, T, run_layer

from scratchrnn.backend import fast_scan
from scratchrnn.nn.scan import Tape

pytestmark = pytest.mark.skipif(CXX is None, reason="needs a C++ compiler (g++ or clang++)")


@pytest.fixture(scope="module")
def cuda_cells():
    return load_cupy_cells()


@pytest.fixture
def kernels(monkeypatch, cuda_cells, restore_fast_paths):
    """Route the fused path to the CUDA kernels compiled for the CPU; count their calls."""
    calls = {"n": 0}
    run = CpuElementwiseKernel.__call__

    def counting(self, *args, size):
        calls["n"] += 1
        return run(self, *args, size=size)

    monkeypatch.setattr(CpuElementwiseKernel, "__call__", counting)
    monkeypatch.setattr(fast_scan, "_kernels", lambda x: cuda_cells)
    monkeypatch.setattr(fast_scan, "numba_available", lambda: True)
    return calls


CASES = {
    "plain": {},
    "lengths+h0": dict(lengths=np.array([T, 3, 0, 5]), h0=True),
    "bidirectional+lengths": dict(lengths=np.array([T, 3, 0, 5]), h0=True, bidirectional=True),
    "batch_first": dict(batch_first=True),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("case", list(CASES))
def test_cuda_kernels_equal_portable(kernels, cell, dtype, case):
    portable, types_p = run_layer(cell, dtype, False, **CASES[case])
    assert kernels["n"] == 0
    fused, types_f = run_layer(cell, dtype, True, **CASES[case])
    assert types_p == {Tape} and types_f == {fast_scan.FastTape}
    layers, directions = 2, 2 if "bidirectional" in case else 1
    assert kernels["n"] == 2 * T * layers * directions      # one kernel a step, each way
    assert_close(portable, fused, **TOL[dtype])


def test_a_wrong_kernel_is_caught(monkeypatch, kernels, cuda_cells):
    """The comparison can fail: drop the forget gate from the LSTM's dc recursion."""
    kernel = cuda_cells._lstm_bwd
    assert "dc[i] = dct * fg;" in kernel.operation
    monkeypatch.setattr(kernel, "operation", kernel.operation.replace("dc[i] = dct * fg;",
                                                                      "dc[i] = dct;"))
    portable, _ = run_layer("lstm", "float64", False)
    fused, _ = run_layer("lstm", "float64", True)
    with pytest.raises(AssertionError):
        assert_close(portable, fused, **TOL["float64"])


def test_bad_arguments_are_refused(cuda_cells):
    H = 3
    a = np.zeros((2, H), np.float32)
    with pytest.raises(TypeError, match="contiguous"):
        cuda_cells._elman_fwd(a[:, ::2], a, a, a, np.ones(2, bool), 0, H, 0, a, a, size=2 * H)
    with pytest.raises(TypeError, match="arguments"):
        cuda_cells._elman_fwd(a, size=2 * H)


@pytest.mark.skipif(NVCC is None, reason="needs nvcc (the CUDA toolkit; no GPU needed)")
@pytest.mark.parametrize("ctype", ["float", "double"])
def test_kernels_compile_as_cuda(cuda_cells, tmp_path, ctype):

    kernels = [k for k in vars(cuda_cells).values() if isinstance(k, CpuElementwiseKernel)]
    assert len(kernels) == 6                         # Elman, GRU, LSTM; forward and backward
    for k in kernels:
        src, ptx = tmp_path / f"{k.name}.cu", tmp_path / f"{k.name}.ptx"
        src.write_text(k.source(ctype, cuda=True))
        proc = subprocess.run([NVCC, "--ptx", "-o", str(ptx), str(src)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{k.name}: {proc.stderr[-3000:]}"
        assert f".entry {k.name}(" in ptx.read_text()
