"""Gradient checking: hand-written gradients against central finite differences.

For a scalar loss L and each entry θ_i of an array, the four-point stencil::

    ∂L/∂θ_i ≈ [-L(θ+2εe_i) + 8 L(θ+εe_i) - 8 L(θ-εe_i) + L(θ-2εe_i)] / (12 ε)

has truncation error O(ε⁴) and rounding noise about ``u·|L|/ε`` (u = 2.2e-16).
At ε = 1e-4 in float64 both stay near 1e-11, five orders of magnitude under
the 1e-6 bound the tests use; the two-point stencil at ε = 1e-6 would carry
~1e-9 of noise, enough to fail correct gradients smaller than ~1e-3.

The error of one array is the largest element-wise relative error::

    max_i |a_i - n_i| / max(|a_i| + |n_i|, floor)

where ``floor`` (1e-3) keeps exact-zero gradients (padding, say) from
dividing noise by zero: entries that small are held to 1e-9 absolute.

ReLU is not differentiable at 0: a pre-activation within a few ε of its kink
makes any finite difference wrong, so :func:`check_layer` draws its random
values again (next seed) until every ReLU pre-activation is at least 0.01
from 0 -- a property of the check, not a tolerance on the gradient.

``python -m scratchrnn.gradcheck`` (or ``scratchrnn gradcheck``) prints the
table for every cell and configuration.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import backend as B
from ._command import OneLineParser, backend_for, device_arg, float_in, one_line_errors
from .backend import Array
from .cells import CELLS, cell_arg

EPS = 1e-4
FLOOR = 1e-3
BOUND = 1e-6


def numerical_gradient(loss: Callable[[], float], x: Array, eps: float = EPS) -> Array:
    """∂loss/∂x by the four-point central difference; ``x`` is perturbed in place
    (and restored), so ``loss`` must read it. Returns an array like ``x``."""
    host = B.to_numpy(x).copy()
    grad = host.astype("float64") * 0.0
    for flat in range(host.size):
        idx = tuple(int(i) for i in _unravel(flat, host.shape))
        orig = float(host[idx])
        values = []
        for step in (2.0, 1.0, -1.0, -2.0):
            x[idx] = orig + step * eps
            values.append(float(loss()))
        x[idx] = orig
        f2, f1, fm1, fm2 = values
        grad[idx] = (-f2 + 8.0 * f1 - 8.0 * fm1 + fm2) / (12.0 * eps)
    return B.backend_of(x).asarray(grad, dtype=x.dtype)


def _unravel(flat: int, shape: tuple[int, ...]) -> list[int]:
    idx = []
    for size in reversed(shape):
        idx.append(flat % size)
        flat //= size
    return idx[::-1]


def relative_error(analytic: Array, numeric: Array, floor: float = FLOOR) -> float:
    """``max_i |a_i - n_i| / max(|a_i| + |n_i|, floor)`` (0.0 for empty arrays)."""
    a, n = B.to_numpy(analytic).astype("float64"), B.to_numpy(numeric).astype("float64")
    if a.shape != n.shape:
        raise ValueError(f"analytic: expected shape {n.shape}, got {a.shape}")
    if a.size == 0:
        return 0.0
    denom = abs(a) + abs(n)
    denom[denom < floor] = floor
    return float((abs(a - n) / denom).max())


def check_gradients(loss: Callable[[], float], wrt: Mapping[str, Array],
                    analytic: Mapping[str, Array], eps: float = EPS) -> dict[str, float]:
    """Max relative error, per name, of ``analytic[name]`` against the finite
    difference of ``loss`` with respect to ``wrt[name]`` (perturbed in place)."""
    return {name: relative_error(analytic[name], numerical_gradient(loss, x, eps))
            for name, x in wrt.items()}


def directional_check(loss: Callable[[], float], wrt: Mapping[str, Array],
                      analytic: Mapping[str, Array], eps: float = EPS, seed: int = 0) -> float:
    """Relative error of the directional derivative along one random vector v
    over all arrays at once: <∇L, v> against [L(θ+εv) - L(θ-εv)] / 2ε (four-point).
    One check for a whole model, cheap whatever its size."""
    gen = B.Generator(seed)
    dirs = {k: gen.normal(x.shape, B.backend_of(x), x.dtype) for k, x in wrt.items()}
    origs = {k: x * 1.0 for k, x in wrt.items()}
    values = []
    for step in (2.0, 1.0, -1.0, -2.0):
        for k, x in wrt.items():
            x[...] = origs[k] + step * eps * dirs[k]
        values.append(float(loss()))
    for k, x in wrt.items():
        x[...] = origs[k]
    f2, f1, fm1, fm2 = values
    numeric = (-f2 + 8.0 * f1 - 8.0 * fm1 + fm2) / (12.0 * eps)
    exact = sum(float(B.to_numpy(analytic[k] * dirs[k]).sum()) for k in wrt)
    return abs(exact - numeric) / max(abs(exact) + abs(numeric), FLOOR)


# --------------------------------------------------------------------------- #
# Recurrent layers: the table that ``scratchrnn gradcheck`` prints
# --------------------------------------------------------------------------- #
CELL_NAMES = tuple(CELLS)     # "rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_proj"


@dataclass
class LayerCase:
    """One configuration of a recurrent layer to check."""

    cell: str                 # "rnn_tanh" | "rnn_relu" | "gru" | "lstm" | "lstm_proj"
    num_layers: int = 1
    bidirectional: bool = False
    lengths: bool = False
    h0: bool = False
    dropout: float = 0.0
    T: int = 4
    batch: int = 3
    input_size: int = 3
    hidden_size: int = 4

    @property
    def label(self) -> str:
        """One line naming the configuration, as the table prints it."""
        return (f"{self.cell:<8} L={self.num_layers} {'bi ' if self.bidirectional else 'uni'}"
                f" lengths={'y' if self.lengths else 'n'} h0={'y' if self.h0 else 'n'}"
                f" dropout={self.dropout:g}")


def _build(case: LayerCase, be: B.Backend, seed: int) -> tuple:
    """The layer (random non-zero parameters), input, initial state, lengths and
    upstream gradients R, S that :func:`check_layer` uses for ``seed``."""
    from .nn import GRU, LSTM, RNN

    gen = B.Generator(seed)
    common = dict(num_layers=case.num_layers, bidirectional=case.bidirectional,
                  dropout=case.dropout, dtype="float64", device=be,
                  generator=B.Generator(seed + 1))
    if case.cell.startswith("rnn_"):
        layer = RNN(case.input_size, case.hidden_size, nonlinearity=case.cell[4:], **common)
    elif case.cell == "lstm_proj":     # PyTorch's proj_size: h of size P = H - 1
        layer = LSTM(case.input_size, case.hidden_size, proj_size=case.hidden_size - 1,
                     **common)
    else:
        cls = {"gru": GRU, "lstm": LSTM}[case.cell]
        layer = cls(case.input_size, case.hidden_size, **common)
    layer.train()
    for _, p in layer.named_parameters():     # random, clearly non-zero values everywhere
        p.data = gen.uniform(-0.8, 0.8, p.shape, be, "float64")
    D = 2 if case.bidirectional else 1
    T, N = case.T, case.batch
    x = gen.normal((T, N, case.input_size), be, "float64")
    shapes = layer._state_shapes(N)                 # h (D·L, N, P) [, c (D·L, N, H)]
    h0 = None
    if case.h0:
        h0 = tuple(gen.uniform(-0.9, 0.9, shape, be, "float64") for shape in shapes)
        h0 = h0 if len(h0) == 2 else h0[0]
    lengths = None
    if case.lengths:   # one full-length sequence, the others shorter (one of length 1)
        lengths = [T] + [max(1, T - 1 - (b % T)) for b in range(1, N)]
    R = gen.normal((T, N, D * layer.output_size), be, "float64")
    S = tuple(gen.normal(shape, be, "float64") for shape in shapes)
    return layer, x, h0, lengths, R, S


def check_layer(case: LayerCase, backend: str | B.Backend | None = None, seed: int = 0,
                eps: float = EPS) -> dict[str, float]:
    """Gradient-check one recurrent-layer configuration in float64.

    The loss is L = Σ output ⊙ R + Σ h_n ⊙ S (+ Σ c_n ⊙ S' for an LSTM) with
    random R, S, so every output and state gets a non-trivial upstream
    gradient; biases and initial states are random and non-zero. Returns the
    max relative error per parameter, plus ``input`` and ``h0``/``c0``.
    """
    be = B.get_backend(backend)
    if case.cell == "rnn_relu":
        seed = _seed_away_from_relu_kink(case, be, seed)
    layer, x, h0, lengths, R, S = _build(case, be, seed)
    is_lstm = case.cell.startswith("lstm")

    def loss() -> float:
        layer.generator = B.Generator(seed + 1)       # the same dropout masks every call
        out, hn = layer(x, h0, lengths=lengths)
        total = B.namespace(out).sum(out * R)
        for f, s in zip(hn if is_lstm else (hn,), S):
            total = total + B.namespace(f).sum(f * s)
        return B.to_scalar(total)

    layer.zero_grad()
    loss()
    dx, dh0 = layer.backward(R, S if is_lstm else S[0])
    analytic: dict[str, Array] = {n: p.grad for n, p in layer.named_parameters()}
    wrt: dict[str, Array] = {n: p.data for n, p in layer.named_parameters()}
    analytic["input"], wrt["input"] = dx, x
    if h0 is not None:
        for name, g, h in zip(("h0", "c0"), dh0 if is_lstm else (dh0,),
                              h0 if is_lstm else (h0,)):
            analytic[name], wrt[name] = g, h
    return check_gradients(loss, wrt, analytic, eps)


def _seed_away_from_relu_kink(case: LayerCase, be: B.Backend, seed: int) -> int:
    """The first seed >= ``seed`` whose ReLU pre-activations all satisfy |a| >= 0.01."""
    from .engines.reference import input_projection

    for candidate in range(seed, seed + 100):
        layer, x, h0, lengths, _, _ = _build(case, be, candidate)
        layer.generator = B.Generator(candidate + 1)
        layer.engine = "reference"         # its tape keeps x, h_prev and the mask
        layer(x, h0, lengths=lengths)
        margin = float("inf")
        for (num, d), tape in layer._tapes.items():
            p = layer.cell_params(num, d)
            a = input_projection(tape.x, p) + tape.h_prev @ p.w_hh.T + p.b_hh
            valid = B.to_numpy(tape.mask) if tape.mask is not None else True
            margin = min(margin, float((abs(B.to_numpy(a)) + (1 - valid) * 1e9).min()))
        if margin >= 0.01:
            return candidate
    raise RuntimeError("no seed found with ReLU pre-activations away from 0")


def all_layer_cases() -> list[LayerCase]:
    """Every cell × {1, 2 layers} × {uni, bi} × {lengths or not} × {h0 or not},
    plus dropout between two layers with a fixed seed."""
    cases = []
    for cell in CELL_NAMES:
        for num_layers in (1, 2):
            for bidirectional in (False, True):
                for lengths in (False, True):
                    for h0 in (False, True):
                        cases.append(LayerCase(cell, num_layers, bidirectional, lengths, h0))
        cases.append(LayerCase(cell, 2, True, True, True, dropout=0.4))
    return cases


def build_parser() -> argparse.ArgumentParser:
    """``scratchrnn gradcheck``'s options (bad ones: one line, exit status 2)."""
    parser = OneLineParser(
        prog="scratchrnn gradcheck",
        description="Check every hand-written recurrent gradient against float64 central "
                    "differences and print the worst relative error per configuration. "
                    "Exit status: 0 when every error is under the bound, 1 when one is not "
                    "(or is NaN) or the check cannot run, 2 for a bad argument.")
    parser.add_argument("--cell", type=cell_arg, choices=CELL_NAMES,
                        help="only this cell ('rnn' is an alias of rnn_tanh)")
    parser.add_argument("--device", default=None, type=device_arg,
                        help="cpu, cuda[:N] or strict (default: $SCRATCHRNN_BACKEND, else cpu)")
    parser.add_argument("--eps", type=float_in(0.0, float("inf"), low_open=True,
                                               high_open=True),
                        default=EPS, help=f"finite-difference step, > 0 (default: {EPS:g})")
    return parser


def passes(error: float) -> bool:
    """An error passes when it is under :data:`BOUND`; NaN never does."""
    return error < BOUND


def print_table(cell: str | None = None, device: str | None = None, eps: float = EPS) -> int:
    """Check every case of :func:`all_layer_cases` (of ``cell``), print one row per case
    and a summary; returns the exit status: 0 if every error passes, else 1."""
    from .engines import default_engine

    be = B.get_backend(None) if device is None else backend_for(device)
    default_engine()                    # SCRATCHRNN_ENGINE: refused before the table starts
    cases = [c for c in all_layer_cases() if cell in (None, c.cell)]
    print(f"{'configuration':<52} {'worst parameter':<22} {'max rel err':>12}")
    worst_all, failed = 0.0, 0
    for case in cases:
        errors = check_layer(case, be, eps=eps)
        # the worst entry: a NaN first (it fails), else the largest
        name = max(errors, key=lambda k: (math.isnan(errors[k]), errors[k]))
        worst = errors[name]
        failed += not passes(worst)
        worst_all = worst if math.isnan(worst) or math.isnan(worst_all) else \
            max(worst_all, worst)
        flag = "" if passes(worst) else "  FAIL"
        print(f"{case.label:<52} {name:<22} {worst:>12.2e}{flag}")
    verdict = "ok" if not failed else f"FAILED ({failed} of {len(cases)} configurations)"
    print(f"\nworst relative error over {len(cases)} configurations: {worst_all:.2e} "
          f"(bound {BOUND:g}) -- {verdict}")
    return 0 if not failed else 1


def main(argv: list[str] | None = None) -> int:
    """``scratchrnn gradcheck`` (``python -m scratchrnn.gradcheck``): the table, with the
    commands' exits (:mod:`scratchrnn._command`): 0 ok, 1 a failure or an error while
    checking (one line), 2 a bad argument (one line)."""
    args = build_parser().parse_args(argv)
    return one_line_errors("gradcheck", lambda: print_table(args.cell, args.device, args.eps))


if __name__ == "__main__":         # Ctrl-C: one line and status 130, as `scratchrnn gradcheck`
    from ._interrupt import run_command

    raise SystemExit(run_command(main))
