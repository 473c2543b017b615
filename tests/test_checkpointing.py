"""Checkpointed BPTT (``checkpoint_every``): the normal gradients, O(√T) memory.

Forward keeps only the carry entering every k-th step; backward replays each
segment's forward from it and runs the wrapped engine's normal backward over
that segment. ``test_engines.py`` holds every engine, checkpointed or not, to
the reference on its grid; this file checks what is particular to
checkpointing, on the reference engine (NumPy and array_api_strict) and the
numba engine: forward results bit-for-bit equal to the same engine's plain
run and gradients to a few units in the last place, the memory it saves,
and its argument.
"""

from __future__ import annotations

import importlib.util
import tracemalloc

import numpy as np
import pytest
from layer_results import CELLS, assert_same, collect_results

import scratchrnn as sr
from scratchrnn import backend as B
from scratchrnn import engines
from scratchrnn.engines.checkpointed import CheckpointTape, segment_length

HAS_NUMBA = importlib.util.find_spec("numba") is not None
PATHS = ["portable", "strict"] + (["fused"] if HAS_NUMBA else [])
T, BATCH, I, H = 11, 3, 4, 5


def engine_of(path: str) -> str:
    return "numba" if path == "fused" else "reference"


def run(cell: str, path: str, every, *, lengths=None, bidirectional=False, num_layers=1,
        dtype="float64", seed=0) -> dict:
    device = "strict" if path == "strict" else "cpu"
    be = B.get_backend(device)
    layer = CELLS[cell](input_size=I, hidden_size=H, num_layers=num_layers,
                        bidirectional=bidirectional, dtype=dtype, device=device,
                        generator=B.Generator(seed), checkpoint_every=every,
                        engine=engine_of(path))
    layer.record_hidden_grads = True
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    x = be.asarray(rng.standard_normal((T, BATCH, I)), dtype=dtype)
    shapes = layer._state_shapes(BATCH)
    state = tuple(be.asarray(rng.standard_normal(s), dtype=dtype) for s in shapes)
    state = state if len(state) == 2 else state[0]
    assert D * num_layers == shapes[0][0]
    lens = None if lengths is None else np.asarray(lengths)
    out, h_n = layer(x, state, lens)
    d_out = be.asarray(rng.standard_normal(tuple(out.shape)), dtype=dtype)
    dx, dh0 = layer.backward(d_out)
    res = collect_results(layer, out, h_n, dx, dh0)
    res["_tapes"] = layer._tapes
    return res


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("every", [1, 3, True, 11, 50])
def test_same_results_as_normal_path(cell, path, every):
    normal = run(cell, path, None, lengths=[T, 6, 0])
    ckpt = run(cell, path, every, lengths=[T, 6, 0])
    assert_same(normal, ckpt, "float64")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_bidirectional_two_layers_float32(cell, path):
    kw = dict(bidirectional=True, num_layers=2, dtype="float32", lengths=[T, 1, 7])
    assert_same(run(cell, path, None, **kw), run(cell, path, 4, **kw), "float32")


def test_the_comparison_can_fail():
    a = run("lstm", "portable", None)
    b = run("lstm", "portable", 3, seed=1)
    with pytest.raises(AssertionError):
        assert_same(a, b, "float64")
    c = run("lstm", "portable", 3)
    c["grad weight_hh_l0"][0, 0] *= 1 + 1e-9                 # a wrong sum would show
    with pytest.raises(AssertionError, match="weight_hh"):
        assert_same(a, c, "float64")


@pytest.mark.parametrize("path", PATHS)
def test_tape_keeps_only_segment_carries(path):
    device = "strict" if path == "strict" else "cpu"
    layer = sr.LSTM(I, H, dtype="float64", device=device, checkpoint_every=3,
                    engine=engine_of(path))
    layer(B.get_backend(device).asarray(np.ones((T, BATCH, I)), dtype="float64"))
    (tape,) = layer._tapes.values()
    assert isinstance(tape, CheckpointTape)
    assert tape.k == 3
    assert sorted(tape.starts) == [0, 3, 6, 9]                 # ⌈11 / 3⌉ entry carries
    s0, seg = tape.kept                                        # only the last segment run
    assert s0 == 9 and tuple(seg.x.shape) == (2, BATCH, I)
    assert seg.engine is engines.get_engine(engine_of(path))


def test_auto_segment_length_is_sqrt_T():
    assert segment_length(2000, True) == 45
    assert segment_length(2000, "auto") == 45
    assert segment_length(1, True) == 1
    assert segment_length(10, 4) == 4


@pytest.mark.parametrize("bad", [0, -2, 1.5, "sometimes"])
def test_bad_checkpoint_every_is_rejected(bad):
    with pytest.raises(ValueError, match="checkpoint_every"):
        sr.LSTM(3, 4, checkpoint_every=bad)


@pytest.mark.parametrize("path", [p for p in PATHS if p != "strict"])
def test_forward_memory_shrinks(path):
    """Bytes held between forward and backward: ~T steps normally, ~√T checkpointed."""
    Tl, Bn, Hl = 400, 8, 32
    x = np.random.default_rng(0).standard_normal((Tl, Bn, 16))

    def held(every) -> int:
        layer = sr.LSTM(16, Hl, dtype="float64", checkpoint_every=every,
                        engine=engine_of(path))
        layer(x)                                  # warm up (numba loading, caches)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        out, _ = layer(x)
        kept = tracemalloc.get_traced_memory()[0] - base - out.nbytes
        tracemalloc.stop()
        return kept

    normal, ckpt = held(None), held(True)
    step_bytes = Bn * Hl * 8
    assert normal > 5 * Tl * step_bytes          # gates, states, ... for every step
    assert ckpt < normal / 5


@pytest.mark.parametrize("path", [p for p in PATHS if p != "strict"])
def test_step_peak_memory_grows_like_sqrt_T(path):
    """Peak bytes of forward + backward beyond x, d_out, the outputs and dx:
    T steps of tape and gate gradients normally, O(√T) checkpointed."""
    Bn, Il, Hl = 8, 16, 32

    def extra_peak(Tl: int, every) -> int:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((Tl, Bn, Il))
        d_out = rng.standard_normal((Tl, Bn, Hl))
        layer = sr.LSTM(Il, Hl, dtype="float64", checkpoint_every=every,
                        engine=engine_of(path))
        layer(x)
        layer.backward(d_out)                     # warm up (numba loading, caches)
        tracemalloc.start()
        out, _ = layer(x)
        dx, _ = layer.backward(d_out)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak - out.nbytes - dx.nbytes

    normal, ckpt = extra_peak(400, None), extra_peak(400, True)
    assert ckpt < normal / 5
    # quadrupling T doubles the checkpointed peak (√T), and quadruples the normal one
    ckpt_4x, normal_4x = extra_peak(1600, True), extra_peak(1600, None)
    assert normal_4x > 3.5 * normal
    assert ckpt_4x < 2.6 * ckpt


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("every", [1, True])
def test_empty_sequence_returns_the_initial_state(path, every):
    """T = 0 with checkpointing: h_n = h0 and dh0 = dh_n, as without it (issue 11, item 10)."""
    device = "strict" if path == "strict" else "cpu"
    be = B.get_backend(device)
    layer = sr.GRU(I, H, dtype="float64", device=device, checkpoint_every=every,
                   engine=engine_of(path))
    h0 = be.asarray(np.full((1, BATCH, H), 0.25), dtype="float64")
    out, h_n = layer(be.asarray(np.zeros((0, BATCH, I)), dtype="float64"), h0)
    assert tuple(out.shape) == (0, BATCH, H)
    np.testing.assert_array_equal(B.to_numpy(h_n), B.to_numpy(h0))
    dx, dh0 = layer.backward(be.asarray(np.zeros((0, BATCH, H)), dtype="float64"), h0 * 2)
    np.testing.assert_array_equal(B.to_numpy(dh0), B.to_numpy(h0 * 2))
    assert all(float(B.to_numpy(p.grad).max(initial=0)) == 0 for p in layer.parameters())
