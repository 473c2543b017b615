"""Every engine equals the reference engine, on one grid.

The grid: cells (Elman tanh/ReLU, GRU, LSTM, LSTM with a projection) ×
lengths or not × one or two directions × an initial state or not ×
float32/float64 × recording ∂L/∂h_t or not × checkpointed BPTT or not. Each
case runs one two-layer forward + backward with an engine and compares every
result (outputs, final states, ∂L/∂x, ∂L/∂initial states, every parameter
gradient, ∂L/∂h_t) with the reference engine's plain run.

The engines on the grid:

* ``numba`` (with the ``[fast]`` extra);
* ``cupy-on-cpu``: the ``cupy`` engine's CUDA kernel sources compiled as C++
  and driven by the same fused driver on NumPy arrays (``cuda_on_cpu.py``);
* ``reference`` checkpointed, on NumPy and on array_api_strict's device;
* ``cupy`` on a GPU, when one is present (``pytest -m gpu``).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cuda_on_cpu import CXX, NVCC, CpuElementwiseKernel, CudaOnCpuTarget
from layer_results import CELLS, assert_close, collect_results

from scratchrnn import backend as B
from scratchrnn import engines
from scratchrnn.cells import CELLS as CELL_SPECS
from scratchrnn.engines.fused import FusedEngine

HAS_NUMBA = "numba" in engines.available_engines()
HAS_GPU = B.cuda_available()
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-5, atol=2e-6)}
T, BATCH, I, H = 7, 4, 5, 6
LENGTHS = np.array([T, 3, 0, 5])
ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def cuda_on_cpu_engine() -> FusedEngine:
    return FusedEngine(CudaOnCpuTarget())


def engine_for(name: str):
    """(engine spec for the layer, device) of a grid engine id."""
    if name == "cupy-on-cpu":
        return cuda_on_cpu_engine(), "cpu"
    if name == "reference-strict":
        return "reference", "strict"
    if name == "cupy":
        return "cupy", "cuda"
    return name, "cpu"


def run(cell: str, engine, device: str, dtype: str, *, lengths: bool, bidirectional: bool,
        h0: bool, record: bool, every, seed: int = 3) -> dict[str, np.ndarray]:
    """One forward + backward of a 2-layer layer; every result as host float64."""
    be = B.get_backend(device)
    layer = CELLS[cell](input_size=I, hidden_size=H, num_layers=2, bidirectional=bidirectional,
                        dtype=dtype, device=device, generator=B.Generator(seed),
                        checkpoint_every=every,
                        engine=engine if isinstance(engine, str) else "reference")
    if not isinstance(engine, str):            # an engine object outside the registry
        layer.engine_for = lambda x, e=engine: (engines.Checkpointed(e, every) if every else e)
    for _, p in layer.named_parameters():      # non-zero biases, larger weights
        p.data = p.data * 2.0
    layer.record_hidden_grads = record
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    x = be.asarray(rng.standard_normal((T, BATCH, I)), dtype=dtype)
    state = None
    if h0:
        shapes = [s for s in layer._state_shapes(BATCH)]
        state = tuple(be.asarray(rng.standard_normal(s), dtype=dtype) for s in shapes)
        state = state if len(state) == 2 else state[0]
    out, h_n = layer(x, state, LENGTHS if lengths else None)
    d_out = be.asarray(rng.standard_normal(tuple(out.shape)), dtype=dtype)
    dh_n = tuple(be.asarray(rng.standard_normal(s), dtype=dtype)
                 for s in layer._state_shapes(BATCH))
    dx, dh0 = layer.backward(d_out, dh_n if len(dh_n) == 2 else dh_n[0])
    assert D * layer.output_size == out.shape[2]
    ran = {t.engine.name for t in layer._tapes.values()}
    expected = engine.name if not isinstance(engine, str) else \
        engines.select_engine(engine, x).name
    assert ran == {expected + ("+checkpointed" if every else "")}   # the engine really ran
    return collect_results(layer, out, h_n, dx, dh0)


@functools.cache
def reference(cell, dtype, lengths, bidirectional, h0, record) -> dict[str, np.ndarray]:
    return run(cell, "reference", "cpu", dtype, lengths=lengths, bidirectional=bidirectional,
               h0=h0, record=record, every=None)


GRID_ENGINES = (["numba"] if HAS_NUMBA else []) + (["cupy-on-cpu"] if CXX else []) + \
    ["reference", "reference-strict"] + ([pytest.param("cupy", marks=pytest.mark.gpu)]
                                         if HAS_GPU else [])


@pytest.mark.parametrize("every", [None, 3], ids=["plain", "ckpt3"])
@pytest.mark.parametrize("record", [False, True], ids=["norec", "rec"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("h0", [False, True], ids=["zero-h0", "h0"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("engine", GRID_ENGINES)
def test_engine_equals_reference(engine, cell, lengths, bidirectional, h0, dtype, record,
                                 every):
    if engine == "reference" and every is None:
        pytest.skip("the reference itself")
    spec, device = engine_for(engine)
    got = run(cell, spec, device, dtype, lengths=lengths, bidirectional=bidirectional, h0=h0,
              record=record, every=every)
    want = reference(cell, dtype, lengths, bidirectional, h0, record)
    assert_close(want, got, **TOL[dtype])


def test_the_comparison_can_fail():
    """Different weights (another seed) are caught."""
    a = reference("lstm", "float64", True, True, True, True)
    b = run("lstm", "reference", "cpu", "float64", lengths=True, bidirectional=True, h0=True,
            record=True, every=3, seed=4)
    with pytest.raises(AssertionError):
        assert_close(a, b, **TOL["float64"])


@pytest.mark.skipif(CXX is None, reason="needs a C++ compiler")
def test_a_wrong_kernel_is_caught(monkeypatch):
    """A kernel that drops the forget gate from the LSTM's dc recursion fails the grid check."""
    module = CudaOnCpuTarget().module
    real_source = module.backward_source

    def broken(cell):
        ins, outs, body = real_source(cell)
        assert "D1[i] = (v_dc * v_k_f);" in body
        return ins, outs, body.replace("D1[i] = (v_dc * v_k_f);", "D1[i] = v_dc;")

    monkeypatch.setattr(module, "backward_source", broken)
    module._compiled.clear()
    target = CudaOnCpuTarget.__new__(CudaOnCpuTarget)
    target.module = module
    eng = FusedEngine(target)
    try:
        got = run("lstm", eng, "cpu", "float64", lengths=False, bidirectional=False, h0=True,
                  record=False, every=None)
    finally:
        module._compiled.clear()
    want = reference("lstm", "float64", False, False, True, False)
    with pytest.raises(AssertionError):
        assert_close(want, got, **TOL["float64"])


@pytest.mark.skipif(CXX is None, reason="needs a C++ compiler")
def test_one_kernel_launch_per_step_each_way(monkeypatch):
    calls = {"n": 0}
    real = CpuElementwiseKernel.__call__

    def counting(self, *args, size):
        calls["n"] += 1
        return real(self, *args, size=size)

    monkeypatch.setattr(CpuElementwiseKernel, "__call__", counting)
    run("gru", cuda_on_cpu_engine(), "cpu", "float32", lengths=True, bidirectional=True,
        h0=False, record=False, every=None)
    assert calls["n"] == 2 * T * 2 * 2          # 2 layers × 2 directions, one kernel a step


@pytest.mark.skipif(NVCC is None, reason="needs nvcc (the CUDA toolkit; no GPU needed)")
@pytest.mark.parametrize("ctype", ["float", "double"])
def test_kernels_compile_as_cuda(tmp_path, ctype):
    module = CudaOnCpuTarget().module
    kernels = [module._carry_in, module._finish_projection]
    for spec in CELL_SPECS.values():
        k = module.kernels(spec)
        kernels += [k.forward_kernel, k.backward_kernel]
    for k in kernels:
        src, ptx = tmp_path / f"{k.name}.cu", tmp_path / f"{k.name}.ptx"
        src.write_text(k.source(ctype, cuda=True))
        proc = subprocess.run([NVCC, "--ptx", "-o", str(ptx), str(src)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{k.name}: {proc.stderr[-3000:]}"
        assert f".entry {k.name}(" in ptx.read_text()


# --------------------------------------------------------------------------- #
# Choosing an engine
# --------------------------------------------------------------------------- #
def test_auto_picks_the_best_available():
    import scratchrnn as sr

    x = np.zeros((3, 2, 4), np.float32)
    layer = sr.LSTM(4, 5)
    assert layer.engine == "auto"
    assert layer.engine_for(x).name == ("numba" if HAS_NUMBA else "reference")
    strict = B.get_backend("strict")
    assert sr.LSTM(4, 5, device="strict").engine_for(
        strict.asarray(x)).name == "reference"
    assert sr.LSTM(4, 5, checkpoint_every=2).engine_for(x).name.endswith("+checkpointed")
    assert "engine='reference'" in repr(sr.GRU(4, 5, engine="reference"))


def test_bad_engine_names_and_mismatches_are_refused():
    import scratchrnn as sr

    with pytest.raises(ValueError, match="engine: expected one of"):
        sr.LSTM(4, 5, engine="fast")
    if HAS_NUMBA:
        layer = sr.LSTM(4, 5, device="strict", engine="numba")
        x = B.get_backend("strict").asarray(np.zeros((3, 2, 4)), dtype="float32")
        with pytest.raises(TypeError, match="engine 'numba' cannot run"):
            layer(x)


def test_environment_variable_sets_only_the_default():
    code = ("import scratchrnn as sr; print(sr.LSTM(2, 3).engine, "
            "sr.LSTM(2, 3, engine='auto').engine)")
    env = dict(os.environ, SCRATCHRNN_ENGINE="reference")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["reference", "auto"]


def test_without_numba_everything_still_runs():
    """numba is optional: hide it and 'auto' takes the reference engine."""
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np, scratchrnn as sr\n"
        "from scratchrnn import engines\n"
        "assert engines.available_engines() == ['reference'], engines.available_engines()\n"
        "m = sr.LSTM(4, 5); x = np.ones((3, 2, 4), np.float32)\n"
        "out, _ = m(x); m.backward(np.ones_like(out))\n"
        "assert m.engine_for(x).name == 'reference'\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.mark.parametrize("engine", ["reference"] + (["numba"] if HAS_NUMBA else []))
@pytest.mark.parametrize("shape", [(0, 3), (4, 0)], ids=["T=0", "B=0"])
@pytest.mark.parametrize("every", [None, 2])
def test_empty_sequences_and_batches(engine, shape, every):
    import scratchrnn as sr

    Tn, Bn = shape
    layer = sr.LSTM(I, H, engine=engine, checkpoint_every=every, dtype="float64")
    h0 = (np.full((1, Bn, H), 0.5), np.full((1, Bn, H), -0.5))
    out, (h_n, c_n) = layer(np.zeros((Tn, Bn, I)), h0)
    assert out.shape == (Tn, Bn, H)
    np.testing.assert_array_equal(h_n, h0[0])         # nothing ran: the state is h0
    dx, (dh0, dc0) = layer.backward(np.zeros((Tn, Bn, H)), (np.ones((1, Bn, H)),) * 2)
    assert dx.shape == (Tn, Bn, I)
    np.testing.assert_array_equal(dh0, np.ones((1, Bn, H)))


@pytest.mark.parametrize("engine", ["reference"] + (["numba"] if HAS_NUMBA else []))
def test_backward_twice_accumulates(engine):
    """The tape survives backward: a second call adds the same gradients again."""
    import scratchrnn as sr

    layer = sr.GRU(I, H, dtype="float64", generator=B.Generator(0), engine=engine)
    x = np.random.default_rng(0).standard_normal((T, BATCH, I))
    out, _ = layer(x)
    d = np.ones_like(out)
    dx1, _ = layer.backward(d)
    once = {n: p.grad.copy() for n, p in layer.named_parameters()}
    dx2, _ = layer.backward(d)
    np.testing.assert_array_equal(dx1, dx2)
    for n, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[n], rtol=1e-14, err_msg=n)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed (extra 'fast')")
def test_float32_tanh_is_accurate():
    """The vectorisable rational tanh of the float32 kernels: |error| < 1e-6 everywhere."""
    import numba

    from scratchrnn.engines.numba_kernels import tanh

    @numba.njit
    def apply(a):
        out = np.empty_like(a)
        for j in range(a.size):
            out[j] = tanh(a[j])
        return out

    x = np.concatenate([np.linspace(-12, 12, 200_001), [0.0, 1e-30, -1e-30, 9.0, 40.0]])
    got = apply(x.astype(np.float32)).astype(np.float64)
    assert np.abs(got - np.tanh(x)).max() < 1e-6
    assert np.all(np.abs(got) <= 1.0)
    assert np.abs(apply(x) - np.tanh(x)).max() < 1e-15


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs CuPy and a CUDA device")
@pytest.mark.parametrize("suite", ["tests/test_gradcheck_layers.py", "tests/test_parity_torch.py"])
def test_suite_passes_on_cupy(suite):
    env = dict(os.environ, SCRATCHRNN_BACKEND="cupy")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           suite], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
