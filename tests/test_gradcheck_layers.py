"""Whole recurrent layers against float64 central differences.

Every configuration of :func:`scratchrnn.gradcheck.all_layer_cases` (each cell
x {1, 2} layers x {uni, bi} x {lengths or not} x {h0 or not}, plus dropout),
then bias=False and batch_first=True, a directional check of a 2-layer
bidirectional LSTM, negative controls showing the checks catch a wrong
gradient, and the ``python -m scratchrnn.gradcheck`` command.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import scratchrnn as sr
from scratchrnn import backend as B
from scratchrnn.gradcheck import (
    BOUND,
    LayerCase,
    all_layer_cases,
    check_gradients,
    check_layer,
    directional_check,
)

WORST: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def report_worst():
    yield
    if WORST:
        name = max(WORST, key=WORST.get)
        print(f"\n[gradcheck] worst relative error over {len(WORST)} layer checks: "
              f"{WORST[name]:.2e} ({name})")


def record(label: str, errors: dict[str, float]) -> float:
    worst = max(errors, key=errors.get)
    WORST[f"{label} / {worst}"] = errors[worst]
    return errors[worst]


CASES = all_layer_cases()


def test_case_list_covers_the_grid():
    assert len(CASES) == 5 * (2 * 2 * 2 * 2 + 1)
    cells = {c.cell for c in CASES}
    assert cells == {"rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_proj"}
    assert sum(c.dropout > 0 for c in CASES) == 5
    for cell in cells:
        grid = {(c.num_layers, c.bidirectional, c.lengths, c.h0)
                for c in CASES if c.cell == cell and c.dropout == 0}
        assert len(grid) == 16


def case_id(c) -> str:
    """'lstm-L2-bi-lengths-h0-dropout0.4' (usable with pytest -k)."""
    parts = [c.cell, f"L{c.num_layers}", "bi" if c.bidirectional else "uni"]
    parts += [name for name, on in (("lengths", c.lengths), ("h0", c.h0)) if on]
    return "-".join(parts + ([f"dropout{c.dropout:g}"] if c.dropout else []))


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_layer_gradients(case):
    errors = check_layer(case)
    expected = {n for n, _ in _layer_for(case).named_parameters()} | {"input"}
    if case.h0:
        expected |= {"h0", "c0"} if case.cell.startswith("lstm") else {"h0"}
    assert set(errors) == expected          # every parameter and input was checked
    assert record(case.label, errors) < BOUND, errors


def _layer_for(case):
    kw = dict(num_layers=case.num_layers, bidirectional=case.bidirectional)
    if case.cell.startswith("rnn_"):
        return sr.RNN(case.input_size, case.hidden_size, nonlinearity=case.cell[4:], **kw)
    if case.cell == "lstm_proj":
        return sr.LSTM(case.input_size, case.hidden_size, proj_size=case.hidden_size - 1, **kw)
    return {"gru": sr.GRU, "lstm": sr.LSTM}[case.cell](case.input_size, case.hidden_size, **kw)


# --------------------------------------------------------------------------- #
# configurations check_layer doesn't build: bias=False, batch_first=True
# --------------------------------------------------------------------------- #


def build(cls, seed: int, T=4, N=3, I=3, H=3, lengths=None, **kw):
    """A float64 layer with random parameters, input, h0 and upstream gradients."""
    be = B.get_backend()           # SCRATCHRNN_BACKEND, numpy by default
    layer = cls(I, H, dtype="float64", generator=B.Generator(seed), device=be, **kw)
    gen = B.Generator(seed + 1)
    for _, p in layer.named_parameters():
        p.data = gen.uniform(-0.8, 0.8, p.shape, be, "float64")
    batch_first = kw.get("batch_first", False)
    D = 2 if kw.get("bidirectional") else 1
    L = kw.get("num_layers", 1)
    x = gen.normal((N, T, I) if batch_first else (T, N, I), be, "float64")
    R = gen.normal((N, T, D * H) if batch_first else (T, N, D * H), be, "float64")
    n_state = 2 if cls is sr.LSTM else 1
    h0 = tuple(gen.uniform(-0.9, 0.9, (D * L, N, H), be, "float64") for _ in range(n_state))
    S = tuple(gen.normal((D * L, N, H), be, "float64") for _ in range(n_state))
    return layer, x, h0, R, S


def layer_errors(layer, x, h0, R, S, lengths=None, directional=False):
    is_lstm = isinstance(layer, sr.LSTM)
    state = h0 if is_lstm else h0[0]

    def loss() -> float:
        out, hn = layer(x, state, lengths=lengths)
        xp = B.namespace(out)
        total = B.to_scalar(xp.sum(out * R))
        for f, s in zip(hn if is_lstm else (hn,), S):
            total += B.to_scalar(xp.sum(f * s))
        return total

    layer.zero_grad()
    loss()
    dx, dh0 = layer.backward(R, S if is_lstm else S[0])
    assert dx.shape == x.shape
    wrt = {n: p.data for n, p in layer.named_parameters()}
    analytic = {n: p.grad for n, p in layer.named_parameters()}
    wrt["input"], analytic["input"] = x, dx
    for name, h, g in zip(("h0", "c0"), h0, dh0 if is_lstm else (dh0,)):
        assert g.shape == h.shape
        wrt[name], analytic[name] = h, g
    if directional:
        return {"directional": directional_check(loss, wrt, analytic)}, loss, wrt, analytic
    return check_gradients(loss, wrt, analytic)


@pytest.mark.parametrize("cls", [sr.RNN, sr.GRU, sr.LSTM], ids=["rnn_tanh", "gru", "lstm"])
def test_no_bias(cls):
    layer, x, h0, R, S = build(cls, seed=3, num_layers=2, bidirectional=True, bias=False)
    assert not any("bias" in n for n, _ in layer.named_parameters())
    errors = layer_errors(layer, x, h0, R, S, lengths=[4, 2, 1])
    assert record(f"{cls.__name__} bias=False", errors) < BOUND, errors


@pytest.mark.parametrize("cls", [sr.RNN, sr.GRU, sr.LSTM], ids=["rnn_tanh", "gru", "lstm"])
def test_batch_first(cls):
    layer, x, h0, R, S = build(cls, seed=5, num_layers=2, bidirectional=True,
                               batch_first=True)
    assert x.shape == (3, 4, 3)                 # (B, T, I)
    errors = layer_errors(layer, x, h0, R, S, lengths=[2, 4, 3])
    assert record(f"{cls.__name__} batch_first", errors) < BOUND, errors


def test_directional_check_two_layer_bidirectional_lstm():
    layer, x, h0, R, S = build(sr.LSTM, seed=9, T=6, N=4, I=5, H=6, num_layers=2,
                               bidirectional=True)
    errors, loss, wrt, analytic = layer_errors(layer, x, h0, R, S, lengths=[6, 3, 5, 1],
                                               directional=True)
    assert record("LSTM L=2 bi directional", errors) < BOUND, errors
    # negative control: the same check flags a gradient 1% off in one array
    analytic = dict(analytic, weight_hh_l1_reverse=analytic["weight_hh_l1_reverse"] * 1.01)
    assert directional_check(loss, wrt, analytic) > 1e-5


def test_check_gradients_flags_a_wrong_gradient():
    layer, x, h0, R, S = build(sr.GRU, seed=1, T=3, N=2, I=2, H=2)

    def loss() -> float:
        out, hn = layer(x, h0[0])
        xp = B.namespace(out)
        return B.to_scalar(xp.sum(out * R) + xp.sum(hn * S[0]))

    loss()
    layer.backward(R, S[0])
    wrong = B.to_numpy(layer.bias_hh_l0.grad).copy()
    wrong[5] += 1e-3                              # one entry of the candidate block
    errors = check_gradients(loss, {"bias_hh_l0": layer.bias_hh_l0.data},
                             {"bias_hh_l0": wrong})
    assert errors["bias_hh_l0"] > 1e-4


def test_gradcheck_on_the_strict_backend():
    case = LayerCase("lstm", 1, False, lengths=True, h0=True, T=3, batch=2,
                     input_size=2, hidden_size=2)     # small: strict arrays are slow to poke
    errors = check_layer(case, backend="strict")
    assert record(case.label + " strict", errors) < BOUND, errors


# --------------------------------------------------------------------------- #
# the command-line table
# --------------------------------------------------------------------------- #


def test_command_prints_the_table():
    proc = subprocess.run([sys.executable, "-m", "scratchrnn.gradcheck", "--cell", "gru"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["configuration", "worst", "parameter"]
    rows = [ln for ln in lines if ln.startswith("gru ")]
    assert len(rows) == sum(c.cell == "gru" for c in CASES)
    errors = [float(ln.split()[-1]) for ln in rows]
    assert max(errors) < BOUND and min(errors) > 0
    assert "FAIL" not in proc.stdout
    summary = re.search(r"worst relative error over (\d+) configurations: (\S+)", proc.stdout)
    assert summary and int(summary.group(1)) == len(rows)
    assert np.isclose(float(summary.group(2)), max(errors), rtol=0.01)


def test_ctrl_c_in_python_m_gradcheck_exits_130_with_one_line():
    """``python -m scratchrnn.gradcheck`` (its own entry point, not the CLI's) interrupted
    by a real SIGINT while it checks: status 130 and one line, as ``scratchrnn gradcheck``."""
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "scratchrnn.gradcheck"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("configuration")    # imports are done
        assert proc.stdout.readline().startswith("rnn_tanh ")        # the checks are running
        proc.send_signal(signal.SIGINT)                               # 84 cases still to go
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.strip() == "scratchrnn: interrupted" and "Traceback" not in err
