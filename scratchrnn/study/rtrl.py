"""Real-time recurrent learning (Williams & Zipser 1989): the gradient carried forward.

BPTT runs the sequence forward, keeps it, and sends ∂L/∂s_t backward. RTRL
instead carries the sensitivity of the state to every parameter forward,

    P_t = ∂s_t/∂θ = J_t P_{t-1} + M_t        P_{-1} = 0    (B, S, N_θ)

(J_t = ∂s_t/∂s_{t-1}, M_t = ∂s_t/∂θ with s_{t-1} fixed: :mod:`.steps`), and
adds each output's share of the gradient as soon as the output exists:

    dθ += Σ_b ∂L/∂h_t[b] · P_t[b, :P]        (the h rows of P_t)

so it needs no memory of the past -- but P_t has S·N_θ entries and
J_t P_{t-1} costs S²·N_θ per step and sequence. Per step, for S the state
size (H, or 2H for an LSTM) and N_θ ≈ G·H·(I + H) the number of parameters:

======  ==============================  =====================
method  memory                          time per step
======  ==============================  =====================
RTRL    O(S·N_θ)  (P_t, whatever T)     O(S²·N_θ)   ~ H⁴
BPTT    O(T·S)    (the tape)            O(S·N_θ)    ~ H²
======  ==============================  =====================

Both compute the same number: the weight gradient of the whole sequence's
loss. :func:`rtrl_vs_bptt_cost` measures both on a few sizes.

With ``reset_every=k``, P is set to 0 at steps 0, k, 2k, ...: the gradient
of the trainer's chunked truncated BPTT (state carried across chunks,
gradient cut at their boundaries; :func:`.truncation.chunked_gradient`).
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from .. import backend as B
from ..backend import Array
from ..backend.blas_threads import get_blas_threads, set_blas_threads
from .steps import (
    MAX_BYTES,
    check_d_output,
    check_memory,
    itemsize,
    prepare,
    step_derivatives,
    unflatten,
)


def rtrl_gradients(layer: Any, x: Array, d_output: Array, h0: Any = None, lengths: Any = None,
                   reset_every: int | None = None, max_bytes: int = MAX_BYTES
                   ) -> dict[str, Array]:
    """The weight gradient Σ_t ∂L/∂h_t · ∂h_t/∂θ, carried forward step by step.

    ``x``, ``h0``, ``lengths`` and ``d_output`` (= ∂L/∂output, the output's
    shape) as the layer takes them; returns {parameter name: gradient}, keyed
    and shaped like ``layer.named_parameters()`` -- what ``layer.backward(d_output)``
    accumulates into ``.grad``. The layer itself (its ``.grad``, its tapes) is
    not touched. P_t holds B·S·N_θ values (checked, with M_t, against ``max_bytes``).
    """
    if reset_every is not None and (not isinstance(reset_every, int)
                                    or isinstance(reset_every, bool) or reset_every < 1):
        raise ValueError(f"reset_every: expected a positive int or None, got {reset_every!r}")
    prob = prepare(layer, x, h0, lengths)
    d_output = check_d_output(prob, d_output)                         # (T, B, P)
    xp = prob.xp
    T, Bn, _ = prob.x.shape
    S, n_theta, P_h = prob.state_size, prob.num_params, prob.sizes[0]
    check_memory("rtrl_gradients", 2 * Bn * S * n_theta, itemsize(prob.x), max_bytes,
                 f"2·B·S·N_θ with B={Bn}, S={S}, N_θ={n_theta}",
                 "use fewer sequences or a smaller layer")
    dev = prob.layer.backend.device
    P = xp.zeros((Bn, S, n_theta), dtype=prob.x.dtype, device=dev)     # ∂s_{-1}/∂θ = 0
    dtheta = xp.zeros((n_theta,), dtype=prob.x.dtype, device=dev)
    for t in range(T):
        if reset_every is not None and t % reset_every == 0:
            P = xp.zeros_like(P)                                      # the chunk's start
        J, M = step_derivatives(prob, t)                              # (B, S, S), (B, S, N_θ)
        P = xp.matmul(J, P) + M                                       # P_t = J_t P_{t-1} + M_t
        dh = d_output[t, ...]                                         # (B, P) ∂L/∂h_t
        dtheta = dtheta + xp.sum(xp.matmul(dh[:, None, :], P[:, :P_h, :])[:, 0, :], axis=0)
    return unflatten(prob, dtheta)


@dataclass(slots=True)
class CostRow:
    """One size, both ways: seconds for forward + gradient, peak bytes allocated."""

    cell: str
    T: int                   # sequence length
    H: int                   # hidden size
    state: int               # S = S
    params: int              # N_θ
    rtrl_seconds: float
    bptt_seconds: float
    rtrl_peak_bytes: int     # tracemalloc peak (NumPy); -1 on other backends
    bptt_peak_bytes: int
    rtrl_held_bytes: int     # P_t: B·S·N_θ values, whatever T
    bptt_held_bytes: int     # the tape: T·B·(state + cache) values, kept for backward


def rtrl_vs_bptt_cost(sizes: Sequence[tuple[int, int]], cell: str = "rnn_tanh",
                      batch: int = 1, input_size: int = 2, device: str = "numpy",
                      seed: int = 0, threads: int | None = 1) -> list[CostRow]:
    """Measure RTRL against the layer's BPTT (reference engine) for each (T, H) in ``sizes``.

    Both run in float64 on random x and d_output; each time is the best of
    two runs. With ``threads=1`` (the default) BLAS runs on one thread and the
    time is this process's CPU time (``time.process_time``): it counts the
    work, whatever else the machine runs. Another count, or None (BLAS left
    as it is), measures wall time. Peak memory is measured by ``tracemalloc`` (it sees NumPy's
    allocations) in a separate run; held memory is counted from shapes. The
    figures depend on the machine: print them with :func:`cost_table`.
    """
    from ..cells import cell_name
    from ..nn.recurrent import GRU, LSTM, RNN

    cell = cell_name(cell, ("rnn_tanh", "rnn_relu", "gru", "lstm"))
    backend = B.get_backend(device)
    rows = []
    for T, H in sizes:
        gen = B.Generator(seed)
        kw = dict(dtype="float64", device=backend, generator=gen, engine="reference")
        if cell.startswith("rnn_"):
            layer = RNN(input_size, H, nonlinearity=cell[4:], **kw)
        else:
            layer = {"gru": GRU, "lstm": LSTM}[cell](input_size, H, **kw)
        x = gen.normal((T, batch, input_size), backend, "float64")
        dout = gen.normal((T, batch, H), backend, "float64")

        runs = {"rtrl": partial(rtrl_gradients, layer, x, dout, max_bytes=2**40),
                "bptt": partial(_bptt, layer, x, dout)}
        times = {k: min(_seconds(f, threads) for _ in range(2)) for k, f in runs.items()}
        peaks = {k: _peak_bytes(f) if backend.name == "numpy" else -1 for k, f in runs.items()}
        S = H * layer.cell.carry_size
        n_theta = sum(int(_size(p.data)) for p in layer.parameters())
        tape = layer._tapes[(0, 0)]
        per_step = S + sum(_size(getattr(tape.caches[0].cell, f)) // batch
                           for f in tape.caches[0].cell.__slots__) if T else 0
        rows.append(CostRow(cell, T, H, S, n_theta, times["rtrl"], times["bptt"],
                            peaks["rtrl"], peaks["bptt"], 8 * batch * S * n_theta,
                            8 * T * batch * per_step))
    return rows


def _bptt(layer: Any, x: Array, dout: Array) -> None:
    """The layer's forward and BPTT backward, gradients into ``.grad``."""
    layer.zero_grad()
    layer(x)
    layer.backward(dout)


def _size(a: Array) -> int:
    n = 1
    for s in a.shape:
        n *= s
    return n


def _seconds(f: Any, threads: int | None) -> float:
    """Seconds f() takes on ``threads`` BLAS threads (the count is restored after):
    this process's CPU time on one thread (the work, however loaded the machine
    is), wall time otherwise."""
    before = get_blas_threads() if threads is not None else None
    if before is not None:
        set_blas_threads(threads)
    try:
        clock = time.process_time if threads == 1 else time.perf_counter
        start = clock()
        f()
        return clock() - start
    finally:
        if before is not None:
            set_blas_threads(before)


def _peak_bytes(f: Any) -> int:
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def cost_table(rows: Sequence[CostRow]) -> str:
    """The rows of :func:`rtrl_vs_bptt_cost` as a fixed-width text table."""
    head = (f"{'cell':8s} {'T':>5s} {'H':>4s} {'N_θ':>7s} {'RTRL s':>9s} {'BPTT s':>9s} "
            f"{'ratio':>7s} {'RTRL peak':>10s} {'BPTT peak':>10s} {'RTRL held':>10s} "
            f"{'BPTT held':>10s}")
    lines = [head]
    for r in rows:
        kib = [f"{b / 1024:8.0f}Ki" if b >= 0 else f"{'-':>10s}"
               for b in (r.rtrl_peak_bytes, r.bptt_peak_bytes, r.rtrl_held_bytes,
                         r.bptt_held_bytes)]
        lines.append(f"{r.cell:8s} {r.T:5d} {r.H:4d} {r.params:7d} {r.rtrl_seconds:9.4f} "
                     f"{r.bptt_seconds:9.4f} {r.rtrl_seconds / r.bptt_seconds:7.1f} "
                     + " ".join(kib))
    return "\n".join(lines)
