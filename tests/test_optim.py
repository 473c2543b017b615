"""Optimizers against hand-computed values and torch.optim, state round-trips, devices."""

from __future__ import annotations

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.nn.module import Module, Parameter
from scratchrnn.training import optim

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.2, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.3, eps=1e-6)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.05)),
]


class Two(Module):
    def __init__(self, be: B.Backend) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = Parameter(be.asarray(rng.standard_normal((3, 4)), dtype="float64"))
        self.b = Parameter(be.asarray(rng.standard_normal(4), dtype="float64"))


def grads(steps: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(1)
    return [[rng.standard_normal((3, 4)), rng.standard_normal(4)] for _ in range(steps)]


def run_ours(name: str, kw: dict, be: B.Backend, gs, model=None, opt=None):
    model = model or Two(be)
    opt = opt or getattr(optim, name)(model.named_parameters(), **kw)
    for g in gs:
        for p, gi in zip(model.parameters(), g):
            p.grad = be.asarray(gi, dtype="float64")
        opt.step()
    return model, opt


@pytest.mark.parametrize("name,kw", CASES)
def test_matches_torch(name, kw, backend_name):
    torch = pytest.importorskip("torch")
    be = B.get_backend(backend_name)
    gs = grads(6)
    model, _ = run_ours(name, kw, be, gs)
    init = Two(B.get_backend("numpy"))
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in init.parameters()]
    topt = getattr(torch.optim, name)(tparams, **kw)
    for g in gs:
        for p, gi in zip(tparams, g):
            p.grad = torch.tensor(gi)
        topt.step()
    for ours, theirs in zip(model.parameters(), tparams):
        np.testing.assert_allclose(B.to_numpy(ours.data), theirs.detach().numpy(),
                                   rtol=1e-12, atol=1e-12)


def test_hand_values():
    be = B.get_backend("numpy")
    # SGD with momentum 0.5 on g = 1 twice: step 1 moves 0.1, step 2 moves 0.1·1.5.
    p = Parameter(be.asarray([1.0], dtype="float64"))
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    for _ in range(2):
        p.grad = be.asarray([1.0], dtype="float64")
        opt.step()
    assert float(p.data[0]) == pytest.approx(1.0 - 0.1 - 0.15)
    # Adam's first step moves every coordinate by lr·g/(|g| + eps) ≈ lr·sign(g).
    p = Parameter(be.asarray([0.0, 0.0], dtype="float64"))
    opt = optim.Adam([p], lr=0.01)
    p.grad = be.asarray([3.0, -0.5], dtype="float64")
    opt.step()
    np.testing.assert_allclose(B.to_numpy(p.data), [-0.01, 0.01], rtol=1e-6)
    # Adagrad: sum = g², step = lr·g/|g|, then lr·g/√(2g²).
    p = Parameter(be.asarray([0.0], dtype="float64"))
    opt = optim.Adagrad([p], lr=0.1)
    for _ in range(2):
        p.grad = be.asarray([2.0], dtype="float64")
        opt.step()
    assert float(p.data[0]) == pytest.approx(-0.1 - 0.1 / np.sqrt(2.0), rel=1e-9)


@pytest.mark.parametrize("name,kw", CASES[1::2])
def test_state_dict_round_trip(name, kw):
    be = B.get_backend("numpy")
    gs = grads(5)
    full, _ = run_ours(name, kw, be, gs)
    half, opt = run_ours(name, kw, be, gs[:3])
    sd = opt.state_dict()
    host = {**sd, "state": {n: {k: B.to_numpy(v).copy() for k, v in s.items()}
                            for n, s in sd["state"].items()}}
    resumed = Two(be)
    resumed.load_state_dict(half.state_dict())
    opt2 = getattr(optim, name)(resumed.named_parameters(), **kw)
    opt2.load_state_dict(host)
    run_ours(name, kw, be, gs[3:], resumed, opt2)
    for a, b in zip(full.parameters(), resumed.parameters()):
        assert np.array_equal(B.to_numpy(a.data), B.to_numpy(b.data))


def test_state_keyed_by_name_and_checked():
    be = B.get_backend("numpy")
    _, opt = run_ours("Adam", {}, be, grads(1))
    assert set(opt.state_dict()["state"]) == {"w", "b"}
    other = optim.SGD(Two(be).named_parameters())
    with pytest.raises(ValueError, match="expected type SGD, got 'Adam'"):
        other.load_state_dict(opt.state_dict())
    bad = optim.Adam(Two(be).named_parameters())
    sd = opt.state_dict()
    sd["state"] = {"w": sd["state"]["w"]}
    with pytest.raises(KeyError, match="missing"):
        bad.load_state_dict(sd)


def test_state_follows_module_to_device():
    """model.to(device) after some steps: the next step moves the state there too."""
    model, opt = run_ours("Adam", {}, B.get_backend("numpy"), grads(2))
    model.to("strict")
    run_ours("Adam", {}, B.get_backend("strict"), grads(1), model, opt)
    for slots in opt.state.values():
        for v in slots.values():
            assert B.backend_of(v).name == "array_api_strict"
    opt.to("numpy")
    assert all(B.backend_of(v).name == "numpy" for s in opt.state.values() for v in s.values())


def test_bad_arguments():
    be = B.get_backend("numpy")
    with pytest.raises(ValueError, match="lr: expected a finite number >= 0, got -1"):
        optim.SGD(Two(be).parameters(), lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(Two(be).parameters(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        optim.Adam(Two(be).parameters(), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="optimizer: expected one of"):
        optim.make_optimizer("lion", Two(be), 0.1)
    with pytest.raises(TypeError, match="params: expected Parameters"):
        optim.SGD([1.0])
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([])


# --------------------------------------------------------------------------- #
# issue 11, item 12
# --------------------------------------------------------------------------- #
def _param(shape=(2, 3)) -> Parameter:
    return Parameter(np.ones(shape))


def test_the_same_parameter_twice_is_refused():
    p = _param()
    with pytest.raises(ValueError, match="expected each Parameter once.*'0' and '1'"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="'a' and 'b'"):
        optim.Adam([("a", p), ("b", p)])


@pytest.mark.parametrize("grad, err, text", [
    (np.ones((1, 3)), ValueError, r"0.grad: expected shape \(2, 3\) \(the parameter's\), "
                                  r"got \(1, 3\)"),
    (np.ones((2, 3), dtype=np.float32), TypeError, "0.grad: expected dtype float64"),
    ([[1.0] * 3] * 2, TypeError, "0.grad: expected an array, got list"),
])
def test_gradient_must_match_the_parameter_exactly(grad, err, text):
    p, q = _param(), _param()
    opt = optim.SGD([p, q], lr=0.1)
    q.grad = np.ones((2, 3))
    p.grad = grad
    with pytest.raises(err, match=text):
        opt.step()
    assert np.all(q.data == 1.0) and opt.steps == 0      # nothing was updated


@pytest.mark.parametrize("make, text", [
    (lambda ps: optim.Adam(ps, betas=(0.9,)), r"betas: expected a pair"),
    (lambda ps: optim.Adam(ps, betas=0.9), r"betas: expected a pair"),
    (lambda ps: optim.Adam(ps, betas=(0.9, True)), r"betas\[1\]: expected a value in \[0, 1\)"),
    (lambda ps: optim.SGD(ps, lr=float("nan")), "lr: expected a finite number >= 0, got nan"),
    (lambda ps: optim.SGD(ps, lr=True), "lr: expected a finite number"),
    (lambda ps: optim.RMSprop(ps, alpha=float("inf")), "alpha: expected a finite number"),
])
def test_bad_hyper_parameters_fail_early(make, text):
    with pytest.raises(ValueError, match=text):
        make([_param()])


def test_setting_a_bad_lr_later_is_refused():
    opt = optim.Adam([_param()])
    with pytest.raises(ValueError, match="lr: expected a finite number >= 0, got nan"):
        opt.lr = float("nan")
    assert opt.lr == 1e-3


def _adam_state():
    p = _param()
    opt = optim.Adam([("w", p)], lr=0.01)
    p.grad = np.full((2, 3), 0.5)
    opt.step()
    return p, opt, opt.state_dict()


@pytest.mark.parametrize("change, err, text", [
    (lambda sd: sd.pop("state"), ValueError, r"missing \['state'\]"),
    (lambda sd: sd.update(hyper={}), ValueError, r"expected hyper-parameters \['betas', 'eps'"),
    (lambda sd: sd.update(lr=float("nan")), ValueError, "lr: expected a finite number"),
    (lambda sd: sd["hyper"].update(betas=[0.9]), ValueError, "betas: expected a pair"),
    (lambda sd: sd.update(steps=-1), ValueError, "steps: expected an int >= 0"),
    (lambda sd: sd["state"]["w"].update(foo=np.zeros((2, 3))), ValueError,
     r"\['w'\]\['foo'\]: expected a slot of Adam"),
    (lambda sd: sd["state"]["w"].update(exp_avg=np.full((2, 3), np.nan)), ValueError,
     r"\['exp_avg'\]: expected finite values"),
    (lambda sd: sd["state"]["w"].update(exp_avg=np.array([None] * 6).reshape(2, 3)),
     TypeError, "expected a float32/float64 array, got dtype object"),
    (lambda sd: sd["state"]["w"].update(exp_avg=np.zeros((1, 3))), ValueError,
     r"expected shape \(2, 3\), got \(1, 3\)"),
])
def test_load_state_dict_validates_everything_first(change, err, text):
    p, opt, sd = _adam_state()
    sd = {**sd, "hyper": dict(sd["hyper"]), "state": {"w": dict(sd["state"]["w"])}}
    before = {k: np.copy(v) for k, v in opt.state["w"].items()}
    change(sd)
    with pytest.raises(err, match=text):
        opt.load_state_dict(sd)
    assert opt.steps == 1 and opt.lr == 0.01                  # unchanged
    for k, v in before.items():
        np.testing.assert_array_equal(opt.state["w"][k], v)
