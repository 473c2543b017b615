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
* ``cuda-graph-on-cpu``: the ``cuda-graph`` engine's plans (static buffers,
  recorded operations, copies in and out) run eagerly on NumPy with the same
  C++-compiled kernels;
* ``reference`` checkpointed, on NumPy and on array_api_strict's device;
* ``cupy`` and ``cuda-graph`` on a GPU, when one is present (``pytest -m gpu``).
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
from scratchrnn.engines.cuda_graph import CudaGraphEngine, EagerRunner
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


def graph_on_cpu_engine(max_plans: int = 32) -> CudaGraphEngine:
    """The cuda-graph engine's plans on NumPy, kernels compiled as C++, ops run eagerly."""
    return CudaGraphEngine(CudaOnCpuTarget(), max_plans=max_plans, runner=EagerRunner(np))


_GRAPH_ON_CPU = []


def engine_for(name: str):
    """(engine spec for the layer, device) of a grid engine id."""
    if name == "cupy-on-cpu":
        return cuda_on_cpu_engine(), "cpu"
    if name == "cuda-graph-on-cpu":
        if not _GRAPH_ON_CPU:
            _GRAPH_ON_CPU.append(graph_on_cpu_engine())
        return _GRAPH_ON_CPU[0], "cpu"
    if name == "reference-strict":
        return "reference", "strict"
    if name in ("cupy", "cuda-graph"):
        return name, "cuda"
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


GRID_ENGINES = (["numba"] if HAS_NUMBA else []) + \
    (["cupy-on-cpu", "cuda-graph-on-cpu"] if CXX else []) + \
    ["reference", "reference-strict"] + \
    ([pytest.param(e, marks=pytest.mark.gpu) for e in ("cupy", "cuda-graph")] if HAS_GPU else [])


def engine_runs():
    """(engine, checkpoint_every) pairs: every engine plain and checkpointed; the
    reference checkpointed only (plain, it is what the others are compared with)."""
    runs = []
    for e in GRID_ENGINES:
        name = e.values[0] if hasattr(e, "values") else e
        marks = e.marks if hasattr(e, "marks") else ()
        for every in ([3] if name == "reference" else [None, 3]):
            runs.append(pytest.param(name, every, marks=marks,
                                     id=f"{name}-{'ckpt3' if every else 'plain'}"))
    return runs


@pytest.mark.parametrize("record", [False, True], ids=["norec", "rec"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("h0", [False, True], ids=["zero-h0", "h0"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("engine, every", engine_runs())
def test_engine_equals_reference(engine, every, cell, lengths, bidirectional, h0, dtype,
                                 record):
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
# The cuda-graph engine's plans, on the CPU (and on a GPU when there is one)
# --------------------------------------------------------------------------- #
def graph_engines() -> list:
    engines_ = [pytest.param("cpu", marks=pytest.mark.skipif(CXX is None, reason="no C++"))]
    if HAS_GPU:
        engines_.append(pytest.param("cuda", marks=pytest.mark.gpu))
    return engines_


def make_graph_engine(where: str, max_plans: int = 32) -> CudaGraphEngine:
    if where == "cpu":
        return graph_on_cpu_engine(max_plans)
    return CudaGraphEngine(max_plans=max_plans)


def train_steps(layer, engine, be, steps: int, dtype: str = "float64", lengths=None):
    """A few steps of forward, backward and SGD (each step replaces p.data) with ``engine``."""
    rng = np.random.default_rng(11)
    x = be.asarray(rng.standard_normal((T, BATCH, I)), dtype=dtype)
    for step in range(steps):
        if engine is not None:
            layer.engine_for = lambda x, e=engine: e
        out, _ = layer(x, None, lengths if lengths is None else lengths[step % len(lengths)])
        layer.zero_grad()
        layer.backward(be.asarray(np.cos(B.to_numpy(out)), dtype=dtype))
        for p in layer.parameters():
            p.data = p.data - 0.1 * p.grad            # a new array: the graph must follow it
    return {n: B.to_numpy(p.data) for n, p in layer.named_parameters()}


@pytest.mark.parametrize("where", graph_engines())
@pytest.mark.parametrize("cell", ["lstm", "gru", "lstm_proj"])
def test_graph_follows_new_weights_and_lengths(where, cell):
    """Replayed plans read the weights an optimizer has just replaced and new lengths."""
    be = B.get_backend(where)
    lengths = [np.array([T, 3, 0, 5]), np.array([2, T, 6, 1]), None]
    make = lambda: CELLS[cell](input_size=I, hidden_size=H, num_layers=2,  # noqa: E731
                               bidirectional=True, dtype="float64", device=where,
                               generator=B.Generator(1), engine="reference")
    graph = make_graph_engine(where)
    got = train_steps(make(), graph, be, 4, lengths=lengths)
    want = train_steps(make(), None, be, 4, lengths=lengths)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-12, err_msg=name)
    # one plan per (layer input size, direction, masked or not), reused across the steps
    assert graph.plans() <= 2 * 2 * 2


@pytest.mark.parametrize("where", graph_engines())
def test_graph_pool_is_bounded_and_falls_back(where):
    be = B.get_backend(where)
    import scratchrnn as sr

    graph = make_graph_engine(where, max_plans=1)
    layer = sr.LSTM(I, H, num_layers=2, dtype="float64", device=where, engine="reference",
                    generator=B.Generator(2))
    ref = sr.LSTM(I, H, num_layers=2, dtype="float64", device=where, engine="reference",
                  generator=B.Generator(2))
    x = be.asarray(np.random.default_rng(0).standard_normal((T, BATCH, I)), dtype="float64")
    layer.engine_for = lambda x: graph
    with pytest.warns(RuntimeWarning, match="in use"):   # layer 1 finds layer 0's plan taken
        out, _ = layer(x)
    assert graph.plans() == 1
    np.testing.assert_allclose(B.to_numpy(out), B.to_numpy(ref(x)[0]), rtol=1e-12)
    layer.backward(be.asarray(np.ones(out.shape), dtype="float64"))
    ref.backward(be.asarray(np.ones(out.shape), dtype="float64"))
    for (n, p), (_, q) in zip(layer.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(B.to_numpy(p.grad), B.to_numpy(q.grad), rtol=1e-10,
                                   atol=1e-12, err_msg=n)
    layer(be.asarray(np.ones((T + 1, BATCH, I)), dtype="float64"))     # a new key evicts
    assert graph.plans() == 1


@pytest.mark.skipif(CXX is None, reason="needs a C++ compiler")
def test_graph_capture_failure_falls_back_with_one_warning():
    import scratchrnn as sr

    class Failing:
        def run(self, plan, which, ops):
            raise RuntimeError("operation not permitted when stream is capturing")

    graph = CudaGraphEngine(CudaOnCpuTarget(), runner=Failing())
    layer = sr.GRU(I, H, dtype="float64", engine="reference", generator=B.Generator(0))
    ref = sr.GRU(I, H, dtype="float64", engine="reference", generator=B.Generator(0))
    layer.engine_for = lambda x: graph
    x = np.random.default_rng(0).standard_normal((T, BATCH, I))
    with pytest.warns(RuntimeWarning, match="capture failed.*eager 'cupy' engine"):
        out, _ = layer(x)
    np.testing.assert_allclose(out, ref(x)[0], rtol=1e-12)
    layer.backward(np.ones_like(out))
    ref.backward(np.ones_like(out))
    np.testing.assert_allclose(layer.weight_hh_l0.grad, ref.weight_hh_l0.grad, rtol=1e-10)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # one line, not one per call
        layer(x)
    assert graph.plans() == 0                               # nothing half-built is kept


@pytest.mark.skipif(CXX is None, reason="needs a C++ compiler")
def test_graph_plan_records_one_product_and_one_kernel_per_step():
    import scratchrnn as sr

    graph = graph_on_cpu_engine()
    layer = sr.GRU(I, H, dtype="float32", engine="reference")
    layer.engine_for = lambda x: graph
    layer(np.ones((T, BATCH, I), np.float32))
    layer.backward(np.ones((T, BATCH, H), np.float32))
    (plan,) = [p for ps in graph._pool.values() for p in ps]
    kinds = [op[0] for op in plan.forward]
    assert kinds == ["gemm"] + ["gemm", "launch"] * T      # x W_ih^T, then h W_hh^T + kernel
    (b, ops) = plan.backward[False]
    kinds = [op[0] for op in ops]
    assert kinds[:2 * T] == ["launch", "gemm"] * T          # kernel, then da_h W_hh
    # after the loop: dW_ih, dW_hh, the two bias sums (GRU: da_x and da_h), dx, dh_0
    assert kinds[2 * T:] == ["gemm"] * 5 + ["launch"]
    assert not plan.in_use                                  # released by backward


# --------------------------------------------------------------------------- #
# cuBLAS's argument mapping, checked against NumPy
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("pad", [0, 3], ids=["contiguous", "strided-rows"])
def test_cublas_argument_mapping(trans_a, trans_b, pad):
    from scratchrnn.engines.cublas import column_major_gemm, gemm_args

    rng = np.random.default_rng(0)
    M, N, K = 4, 3, 5
    a = rng.standard_normal((K, M) if trans_a else (M, K))
    b = rng.standard_normal((N, K) if trans_b else (K, N))
    want = (a.T if trans_a else a) @ (b.T if trans_b else b)

    def stored(arr):            # row-major storage with `pad` extra elements per row
        buf = np.zeros((arr.shape[0], arr.shape[1] + pad))
        buf[:, :arr.shape[1]] = arr
        return buf.ravel(), arr.shape[1] + pad

    a_buf, lda_row = stored(a)
    b_buf, ldb_row = stored(b)
    c_buf = np.full(M * (N + pad), 7.0)
    g = gemm_args((M, N), a.shape, b.shape, trans_a, trans_b, lda_row, ldb_row, N + pad)
    # cuBLAS gets our B as its A and our A as its B
    column_major_gemm(g["transa"], g["transb"], g["m"], g["n"], g["k"], 1.0, b_buf, g["lda"],
                      a_buf, g["ldb"], 0.0, c_buf, g["ldc"])
    got = c_buf.reshape(M, N + pad)[:, :N]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_cublas_mapping_refuses_shapes_that_do_not_chain():
    from scratchrnn.engines.cublas import gemm_args

    with pytest.raises(ValueError, match="do not chain"):
        gemm_args((4, 3), (4, 5), (6, 3), False, False)


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
    for extra in ({"SCRATCHRNN_ENGINE": "reference"}, {"SCRATCHRNN_FAST": "0"}):
        env = dict(os.environ, **extra)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        assert out == ["reference", "auto"], extra
    env = dict(os.environ, SCRATCHRNN_ENGINE="fastest")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "SCRATCHRNN_ENGINE: expected one of" in proc.stderr


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


def test_a_numba_that_fails_to_import_gives_the_reference_engine(tmp_path):
    """Installed but broken (say, built for another NumPy): 'auto' still runs, on reference."""
    fake = tmp_path / "numba"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('numba built for another NumPy')\n")
    code = (
        "import numpy as np, scratchrnn as sr\n"
        "from scratchrnn import engines\n"
        "assert engines.available_engines() == ['reference'], engines.available_engines()\n"
        "m = sr.GRU(4, 5); x = np.ones((3, 2, 4), np.float32)\n"
        "out, _ = m(x); m.backward(np.ones_like(out))\n"
        "assert m.engine_for(x).name == 'reference'\n"
        "print('ok')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.mark.skipif(not HAS_NUMBA, reason="needs numba")
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("mkl", [False, True], ids=["numpy-blas", "mkl"])
def test_numba_engine_with_and_without_mkl_equals_reference(cell, mkl, monkeypatch):
    """Both product paths of the numba engine (NumPy's BLAS; MKL with W_hh packed once)."""
    from scratchrnn.backend import mkl_blas
    from scratchrnn.engines import fused

    if mkl and mkl_blas.load(enable=True) is None:
        pytest.skip(f"MKL: {mkl_blas.why_not()}")
    monkeypatch.setenv("SCRATCHRNN_MKL", "1" if mkl else "0")
    monkeypatch.setattr(fused.MklEager, "SMALL", 0)     # these small products through MKL too
    if not mkl:
        monkeypatch.setattr(fused.NumbaTarget, "mkl", staticmethod(lambda: None))
    import scratchrnn as sr

    cls = {"lstm": sr.LSTM, "gru": sr.GRU, "rnn_tanh": sr.RNN}[cell]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 5, 6))
    d_out = rng.standard_normal((7, 5, 2 * 4))
    got = {}
    for engine in ("reference", "numba"):
        layer = cls(6, 4, num_layers=2, bidirectional=True, dtype="float64", engine=engine)
        layer.load_state_dict({k: rng.standard_normal(v.shape) * 0.5
                               for k, v in layer.state_dict().items()}
                              if engine == "reference" else got["state"])
        got.setdefault("state", layer.state_dict())
        out, _ = layer(x)
        layer.zero_grad()
        dx, _ = layer.backward(d_out)
        got[engine] = (out, dx, {k: p.grad for k, p in layer.named_parameters()})
    ref, fast = got["reference"], got["numba"]
    np.testing.assert_allclose(fast[0], ref[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast[1], ref[1], rtol=1e-11, atol=1e-12)
    for k in ref[2]:
        np.testing.assert_allclose(fast[2][k], ref[2][k], rtol=1e-10, atol=1e-12, err_msg=k)


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
def test_two_steps_accumulate(engine):
    """Forward + backward twice adds the same gradients again (nothing left over in a tape)."""
    import scratchrnn as sr

    layer = sr.GRU(I, H, dtype="float64", generator=B.Generator(0), engine=engine)
    x = np.random.default_rng(0).standard_normal((T, BATCH, I))
    out, _ = layer(x)
    d = np.ones_like(out)
    dx1, _ = layer.backward(d)
    once = {n: p.grad.copy() for n, p in layer.named_parameters()}
    layer(x)
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
@pytest.mark.parametrize("suite, sample", [
    # finite differences on a GPU are slow: a sample of the configurations, each cell
    ("tests/test_gradcheck_layers.py", "L2-bi-lengths-h0 and not dropout"),
    ("tests/test_parity_torch.py", "float64_parity and (0 or 1 or 2 or 3 or 4 or 5) or larger"),
])
def test_suite_passes_on_cupy(suite, sample):
    env = dict(os.environ, SCRATCHRNN_BACKEND="cupy")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           suite, "-k", sample], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
