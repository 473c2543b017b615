"""The fused numba path equals the portable path, for every cell, in float32 and float64.

Each case runs the same layer twice, once with ``backend.set_fast_paths(False)``
(the portable loop of ``scratchrnn.nn.scan``) and once with the numba kernels,
and compares outputs, final states, ∂L/∂x, ∂L/∂initial state, every parameter
gradient and the recorded ∂L/∂h_t.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from layer_results import CELLS, assert_close, collect_results

import scratchrnn as sr
from scratchrnn import backend as B
from scratchrnn.backend import fast_scan
from scratchrnn.nn.scan import Tape

HAS_NUMBA = fast_scan.numba_available()
needs_numba = pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed (extra 'fast')")

TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-5, atol=2e-6)}
T, BATCH, I, H = 7, 4, 5, 6
pytestmark = pytest.mark.usefixtures("restore_fast_paths")


def run_layer(cell: str, dtype: str, fast: bool, *, lengths=None, bidirectional=False,
              h0=False, batch_first=False, num_layers=2, seed=3):
    """One forward + backward; returns a dict of every result array (as float64)."""
    B.set_fast_paths(fast)
    layer = CELLS[cell](input_size=I, hidden_size=H, num_layers=num_layers,
                        bidirectional=bidirectional, batch_first=batch_first, dtype=dtype,
                        generator=B.Generator(seed))
    for _, p in layer.named_parameters():      # non-zero biases, larger weights
        p.data = p.data * 2.0
    layer.record_hidden_grads = True
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    shape = (BATCH, T, I) if batch_first else (T, BATCH, I)
    x = rng.standard_normal(shape).astype(dtype)
    state = None
    if h0:
        state = rng.standard_normal((num_layers * D, BATCH, H)).astype(dtype)
        if cell == "lstm":
            state = (state, rng.standard_normal((num_layers * D, BATCH, H)).astype(dtype))
    out, h_n = layer(x, state, lengths)
    d_out = rng.standard_normal(out.shape).astype(dtype)
    dh_n = rng.standard_normal((num_layers * D, BATCH, H)).astype(dtype)
    dx, dh0 = layer.backward(d_out, (dh_n, dh_n[::-1].copy()) if cell == "lstm" else dh_n)
    tape_types = {type(t) for t in layer._tapes.values()}
    return collect_results(layer, out, h_n, dx, dh0), tape_types


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("case", ["plain", "lengths+h0", "bidirectional+lengths", "batch_first"])
def test_fast_equals_portable(cell, dtype, case):
    kw = {}
    if "lengths" in case:
        kw["lengths"] = np.array([T, 3, 0, 5])
    if "h0" in case:
        kw["h0"] = True
    if "bidirectional" in case:
        kw["bidirectional"] = True
        kw["h0"] = True
    if case == "batch_first":
        kw["batch_first"] = True
    portable, types_p = run_layer(cell, dtype, False, **kw)
    fast, types_f = run_layer(cell, dtype, True, **kw)
    assert types_p == {Tape}
    assert types_f == {fast_scan.FastTape}       # the fused path really ran
    assert_close(portable, fast, **TOL[dtype])


@needs_numba
def test_fast_path_differs_when_the_math_differs():
    """The comparison can fail: a different seed gives different weights."""
    a, _ = run_layer("lstm", "float64", False)
    b, _ = run_layer("lstm", "float64", True, seed=4)
    with pytest.raises(AssertionError):
        assert_close(a, b, **TOL["float64"])


@needs_numba
@pytest.mark.parametrize("cell", list(CELLS))
def test_backward_twice_accumulates(cell):
    """Forward + backward twice adds the same gradients again (a second backward
    after one forward is refused: issue 11)."""
    B.set_fast_paths(True)
    layer = CELLS[cell](input_size=I, hidden_size=H, dtype="float64", generator=B.Generator(0))
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


@needs_numba
def test_switch_and_dispatch_rules():
    x32 = np.zeros((2, 3, 4), dtype=np.float32)
    assert B.set_fast_paths(False) in (True, False)
    assert not fast_scan.applies("lstm", x32)
    B.set_fast_paths(True)
    assert fast_scan.applies("lstm", x32)
    assert fast_scan.applies("gru", x32.astype(np.float64))
    assert not fast_scan.applies("lstm", x32.astype(np.float16))
    assert not fast_scan.applies("lstm", np.zeros((0, 3, 4), np.float32))   # empty: portable
    assert not fast_scan.applies("some_new_cell", x32)


def test_environment_variable_turns_it_off():
    code = "from scratchrnn import backend as B; print(B.fast_paths_enabled())"
    for value, expected in (("0", "False"), ("1", "True")):
        env = dict(os.environ, SCRATCHRNN_FAST=value)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        assert out == expected


@needs_numba
def test_empty_batch_goes_through():
    B.set_fast_paths(True)
    layer = sr.GRU(I, H, dtype="float32")
    out, h_n = layer(np.zeros((T, 0, I), np.float32))
    assert out.shape == (T, 0, H) and h_n.shape == (1, 0, H)


@needs_numba
def test_float32_tanh_is_accurate():
    """The vectorisable rational tanh of the float32 kernels: |error| < 1e-6 everywhere."""
    import numba

    from scratchrnn.backend.numba_cells import tanh

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
    assert np.array_equal(apply(x), np.tanh(x)) or np.abs(apply(x) - np.tanh(x)).max() < 1e-15


def test_without_numba_everything_still_runs():
    """numba is optional: hide it and the layers take the portable path."""
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np, scratchrnn as sr\n"
        "from scratchrnn.backend import fast_scan\n"
        "x = np.ones((3, 2, 4), np.float32)\n"
        "assert not fast_scan.applies('lstm', x)\n"
        "m = sr.LSTM(4, 5); out, _ = m(x); m.backward(np.ones_like(out))\n"
        "assert type(m._tapes[(0, 0)]).__name__ == 'Tape'\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
