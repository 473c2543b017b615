"""scratchrnn.backend: backend specs, host <-> device copies, seeded randomness,
device/dtype moves of modules, scatter-add."""

from __future__ import annotations

import array_api_strict
import numpy as np
import pytest

import scratchrnn as sr
from scratchrnn import backend as B

# --------------------------------------------------------------------------- #
# get_backend
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("spec", ["numpy", "cpu", "np", " CPU ", "NumPy"])
def test_numpy_specs(spec):
    be = B.get_backend(spec)
    assert be.name == "numpy"
    assert be.label == "cpu"
    assert isinstance(be.zeros((2, 3), "float64"), np.ndarray)


def test_auto_is_numpy_without_a_gpu(monkeypatch):
    monkeypatch.setattr(B, "cuda_available", lambda: False)
    assert B.get_backend("auto").name == "numpy"


def test_auto_matches_cuda_availability():
    assert B.get_backend("auto").name == ("cupy" if B.cuda_available() else "numpy")


@pytest.mark.parametrize("spec", ["strict", "array_api_strict"])
def test_strict_spec(spec):
    be = B.get_backend(spec)
    assert be.name == "array_api_strict"
    assert be.xp is array_api_strict
    assert be.device == array_api_strict.Device("device1")
    assert be.label == "strict"
    z = be.zeros((2, 3), "float32")
    assert z.device == be.device and z.dtype == array_api_strict.float32


def test_backend_instance_passes_through():
    be = B.get_backend("strict")
    assert B.get_backend(be) is be


@pytest.mark.parametrize("spec", ["tpu", "", "numpy2", "metal:0"])
def test_bad_spec_names_device(spec):
    with pytest.raises(ValueError, match=r"device: expected one of .*'strict'.* got "
                       + repr(spec).replace("(", r"\(")):
        B.get_backend(spec)


def test_non_string_spec_is_a_type_error():
    with pytest.raises(TypeError, match="device: expected a str or Backend, got int"):
        B.get_backend(3)


def test_bad_dtype_name():
    with pytest.raises(ValueError, match=r"dtype: expected one of \('float32', 'float64'\), "
                                         r"got 'int8'"):
        B.get_backend("numpy").dtype("int8")


def test_env_var_sets_the_default(monkeypatch):
    monkeypatch.setenv("SCRATCHRNN_BACKEND", "strict")
    assert B.get_backend().name == "array_api_strict"
    layer = sr.GRU(2, 3)                       # no device= : the environment decides
    assert layer.backend.name == "array_api_strict"
    assert layer.weight_ih_l0.data.device == array_api_strict.Device("device1")
    monkeypatch.setenv("SCRATCHRNN_BACKEND", "cpu")
    assert B.get_backend().name == "numpy"
    monkeypatch.delenv("SCRATCHRNN_BACKEND")
    assert B.get_backend().name == "numpy"


def test_env_var_bad_value_raises(monkeypatch):
    monkeypatch.setenv("SCRATCHRNN_BACKEND", "quantum")
    with pytest.raises(ValueError, match="SCRATCHRNN_BACKEND: .*'quantum'"):
        B.get_backend()


# --------------------------------------------------------------------------- #
# host <-> device copies
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_asarray_to_numpy_round_trip(backend_name, dtype):
    host = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    be = B.get_backend(backend_name)
    dev = be.asarray(host)
    assert B.backend_of(dev).name == be.name
    assert B.dtype_name(dev) == dtype
    back = B.to_numpy(dev)
    assert isinstance(back, np.ndarray)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, host)


def test_asarray_casts_and_accepts_lists(backend_name):
    be = B.get_backend(backend_name)
    a = be.asarray([[1, 2], [3, 4]], dtype="float64")
    assert B.dtype_name(a) == "float64"
    np.testing.assert_array_equal(B.to_numpy(a), [[1.0, 2.0], [3.0, 4.0]])
    b = be.asarray(np.ones(3, dtype="float64"), dtype="float32")
    assert B.dtype_name(b) == "float32"


def test_strict_to_numpy_backend_and_back():
    strict, cpu = B.get_backend("strict"), B.get_backend("cpu")
    host = np.arange(12.0).reshape(3, 4)
    s = strict.asarray(host)
    assert s.device == strict.device
    n = cpu.asarray(s)                          # another backend's array -> here
    assert isinstance(n, np.ndarray)
    np.testing.assert_array_equal(n, host)
    s2 = strict.asarray(strict.asarray(n))       # strict -> strict keeps the values
    np.testing.assert_array_equal(B.to_numpy(s2), host)


def test_to_numpy_of_lists_and_scalars():
    np.testing.assert_array_equal(B.to_numpy([1.0, 2.0]), np.array([1.0, 2.0]))
    assert B.to_scalar(B.get_backend("strict").asarray(2.5)) == 2.5
    assert B.to_scalar(np.float64(-1.0)) == -1.0


def test_backend_of_rejects_non_arrays():
    with pytest.raises(TypeError, match="expected a NumPy, CuPy or array_api_strict array, "
                                        "got list"):
        B.backend_of([1.0])


def test_dtype_names_on_every_backend(backend_name):
    be = B.get_backend(backend_name)
    for name in ("float32", "float64"):
        assert B.dtype_name(be.zeros((1,), name)) == name
        assert B.dtype_name_of(be.dtype(name)) == name
        assert B.to_numpy_dtype(be.dtype(name)) == np.dtype(name)


# --------------------------------------------------------------------------- #
# Generator
# --------------------------------------------------------------------------- #


def test_generator_is_deterministic(backend_name):
    be = B.get_backend(backend_name)
    a = B.to_numpy(B.Generator(11).uniform(-1, 1, (4, 5), be, "float64"))
    b = B.to_numpy(B.Generator(11).uniform(-1, 1, (4, 5), be, "float64"))
    c = B.to_numpy(B.Generator(12).uniform(-1, 1, (4, 5), be, "float64"))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= -1 and a.max() <= 1
    n1 = B.to_numpy(B.Generator(3).normal((50,), be, "float64"))
    n2 = B.to_numpy(B.Generator(3).normal((50,), be, "float64"))
    np.testing.assert_array_equal(n1, n2)


def test_generator_state_round_trip():
    be = B.get_backend("numpy")
    g = B.Generator(5)
    g.uniform(0, 1, (3,), be)
    state = g.get_state()
    first = g.uniform(0, 1, (6,), be, "float64")
    g.set_state(state)
    np.testing.assert_array_equal(g.uniform(0, 1, (6,), be, "float64"), first)


def test_keep_mask_values_and_rate(backend_name):
    be = B.get_backend(backend_name)
    m = B.to_numpy(B.Generator(0).keep_mask(0.7, (200, 50), be, "float64"))
    assert set(np.unique(m)) <= {0.0, 1.0}
    assert abs(m.mean() - 0.7) < 0.02          # 10 000 Bernoulli draws: sd 0.0046


def test_same_seed_same_init_on_numpy_and_strict():
    for cls in (sr.RNN, sr.GRU, sr.LSTM):
        a = cls(3, 5, num_layers=2, bidirectional=True, device="numpy",
                generator=B.Generator(42))
        b = cls(3, 5, num_layers=2, bidirectional=True, device="strict",
                generator=B.Generator(42))
        c = cls(3, 5, num_layers=2, bidirectional=True, device="numpy",
                generator=B.Generator(43))
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb)
        for k in sa:
            assert B.backend_of(sb[k]).name == "array_api_strict"
            np.testing.assert_array_equal(B.to_numpy(sa[k]), B.to_numpy(sb[k]))
        assert not np.array_equal(sa["weight_hh_l1"], c.state_dict()["weight_hh_l1"])


def test_manual_seed_fixes_default_init():
    sr.manual_seed(123)
    a = sr.LSTM(2, 3).state_dict()
    sr.manual_seed(123)
    b = sr.LSTM(2, 3).state_dict()
    sr.manual_seed(124)
    c = sr.LSTM(2, 3).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["weight_ih_l0"], c["weight_ih_l0"])


# --------------------------------------------------------------------------- #
# Module.to
# --------------------------------------------------------------------------- #


def _trained_lstm() -> sr.LSTM:
    """A float64 LSTM whose gradients are non-zero."""
    layer = sr.LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64",
                    generator=B.Generator(0))
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    out, _ = layer(x)
    layer.backward(np.ones_like(out))
    return layer


def test_to_strict_and_back_keeps_values_and_gradients():
    layer = _trained_lstm()
    before = {n: (p.data.copy(), p.grad.copy()) for n, p in layer.named_parameters()}
    assert all(np.abs(g).max() > 0 for _, g in before.values())

    assert layer.to("strict") is layer
    assert layer.backend.name == "array_api_strict"
    for name, p in layer.named_parameters():
        assert B.backend_of(p.data).name == "array_api_strict", name
        assert B.backend_of(p.grad).name == "array_api_strict", name
        assert p.data.device == array_api_strict.Device("device1")
        np.testing.assert_array_equal(B.to_numpy(p.data), before[name][0])
        np.testing.assert_array_equal(B.to_numpy(p.grad), before[name][1])
    # the forward cache was on the old device: backward must refuse
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(None, (None, None))

    layer.to("cpu")
    for name, p in layer.named_parameters():
        assert isinstance(p.data, np.ndarray) and isinstance(p.grad, np.ndarray)
        assert p.data.dtype == np.float64
        np.testing.assert_array_equal(p.data, before[name][0])
        np.testing.assert_array_equal(p.grad, before[name][1])


def test_moved_module_computes_the_same():
    layer = sr.GRU(3, 4, dtype="float64", generator=B.Generator(2))
    x = np.random.default_rng(3).standard_normal((4, 2, 3))
    out_np, h_np = layer(x)
    layer.to("strict")
    out_s, h_s = layer(B.get_backend("strict").asarray(x))
    np.testing.assert_allclose(B.to_numpy(out_s), out_np, rtol=0, atol=1e-14)
    np.testing.assert_allclose(B.to_numpy(h_s), h_np, rtol=0, atol=1e-14)


def test_to_dtype_float64_and_back():
    layer = sr.RNN(3, 4, generator=B.Generator(0))          # float32 by default
    w32 = layer.weight_ih_l0.data.copy()
    assert w32.dtype == np.float32
    layer.to(dtype="float64")
    for _, p in layer.named_parameters():
        assert p.data.dtype == np.float64 and p.grad.dtype == np.float64
    np.testing.assert_array_equal(layer.weight_ih_l0.data, w32.astype(np.float64))
    out, h = layer(np.zeros((2, 1, 3)))                      # float64 input now accepted
    assert out.dtype == np.float64
    layer.to("strict", dtype="float32")
    assert B.dtype_name(layer.weight_hh_l0.data) == "float32"
    assert layer.backend.name == "array_api_strict"


# --------------------------------------------------------------------------- #
# Other backend services
# --------------------------------------------------------------------------- #


def test_index_add_accumulates_repeats(backend_name):
    be = B.get_backend(backend_name)
    target = be.asarray(np.zeros((4, 2)), dtype="float64")
    index = be.asarray(np.array([1, 3, 1, 1]))
    values = be.asarray(np.arange(8.0).reshape(4, 2), dtype="float64")
    got = B.to_numpy(B.index_add(target, index, values))
    want = np.zeros((4, 2))
    want[1] = [0 + 4 + 6, 1 + 5 + 7]
    want[3] = [2, 3]
    np.testing.assert_array_equal(got, want)


def test_index_add_portable_equals_numpy():
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 5, size=30)
    vals = rng.standard_normal((30, 3))
    fast = B.index_add(np.zeros((5, 3)), idx, vals)
    portable = B.index_add_portable(np.zeros((5, 3)), idx, vals)
    np.testing.assert_allclose(portable, fast, rtol=0, atol=1e-12)


def test_set_check_finite_returns_old_setting():
    old = B.set_check_finite(True)
    try:
        assert B.check_finite_enabled() is True
        assert B.set_check_finite(False) is True
        assert B.check_finite_enabled() is False
    finally:
        B.set_check_finite(old)


def test_device_specs_are_parsed_without_importing_cupy():
    assert B.parse_device("cpu") == ("numpy", 0) and B.parse_device("cpu:0") == ("numpy", 0)
    assert B.parse_device(" CUDA:1 ") == ("cupy", 1) and B.parse_device("auto") == ("auto", 0)
    assert B.parse_device("strict") == ("array_api_strict", 0)
    for bad in ("tpu", "cuda:x", "cuda:", "cuda:-1", ""):
        with pytest.raises(ValueError, match=f"device: expected one of .*got {bad!r}"):
            B.parse_device(bad)
    with pytest.raises(ValueError, match="--device: expected"):
        B.parse_device("gpu0", "--device")
