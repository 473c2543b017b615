"""Checkpointed BPTT (``checkpoint_every``): exactly the normal gradients, far less tape.

Forward keeps only the carry entering every k-th step; backward replays each
segment's forward from it. The replay repeats the same computation, so every
result must be bit-for-bit the normal one, on the portable path (NumPy and
array_api_strict) and on the fused numba path.
"""

from __future__ import annotations

import importlib.util
import tracemalloc

import numpy as np
import pytest
from layer_results import CELLS, collect_results

import scratchrnn as sr
from scratchrnn import backend as B
from scratchrnn.backend import fast_scan
from scratchrnn.nn.scan import SegmentReplay

HAS_NUMBA = importlib.util.find_spec("numba") is not None
PATHS = ["portable", "strict"] + (["fused"] if HAS_NUMBA else [])
T, BATCH, I, H = 11, 3, 4, 5


@pytest.fixture(autouse=True)
def restore_switch():
    old = B.fast_paths_enabled()
    yield
    B.set_fast_paths(old)


def run(cell: str, path: str, every, *, lengths=None, bidirectional=False, num_layers=1,
        dtype="float64", seed=0) -> dict:
    B.set_fast_paths(path == "fused")
    device = "strict" if path == "strict" else "cpu"
    be = B.get_backend(device)
    layer = CELLS[cell](input_size=I, hidden_size=H, num_layers=num_layers,
                        bidirectional=bidirectional, dtype=dtype, device=device,
                        generator=B.Generator(seed), checkpoint_every=every)
    layer.record_hidden_grads = True
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    x = be.asarray(rng.standard_normal((T, BATCH, I)), dtype=dtype)
    h0 = be.asarray(rng.standard_normal((num_layers * D, BATCH, H)), dtype=dtype)
    state = (h0, h0 * 0.5) if cell == "lstm" else h0
    lens = None if lengths is None else np.asarray(lengths)
    out, h_n = layer(x, state, lens)
    d_out = be.asarray(rng.standard_normal(tuple(out.shape)), dtype=dtype)
    dx, dh0 = layer.backward(d_out)
    res = collect_results(layer, out, h_n, dx, dh0)
    res["_tapes"] = layer._tapes
    return res


def assert_identical(a: dict, b: dict) -> None:
    keys = [k for k in a if not k.startswith("_")]
    assert keys == [k for k in b if not k.startswith("_")]
    for k in keys:
        assert np.array_equal(a[k], b[k]), f"{k}: max diff {np.abs(a[k] - b[k]).max()}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("every", [1, 3, True, 11, 50])
def test_gradients_exactly_equal(cell, path, every):
    normal = run(cell, path, None, lengths=[T, 6, 0])
    ckpt = run(cell, path, every, lengths=[T, 6, 0])
    assert_identical(normal, ckpt)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_bidirectional_two_layers_float32(cell, path):
    kw = dict(bidirectional=True, num_layers=2, dtype="float32", lengths=[T, 1, 7])
    assert_identical(run(cell, path, None, **kw), run(cell, path, 4, **kw))


def test_the_comparison_can_fail():
    a = run("lstm", "portable", None)
    b = run("lstm", "portable", 3, seed=1)
    with pytest.raises(AssertionError):
        assert_identical(a, b)


@pytest.mark.parametrize("path", PATHS)
def test_tape_keeps_only_segment_carries(path):
    res = run("lstm", path, 3)
    (tape,) = res["_tapes"].values()
    if isinstance(tape, fast_scan.FastTape):
        assert tape.k == 3
        assert sorted(tape.checkpoints) == [0, 3, 6, 9]        # ⌈11 / 3⌉ entry carries
        assert list(tape.segments) == [9]                      # only the last segment run
        assert tape.segments[9].hs.shape[0] == 2 + 1           # its 2 steps + entry slot
    else:
        assert isinstance(tape.caches, SegmentReplay)
        assert sorted(tape.caches.starts) == [0, 3, 6, 9]


def test_auto_segment_length_is_sqrt_T():
    assert fast_scan.segment_length(2000, True) == 45
    assert fast_scan.segment_length(2000, "auto") == 45
    assert fast_scan.segment_length(1, True) == 1
    assert fast_scan.segment_length(10, 4) == 4


@pytest.mark.parametrize("bad", [0, -2, 1.5, "sometimes"])
def test_bad_checkpoint_every_is_rejected(bad):
    with pytest.raises(ValueError, match="checkpoint_every"):
        sr.LSTM(3, 4, checkpoint_every=bad)


@pytest.mark.parametrize("path", [p for p in PATHS if p != "strict"])
def test_forward_memory_shrinks(path):
    """Bytes held between forward and backward: ~T steps normally, ~√T checkpointed."""
    B.set_fast_paths(path == "fused")
    Tl, Bn, Hl = 400, 8, 32
    x = np.random.default_rng(0).standard_normal((Tl, Bn, 16))

    def held(every) -> int:
        layer = sr.LSTM(16, Hl, dtype="float64", checkpoint_every=every)
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
