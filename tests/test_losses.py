"""CrossEntropyLoss, MSELoss, softmax, log_softmax: gradients (ignore_index,
mask, every reduction), PyTorch's values, numerical stability, portability,
and errors that name the argument."""

from __future__ import annotations

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.gradcheck import BOUND, check_gradients
from scratchrnn.losses import CrossEntropyLoss, MSELoss, log_softmax, softmax

# (T, B) targets over C = 5 classes, two of them ignored (-100)
TARGETS = [[1, 4, -100], [3, 0, 2], [1, -100, 4], [0, 2, 3]]
MASK = [[1, 1, 1], [1, 0, 1], [1, 1, 0], [1, 1, 1]]


def ce_case(be: B.Backend, dtype: str = "float64", seed: int = 0):
    gen = B.Generator(seed)
    logits = gen.normal((4, 3, 5), be, dtype) * 2.0
    return logits, be.asarray(np.array(TARGETS)), be.asarray(np.array(MASK))


@pytest.mark.parametrize("with_mask", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradients(reduction, with_mask, backend_name):
    be = B.get_backend(backend_name)
    logits, targets, mask = ce_case(be)
    if not with_mask:
        mask = None
    ce = CrossEntropyLoss(reduction)
    R = B.Generator(1).normal((4, 3), be, "float64")
    dloss = R if reduction == "none" else 0.7          # a non-trivial upstream gradient

    def loss() -> float:
        out = ce(logits, targets, mask)
        return B.to_scalar(B.namespace(out).sum(out * R)) if reduction == "none" \
            else 0.7 * B.to_scalar(out)

    out = ce(logits, targets, mask)
    assert tuple(out.shape) == ((4, 3) if reduction == "none" else ())
    dlogits = ce.backward(dloss)
    assert tuple(dlogits.shape) == (4, 3, 5)
    errors = check_gradients(loss, {"logits": logits}, {"logits": dlogits})
    assert errors["logits"] < BOUND, errors
    host = B.to_numpy(dlogits)
    assert not host[0, 2].any() and not host[2, 1].any()      # ignore_index rows
    if with_mask:
        assert not host[1, 1].any() and not host[2, 2].any()  # masked rows
    assert host[0, 0].any()


@pytest.mark.parametrize("C", [1, 2])
def test_cross_entropy_edge_shapes(C, backend_name):
    be = B.get_backend(backend_name)
    logits = B.Generator(2).normal((1, 1, C), be, "float64")
    targets = be.asarray(np.array([[C - 1]]))
    ce = CrossEntropyLoss()

    def loss() -> float:
        return B.to_scalar(ce(logits, targets))

    loss()
    dlogits = ce.backward()
    errors = check_gradients(loss, {"logits": logits}, {"logits": dlogits})
    assert errors["logits"] < BOUND, errors


def test_mask_equals_ignore_index():
    be = B.get_backend("numpy")
    logits, targets, mask = ce_case(be)
    ignored = np.where(mask == 0, -100, targets)
    a, b = CrossEntropyLoss(), CrossEntropyLoss()
    np.testing.assert_allclose(a(logits, targets, mask), b(logits, ignored), rtol=1e-15)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-15)
    bool_mask = CrossEntropyLoss()(logits, targets, mask.astype(bool))
    np.testing.assert_allclose(bool_mask, b(logits, ignored), rtol=1e-15)


def test_mean_divides_by_the_counted_targets():
    be = B.get_backend("numpy")
    logits, targets, _ = ce_case(be)
    total = CrossEntropyLoss("sum")(logits, targets)
    np.testing.assert_allclose(CrossEntropyLoss()(logits, targets), total / 10, rtol=1e-15)
    per = CrossEntropyLoss("none")(logits, targets)
    np.testing.assert_allclose(per.sum(), total, rtol=1e-15)
    assert per[0, 2] == 0.0 and per[2, 1] == 0.0


def test_all_ignored_gives_zero_loss_and_gradient():
    be = B.get_backend("numpy")
    ce = CrossEntropyLoss()
    out = ce(be.zeros((2, 3), "float64"), np.array([-100, -100]))
    assert float(out) == 0.0 and not ce.backward().any()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_pytorch(reduction):
    torch = pytest.importorskip("torch")
    be = B.get_backend("numpy")
    logits, targets, _ = ce_case(be)
    C = logits.shape[-1]
    lt = torch.from_numpy(logits.reshape(-1, C).copy()).requires_grad_(True)
    ref = torch.nn.CrossEntropyLoss(reduction=reduction, ignore_index=-100)
    out_t = ref(lt, torch.from_numpy(targets.reshape(-1)))
    dloss = B.Generator(3).normal((4, 3), be, "float64") if reduction == "none" else 1.3
    out_t.backward(torch.from_numpy(dloss.reshape(-1)) if reduction == "none"
                   else torch.tensor(1.3, dtype=torch.float64))
    ce = CrossEntropyLoss(reduction)
    out = ce(logits, targets)
    dlogits = ce.backward(dloss)
    np.testing.assert_allclose(out.reshape(-1), out_t.detach().numpy().reshape(-1),
                               rtol=1e-13)
    np.testing.assert_allclose(dlogits.reshape(-1, C), lt.grad.numpy(), rtol=1e-12,
                               atol=1e-15)


def test_ignore_index_other_than_default_matches_pytorch():
    torch = pytest.importorskip("torch")
    be = B.get_backend("numpy")
    logits, _, _ = ce_case(be)
    targets = np.array([[1, 0, 0], [3, 0, 2], [1, 4, 4], [0, 2, 3]])
    ce = CrossEntropyLoss(ignore_index=0)
    ref = torch.nn.CrossEntropyLoss(ignore_index=0)
    lt = torch.from_numpy(logits.reshape(-1, 5).copy()).requires_grad_(True)
    out_t = ref(lt, torch.from_numpy(targets.reshape(-1)))
    out_t.backward()
    np.testing.assert_allclose(ce(logits, targets), out_t.item(), rtol=1e-13)
    np.testing.assert_allclose(ce.backward().reshape(-1, 5), lt.grad.numpy(), rtol=1e-12,
                               atol=1e-15)


def test_softmax_and_log_softmax_are_stable():
    be = B.get_backend("numpy")
    x = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0], [-1e4, -1e4, -1e4]])
    p, lp = softmax(x), log_softmax(x)
    assert np.isfinite(p).all() and np.isfinite(lp).all()
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(lp[0], [0.0, -1000.0, -2000.0], rtol=1e-15)
    row = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(p[1], row, rtol=1e-15)
    np.testing.assert_allclose(np.exp(lp), p, rtol=1e-14)
    np.testing.assert_allclose(softmax(x.T, axis=0), p.T, rtol=1e-15)
    big = B.Generator(4).normal((3, 4, 7), be, "float32") * 1e4
    ce = CrossEntropyLoss()
    out = ce(big, np.zeros((3, 4), dtype=np.int64))
    assert np.isfinite(out) and np.isfinite(ce.backward()).all()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(4, 3, 2), (1, 1, 1)], ids=["T4B3H2", "T1B1H1"])
def test_mse_gradients(shape, reduction, backend_name):
    be = B.get_backend(backend_name)
    gen = B.Generator(5)
    pred, target = gen.normal(shape, be, "float64"), gen.normal(shape, be, "float64")
    R = gen.normal(shape, be, "float64")
    mse = MSELoss(reduction)
    dloss = R if reduction == "none" else 0.7

    def loss() -> float:
        out = mse(pred, target)
        return B.to_scalar(B.namespace(out).sum(out * R)) if reduction == "none" \
            else 0.7 * B.to_scalar(out)

    out = mse(pred, target)
    assert tuple(out.shape) == (shape if reduction == "none" else ())
    dpred = mse.backward(dloss)
    assert tuple(dpred.shape) == shape
    errors = check_gradients(loss, {"pred": pred}, {"pred": dpred})
    assert errors["pred"] < BOUND, errors


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_matches_pytorch(reduction):
    torch = pytest.importorskip("torch")
    be = B.get_backend("numpy")
    gen = B.Generator(6)
    pred, target = gen.normal((5, 3), be, "float64"), gen.normal((5, 3), be, "float64")
    pt = torch.from_numpy(pred.copy()).requires_grad_(True)
    out_t = torch.nn.MSELoss(reduction=reduction)(pt, torch.from_numpy(target))
    out_t.backward()
    mse = MSELoss(reduction)
    np.testing.assert_allclose(mse(pred, target), out_t.item(), rtol=1e-14)
    np.testing.assert_allclose(mse.backward(), pt.grad.numpy(), rtol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_strict_backend_equals_numpy(dtype):
    results = []
    for name in ("numpy", "strict"):
        be = B.get_backend(name)
        logits, targets, mask = ce_case(be, dtype, seed=7)
        out = []
        for reduction in ("mean", "sum"):
            ce = CrossEntropyLoss(reduction)
            loss = ce(logits, targets, mask)
            dlogits = ce.backward()
            assert B.dtype_name(loss) == B.dtype_name(dlogits) == dtype
            out += [B.to_numpy(loss), B.to_numpy(dlogits)]
        out += [B.to_numpy(softmax(logits)), B.to_numpy(log_softmax(logits, axis=1))]
        mse = MSELoss()
        target = B.Generator(8).normal((4, 3, 5), be, dtype)
        out += [B.to_numpy(mse(logits, target)), B.to_numpy(mse.backward())]
        results.append(out)
    tol = 1e-6 if dtype == "float32" else 1e-14
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


def test_cross_entropy_bad_inputs_name_the_argument():
    be = B.get_backend("numpy")
    logits, targets, mask = ce_case(be)
    ce = CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"targets: expected shape \(4, 3\).*got \(3, 4\)"):
        ce(logits, targets.T)
    with pytest.raises(TypeError, match="targets: expected an integer array.*float64"):
        ce(logits, targets.astype(np.float64))
    bad = targets.copy()
    bad[1, 2] = 5
    with pytest.raises(ValueError, match=r"targets: expected class ids in \[0, 5\).*got 5"):
        ce(logits, bad)
    bad[1, 2] = -3
    with pytest.raises(ValueError, match=r"targets: .*got -3"):
        ce(logits, bad)
    with pytest.raises(ValueError, match=r"mask: expected shape \(4, 3\)"):
        ce(logits, targets, mask[:2])
    with pytest.raises(TypeError, match="logits: expected a floating-point array"):
        ce(targets, targets[..., 0])
    with pytest.raises(TypeError, match="logits: expected an array, got list"):
        ce([[0.0, 1.0]], [1])
    with pytest.raises(TypeError, match="targets: expected an array on strict"):
        ce(B.get_backend("strict").asarray(logits), targets)
    with pytest.raises(ValueError, match="reduction: expected one of"):
        CrossEntropyLoss("avg")
    with pytest.raises(RuntimeError, match="backward called before forward"):
        CrossEntropyLoss().backward()
    ce(logits, targets)
    with pytest.raises(ValueError, match=r"dloss: expected a scalar.*got shape \(4, 3\)"):
        ce.backward(np.ones((4, 3)))
    # a masked-out position may hold any id (it is never read)
    bad[1, 2] = 99
    keep = np.ones((4, 3), dtype=np.int64)
    keep[1, 2] = 0
    assert np.isfinite(ce(logits, bad, keep))


def test_mse_bad_inputs_name_the_argument():
    be = B.get_backend("numpy")
    pred = be.zeros((4, 3), "float64")
    mse = MSELoss()
    with pytest.raises(ValueError, match=r"target: expected shape \(4, 3\).*got \(3, 4\)"):
        mse(pred, be.zeros((3, 4), "float64"))
    with pytest.raises(TypeError, match="target: expected dtype float64.*got float32"):
        mse(pred, be.zeros((4, 3), "float32"))
    with pytest.raises(TypeError, match="pred: expected a floating-point array"):
        mse(np.zeros((4, 3), dtype=np.int64), pred)
    with pytest.raises(ValueError, match="reduction: expected one of"):
        MSELoss("max")


# --------------------------------------------------------------------------- #
# issue 11, item 11
# --------------------------------------------------------------------------- #
def test_minus_inf_logits_of_masked_classes_give_a_finite_loss_like_pytorch():
    torch = pytest.importorskip("torch")
    logits = np.array([[2.0, -np.inf, 0.5], [-np.inf, 1.0, 3.0]])
    targets = np.array([0, 2])
    ce = CrossEntropyLoss()
    loss = ce(logits, targets)
    dlogits = ce.backward()
    t = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(t, torch.tensor(targets))
    ref.backward()
    assert np.isfinite(loss) and np.isfinite(dlogits).all()
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-14)
    np.testing.assert_allclose(dlogits, t.grad.numpy(), rtol=1e-14, atol=1e-300)


def test_minus_inf_logits_allowed_with_check_finite_but_nan_refused():
    old = B.set_check_finite(True)
    try:
        ce = CrossEntropyLoss()
        assert np.isfinite(ce(np.array([[0.0, -np.inf]]), np.array([0])))
        with pytest.raises(ValueError, match="logits: expected finite values or -inf"):
            ce(np.array([[0.0, np.nan]]), np.array([0]))
    finally:
        B.set_check_finite(old)


def test_zero_classes_are_refused_naming_logits():
    for reduction in ("mean", "sum", "none"):
        with pytest.raises(ValueError, match=r"logits: expected at least one class .*"
                                             r"got shape \(4, 0\)"):
            CrossEntropyLoss(reduction)(np.zeros((4, 0)), np.full(4, -100))
    with pytest.raises(ValueError, match=r"logits: expected at least one class"):
        CrossEntropyLoss()(np.zeros((2, 3, 0)), np.zeros((2, 3), dtype=np.int64))
    assert CrossEntropyLoss()(np.zeros((0, 3)), np.zeros(0, dtype=np.int64)) == 0  # no rows: ok


@pytest.mark.parametrize("dloss, err, text", [
    ([1.0, 2.0], TypeError, "dloss: expected a number or a 0-d array, got list"),
    (np.ones(2), ValueError, r"dloss: expected a scalar .*got shape \(2,\)"),
    (np.array(1, dtype=np.int64), TypeError, "dloss: expected a floating-point array"),
    (np.array(1.0, dtype=np.complex128), TypeError, "dloss: expected a floating-point"),
    (np.array(1.0, dtype=np.float32), TypeError, "dloss: expected dtype float64"),
    (float("nan"), ValueError, "dloss: expected a finite number"),
    ("1", TypeError, "dloss: expected a number"),
])
def test_cross_entropy_upstream_is_checked(dloss, err, text):
    ce = CrossEntropyLoss()
    ce(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(err, match=text):
        ce.backward(dloss)


def test_reduction_none_upstream_shape_is_checked():
    ce = CrossEntropyLoss("none")
    ce(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"dloss: expected shape \(2\).*got \(3,\)"):
        ce.backward(np.ones(3))
    mse = MSELoss("none")
    mse(np.zeros((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dloss: expected shape \(2, 3\)"):
        mse.backward(np.ones(3))


@pytest.mark.parametrize("value", [0.5, np.nan, 2.0, -1.0])
def test_mask_must_be_boolean_or_zero_one(value):
    mask = np.ones((2,))
    mask[1] = value
    with pytest.raises(ValueError, match="mask: expected booleans or the values 0 and 1"):
        CrossEntropyLoss()(np.zeros((2, 3)), np.array([0, 1]), mask)


def test_loss_backward_twice_after_one_forward_is_refused():
    for loss, args in ((CrossEntropyLoss(), (np.zeros((2, 3)), np.array([0, 1]))),
                       (MSELoss(), (np.zeros(3), np.ones(3)))):
        loss(*args)
        loss.backward()
        with pytest.raises(RuntimeError, match="backward called twice after one forward"):
            loss.backward()
