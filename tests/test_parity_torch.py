"""Agreement with PyTorch's nn.RNN / nn.GRU / nn.LSTM (reference only; skipped
without torch).

Random configurations (seeded) of every layer type (the LSTM also with
``proj_size``): layers in {1, 2, 3}, bidirectional, batch_first, lengths
(through pack_padded_sequence), h0, bias.
Weights go both ways -- our state_dict into torch and torch's into ours --
and outputs, final states, ∂L/∂x, ∂L/∂h0 (∂L/∂c0) and every parameter
gradient must agree to 1e-9 absolute in float64. ``pytest -s`` prints the
worst difference seen.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import scratchrnn as sr
from scratchrnn import backend as B

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

KINDS = ("rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_proj")
WORST: dict[str, float] = {}     # dtype -> worst absolute difference seen


@pytest.fixture(scope="module", autouse=True)
def report_worst():
    yield
    for dtype, diff in sorted(WORST.items()):
        print(f"\n[parity] worst |ours - torch| in {dtype}: {diff:.2e}")


def random_config(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    T, N = int(rng.integers(1, 7)), int(rng.integers(1, 5))
    cfg = dict(kind=KINDS[seed % len(KINDS)], T=T, N=N, I=int(rng.integers(1, 6)),
               H=int(rng.integers(1, 6)), num_layers=int(rng.integers(1, 4)),
               bidirectional=bool(rng.integers(2)), batch_first=bool(rng.integers(2)),
               bias=bool(rng.random() < 0.75), h0=bool(rng.integers(2)), lengths=None, P=0)
    if cfg["kind"] == "lstm_proj":                 # 0 < proj_size < hidden_size
        cfg["H"] = max(cfg["H"], 2)
        cfg["P"] = int(rng.integers(1, cfg["H"]))
    if rng.random() < 0.6:
        lengths = rng.integers(1, T + 1, size=N)
        lengths[rng.integers(N)] = T                 # keep one full-length sequence
        cfg["lengths"] = [int(v) for v in lengths]
    return cfg


def make_pair(cfg: dict, dtype: str, dropout: float = 0.0, seed: int = 0):
    """Our layer and torch's, same hyper-parameters, independent initialisations."""
    kw = dict(num_layers=cfg["num_layers"], bias=cfg["bias"], batch_first=cfg["batch_first"],
              dropout=dropout, bidirectional=cfg["bidirectional"])
    kind = cfg["kind"]
    torch.manual_seed(seed)
    tdtype = getattr(torch, dtype)
    if kind.startswith("rnn_"):
        ours = sr.RNN(cfg["I"], cfg["H"], nonlinearity=kind[4:], dtype=dtype,
                      generator=B.Generator(seed), **kw)
        theirs = torch.nn.RNN(cfg["I"], cfg["H"], nonlinearity=kind[4:], dtype=tdtype, **kw)
    elif kind == "gru":
        ours = sr.GRU(cfg["I"], cfg["H"], dtype=dtype, generator=B.Generator(seed), **kw)
        theirs = torch.nn.GRU(cfg["I"], cfg["H"], dtype=tdtype, **kw)
    else:
        ours = sr.LSTM(cfg["I"], cfg["H"], dtype=dtype, generator=B.Generator(seed),
                       proj_size=cfg["P"], **kw)
        theirs = torch.nn.LSTM(cfg["I"], cfg["H"], dtype=tdtype, proj_size=cfg["P"], **kw)
    return ours, theirs


def make_data(cfg: dict, dtype: str, seed: int):
    rng = np.random.default_rng(seed)
    T, N, I, H = cfg["T"], cfg["N"], cfg["I"], cfg["H"]
    D = 2 if cfg["bidirectional"] else 1
    P = cfg["P"] or H                              # h's size
    shapes = [(D * cfg["num_layers"], N, P)]
    if cfg["kind"].startswith("lstm"):
        shapes.append((D * cfg["num_layers"], N, H))   # c keeps hidden_size
    seq = (N, T) if cfg["batch_first"] else (T, N)
    x = rng.standard_normal(seq + (I,)).astype(dtype)
    R = rng.standard_normal(seq + (D * P,)).astype(dtype)
    S = tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)
    h0 = None
    if cfg["h0"]:
        h0 = tuple(rng.uniform(-1, 1, shape).astype(dtype) for shape in shapes)
    return x, h0, R, S


def run_ours(layer, cfg, x, h0, R, S):
    """Our forward/backward on the layer's backend (SCRATCHRNN_BACKEND), results on the host."""
    is_lstm = cfg["kind"].startswith("lstm")
    be = layer.backend
    x, R, S = be.asarray(x), be.asarray(R), tuple(be.asarray(s) for s in S)
    h0 = None if h0 is None else tuple(be.asarray(h) for h in h0)
    layer.zero_grad()
    out, hn = layer(x, None if h0 is None else (h0 if is_lstm else h0[0]),
                    lengths=cfg["lengths"])
    dx, dh0 = layer.backward(R, S if is_lstm else S[0])
    result = {"output": out, "dx": dx}
    for name, a in zip(("h_n", "c_n"), hn if is_lstm else (hn,)):
        result[name] = a
    if h0 is not None:
        for name, a in zip(("dh0", "dc0"), dh0 if is_lstm else (dh0,)):
            result[name] = a
    for name, p in layer.named_parameters():
        result["grad " + name] = p.grad
    return {k: B.to_numpy(v) for k, v in result.items()}


def run_torch(layer, cfg, x, h0, R, S):
    is_lstm = cfg["kind"].startswith("lstm")
    bf = cfg["batch_first"]
    layer.zero_grad()
    tx = torch.tensor(x, requires_grad=True)
    th0 = None if h0 is None else tuple(torch.tensor(h, requires_grad=True) for h in h0)
    state = None if th0 is None else (th0 if is_lstm else th0[0])
    if cfg["lengths"] is None:
        out, hn = layer(tx, state)
    else:
        packed = pack_padded_sequence(tx, torch.tensor(cfg["lengths"]), batch_first=bf,
                                      enforce_sorted=False)
        packed_out, hn = layer(packed, state)
        out, _ = pad_packed_sequence(packed_out, batch_first=bf, total_length=cfg["T"])
    finals = hn if is_lstm else (hn,)
    loss = (out * torch.tensor(R)).sum()
    for f, s in zip(finals, S):
        loss = loss + (f * torch.tensor(s)).sum()
    loss.backward()
    result = {"output": out, "dx": tx.grad}
    for name, a in zip(("h_n", "c_n"), finals):
        result[name] = a
    if th0 is not None:
        for name, h in zip(("dh0", "dc0"), th0):
            result[name] = h.grad
    for name, p in layer.named_parameters():
        result["grad " + name] = p.grad
    return {k: v.detach().numpy() for k, v in result.items()}


def compare(ours: dict, theirs: dict, dtype: str, tol: float, label: str) -> float:
    assert set(ours) == set(theirs), (sorted(ours), sorted(theirs))
    worst = 0.0
    for key, ref in theirs.items():
        got = B.to_numpy(ours[key])
        assert got.shape == ref.shape, f"{label} {key}: shape {got.shape} vs {ref.shape}"
        assert got.dtype == ref.dtype, f"{label} {key}: dtype {got.dtype} vs {ref.dtype}"
        diff = float(np.abs(got - ref).max()) if ref.size else 0.0
        scale = 1.0             # float64: absolute; float32: relative to the largest entry
        if dtype == "float32" and ref.size:
            scale = max(1.0, float(np.abs(ref).max()))
        assert diff <= tol * scale, f"{label} {key}: max |diff| {diff:.3e} (scale {scale:.1f})"
        worst = max(worst, diff)
    WORST[dtype] = max(WORST.get(dtype, 0.0), worst)
    return worst


def check_both_directions(cfg: dict, dtype: str, tol: float, seed: int) -> None:
    ours, theirs = make_pair(cfg, dtype, seed=seed)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x, h0, R, S = make_data(cfg, dtype, seed + 1)
    label = f"{cfg}"

    # ours -> torch
    theirs.load_state_dict({k: torch.from_numpy(B.to_numpy(v))
                            for k, v in ours.state_dict().items()})
    compare(run_ours(ours, cfg, x, h0, R, S), run_torch(theirs, cfg, x, h0, R, S), dtype, tol,
            "ours->torch " + label)

    # torch -> ours (torch's own initialisation this time)
    torch.manual_seed(seed + 2)
    for p in theirs.parameters():
        torch.nn.init.uniform_(p, -0.9, 0.9)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    compare(run_ours(ours, cfg, x, h0, R, S), run_torch(theirs, cfg, x, h0, R, S), dtype, tol,
            "torch->ours " + label)


CONFIG_SEEDS = list(range(64))


@pytest.mark.parametrize("seed", CONFIG_SEEDS)
def test_float64_parity(seed):
    check_both_directions(random_config(seed), "float64", 1e-9, seed=100 + seed)


def test_configurations_cover_the_options():
    cfgs = [random_config(s) for s in CONFIG_SEEDS]
    assert {c["kind"] for c in cfgs} == set(KINDS)
    assert {c["num_layers"] for c in cfgs} == {1, 2, 3}
    for key in ("bidirectional", "batch_first", "bias", "h0"):
        assert {c[key] for c in cfgs} == {False, True}, key
    assert any(c["lengths"] is None for c in cfgs)
    assert any(c["lengths"] is not None and min(c["lengths"]) < c["T"] for c in cfgs)


@pytest.mark.parametrize("seed", range(8))
def test_float32_parity(seed):
    check_both_directions(random_config(1000 + seed), "float32", 1e-5, seed=200 + seed)


@pytest.mark.parametrize("kind", KINDS)
def test_a_larger_case(kind):
    cfg = dict(kind=kind, T=12, N=5, I=7, H=9, num_layers=2, bidirectional=True,
               batch_first=False, bias=True, h0=True, lengths=[12, 3, 7, 12, 1],
               P=4 if kind == "lstm_proj" else 0)
    check_both_directions(cfg, "float64", 1e-9, seed=7)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_in_eval_mode_matches(kind):
    cfg = dict(kind=kind, T=5, N=3, I=4, H=3, num_layers=3, bidirectional=True,
               batch_first=True, bias=True, h0=True, lengths=[5, 2, 4],
               P=2 if kind == "lstm_proj" else 0)
    ours, theirs = make_pair(cfg, "float64", dropout=0.5, seed=3)
    theirs.load_state_dict({k: torch.from_numpy(B.to_numpy(v))
                            for k, v in ours.state_dict().items()})
    ours.eval()
    theirs.eval()
    x, h0, R, S = make_data(cfg, "float64", 4)
    compare(run_ours(ours, cfg, x, h0, R, S), run_torch(theirs, cfg, x, h0, R, S),
            "float64", 1e-9, f"eval dropout {kind}")
    # and in training mode the outputs do differ from eval mode (dropout is active)
    be = ours.backend
    x, h0 = be.asarray(x), tuple(be.asarray(h) for h in h0)
    ours.train()
    state = h0 if kind.startswith("lstm") else h0[0]
    out_train, _ = ours(x, state, lengths=cfg["lengths"])
    ours.eval()
    out_eval, _ = ours(x, state, lengths=cfg["lengths"])
    assert np.abs(B.to_numpy(out_train) - B.to_numpy(out_eval)).max() > 1e-3


@pytest.mark.parametrize("cls, tcls, kw", [(sr.RNN, "RNN", {}), (sr.GRU, "GRU", {}),
                                           (sr.LSTM, "LSTM", {}),
                                           (sr.LSTM, "LSTM", {"proj_size": 64})])
def test_default_init_matches_torch_bound(cls, tcls, kw):
    I, H = 48, 200
    k = 1.0 / math.sqrt(H)
    ours = cls(I, H, num_layers=2, bidirectional=True, **kw)
    theirs = getattr(torch.nn, tcls)(I, H, num_layers=2, bidirectional=True, **kw)
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname and p.shape == tuple(tp.shape)
        w = B.to_numpy(p.data)
        assert np.abs(w).max() <= k, name
        assert np.abs(w).max() > 0.97 * k, name          # fills the whole range
    w = np.concatenate([B.to_numpy(p.data).ravel() for p in ours.parameters()])
    tw = np.concatenate([p.detach().numpy().ravel() for p in theirs.parameters()])
    assert w.size == tw.size > 100_000
    # U(-k, k): mean 0, mean |w| = k/2, var k²/3 -- the same distribution as torch's
    for stat in (lambda a: a.mean() / k, lambda a: np.abs(a).mean() / k,
                 lambda a: a.var() / k**2):
        assert abs(stat(w) - stat(tw)) < 0.01
