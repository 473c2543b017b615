"""A new cell is its pointwise math and nothing else: every engine runs it.

The coupled input-forget gate LSTM (CIFG: i = 1 - f, three gate blocks) is
defined here, in the test, as two pointwise functions and a CellSpec --
no file of the library changes -- and then runs on every engine: the
reference loop executes the functions on arrays, the numba and CUDA targets
compile them into their kernels (the CUDA ones as C++ on the CPU), and the
cuda-graph engine records its plan. All agree with the reference, whose
gradients agree with finite differences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from cuda_on_cpu import CXX
from layer_results import assert_close, collect_results
from test_engines import cuda_on_cpu_engine, graph_on_cpu_engine

from scratchrnn import backend as B
from scratchrnn import engines
from scratchrnn.backend import Array
from scratchrnn.cells.base import CellSpec, sigmoid, tanh
from scratchrnn.gradcheck import BOUND, check_gradients
from scratchrnn.nn.recurrent import RNNBase


@dataclass(slots=True)
class CIFGCache:
    f: Array       # (B, H) forget gate (the input gate is 1 - f)
    g: Array       # (B, H) cell candidate
    o: Array       # (B, H) output gate
    tanh_c: Array  # (B, H)


def cifg_forward(xf, xg, xo, hf, hg, ho, h_prev, c_prev):
    f = sigmoid(xf + hf)
    g = tanh(xg + hg)
    o = sigmoid(xo + ho)
    c = f * c_prev + (1.0 - f) * g
    tanh_c = tanh(c)
    h = o * tanh_c
    return (h, c), CIFGCache(f, g, o, tanh_c)


def cifg_backward(dh, dc, h_prev, c_prev, k):
    do = dh * k.tanh_c
    dc = dc + dh * k.o * (1.0 - k.tanh_c * k.tanh_c)
    daf = dc * (c_prev - k.g) * k.f * (1.0 - k.f)
    dag = dc * (1.0 - k.f) * (1.0 - k.g * k.g)
    dao = do * k.o * (1.0 - k.o)
    return (daf, dag, dao), None, (0.0, dc * k.f)


CIFG = CellSpec("test_cifg", gates=3, state=("h", "c"), cache=CIFGCache,
                forward=cifg_forward, backward=cifg_backward)
T, BATCH, I, H = 6, 3, 4, 5


def run(engine, dtype="float64", seed=0):
    layer = RNNBase(CIFG, I, H, num_layers=2, bidirectional=True, dtype=dtype,
                    generator=B.Generator(seed), engine="reference")
    if not isinstance(engine, str):
        layer.engine_for = lambda x, e=engine: e
    else:
        layer.engine = engine
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, BATCH, I)).astype(dtype)
    h0 = tuple(rng.standard_normal((4, BATCH, H)).astype(dtype) for _ in range(2))
    out, h_n = layer._run(x, h0, np.array([T, 2, 4]))
    dx, dh0 = layer._run_backward(rng.standard_normal(out.shape).astype(dtype),
                                  tuple(rng.standard_normal((4, BATCH, H)).astype(dtype)
                                        for _ in range(2)))
    return collect_results(layer, out, h_n, dx, dh0)


def other_engines():
    found = []
    if "numba" in engines.available_engines():
        found.append(pytest.param("numba", id="numba"))
    if CXX:
        found += [pytest.param("cupy-on-cpu", id="cupy-on-cpu"),
                  pytest.param("graph-on-cpu", id="cuda-graph-on-cpu")]
    return found


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("engine", other_engines())
def test_every_engine_runs_a_cell_defined_outside_the_library(engine, dtype):
    spec = {"cupy-on-cpu": cuda_on_cpu_engine, "graph-on-cpu": graph_on_cpu_engine}.get(engine)
    got = run(spec() if spec else engine, dtype)
    want = run("reference", dtype)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    assert_close(want, got, **tol)


def test_the_cell_defined_here_has_correct_gradients():
    gen = B.Generator(3)
    be = B.get_backend("cpu")
    layer = RNNBase(CIFG, I, H, dtype="float64", generator=gen, engine="reference")
    for _, p in layer.named_parameters():
        p.data = gen.uniform(-0.8, 0.8, p.shape, be, "float64")
    x = gen.normal((T, BATCH, I), be, "float64")
    h0 = tuple(gen.uniform(-0.9, 0.9, (1, BATCH, H), be, "float64") for _ in range(2))
    R = gen.normal((T, BATCH, H), be, "float64")

    def loss() -> float:
        out, _ = layer._run(x, h0, None)
        return float((out * R).sum())

    layer.zero_grad()
    loss()
    dx, dh0 = layer._run_backward(R, (None, None))
    wrt = {n: p.data for n, p in layer.named_parameters()} | {"input": x, "h0": h0[0],
                                                               "c0": h0[1]}
    analytic = {n: p.grad for n, p in layer.named_parameters()} | {"input": dx,
                                                                   "h0": dh0[0],
                                                                   "c0": dh0[1]}
    errors = check_gradients(loss, wrt, analytic)
    assert max(errors.values()) < BOUND, errors
