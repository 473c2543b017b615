"""What every cell shares: parameters, the cell description, the recurrence, the full step.

A cell is stated once, as two *pointwise* functions of its file:

* ``forward(x_1..x_G, h_1..h_G, h_prev[, c_prev])`` takes the G gate blocks
  of the input projection ``xw = x W_ih^T + b_ih`` and of the recurrent
  projection ``hw = h_prev W_hh^T + b_hh`` (each (B, H)) and the carried
  state, and returns the new state and the cell's cache;
* ``backward(dh[, dc], h_prev[, c_prev], k)`` takes ∂L/∂state and the cache
  and returns the gradients with respect to the gate pre-activations, split
  in the same blocks, and the part of ∂L/∂state_prev that does not go
  through ``W_hh``:

      (da_x blocks), (da_h blocks, or None when equal to da_x), (direct dstate_prev)

``da_x`` is ∂L/∂xw and ``da_h`` is ∂L/∂hw; they differ only for the GRU,
whose reset gate multiplies the recurrent part of the candidate alone.

Those functions use nothing but ``+ - * /``, the names of their arguments
and ``sigmoid``, ``tanh``, ``relu``, ``relu_prime``, so the same source runs
here on whole arrays (the reference engine) and is compiled, element by
element, into each accelerated engine's kernels (``scratchrnn.engines``).

The recurrence (:func:`recurrence_forward`) wraps them with the matrix
products: ``hw = h_prev W_hh^T + b_hh`` before, and for a cell with an
output projection (LSTM ``proj_size``) ``h = m W_hr^T`` after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

from .. import backend as B
from ..backend import Array

Carry = tuple  # (h,) for Elman and GRU, (h, c) for LSTM -- h (B, P), c (B, H)


@dataclass(slots=True)
class CellParams:
    """One direction of one layer, PyTorch's layout (gate blocks stacked on rows):
    ``w_ih`` (G·H, I), ``w_hh`` (G·H, P), ``b_ih`` and ``b_hh`` (G·H,) or None (no bias),
    ``w_hr`` (P, H) the LSTM's output projection or None (P = H without one).

    Iterating :meth:`named` gives (PyTorch base name, array) for the arrays the
    cell has, so layers, gradients and engines loop over them without naming them.
    """

    w_ih: Array                # (G·H, I)
    w_hh: Array                # (G·H, P)   P = H, or proj_size with a projection
    b_ih: Array | None = None  # (G·H,)     None when bias=False
    b_hh: Array | None = None  # (G·H,)
    w_hr: Array | None = None  # (P, H)     the output projection h = m W_hr^T, if any

    NAMES = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh",
             "w_hr": "weight_hr"}

    def named(self) -> Iterator[tuple[str, Array]]:
        """(PyTorch base name, array) for each array the cell has, None ones skipped."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                yield self.NAMES[f.name], value

    def plus(self, other: CellParams) -> CellParams:
        """The element-wise sum of two gradient sets (None stays None)."""
        return CellParams(*(None if getattr(self, f.name) is None
                            else getattr(self, f.name) + getattr(other, f.name)
                            for f in fields(self)))


@dataclass(frozen=True)
class CellSpec:
    """A cell as the engines see it: its pointwise math and what it carries.

    ``state`` names the carried arrays (``("h",)`` or ``("h", "c")``), h first;
    ``cache`` is the dataclass its forward returns (its fields are what a
    kernel keeps per step); ``projection`` adds ``h = m W_hr^T`` after the
    pointwise forward (LSTM with ``proj_size``).
    """

    name: str                  # "rnn_tanh" | "rnn_relu" | "gru" | "lstm" | "lstm_proj"
    gates: int                 # G: 1 Elman, 3 GRU, 4 LSTM
    state: tuple[str, ...]     # carried arrays, h first
    cache: type                # the pointwise forward's cache dataclass
    forward: Callable[..., tuple[Carry, Any]]
    backward: Callable[..., tuple[tuple, tuple | None, tuple]]
    projection: bool = False   # h = m W_hr^T (PyTorch's proj_size)
    separate_h_grad: bool = False  # backward returns da_h apart from da_x (the GRU)

    @property
    def carry_size(self) -> int:
        """How many arrays the cell carries: 1 (h) or 2 (h, c)."""
        return len(self.state)


# --------------------------------------------------------------------------- #
# The pointwise vocabulary, on whole arrays (the kernels have their own).
# --------------------------------------------------------------------------- #
def sigmoid(a: Array) -> Array:
    """σ(a) = 1 / (1 + e^-a), computed as (1 + tanh(a/2)) / 2: no overflow for any a."""
    return 0.5 * (B.namespace(a).tanh(0.5 * a) + 1.0)


def tanh(a: Array) -> Array:
    """tanh(a), element-wise; its derivative is read off the output: 1 - tanh²."""
    return B.namespace(a).tanh(a)


def relu(a: Array) -> Array:
    """max(a, 0), element-wise; its derivative is :func:`relu_prime` of the output."""
    return B.namespace(a).maximum(a, 0.0)


def relu_prime(h: Array) -> Array:
    """ReLU' read off its output: 1 where h > 0, else 0."""
    xp = B.namespace(h)
    return xp.astype(h > 0, h.dtype)


# --------------------------------------------------------------------------- #
# The recurrence: the pointwise math between the matrix products of one step.
# --------------------------------------------------------------------------- #
def gate_blocks(a: Array, G: int) -> list[Array]:
    """(B, G·H) -> G arrays (B, H), in PyTorch's gate order."""
    H = a.shape[1] // G
    return [a[:, g * H:(g + 1) * H] for g in range(G)]


def recurrent_projection(h_prev: Array, p: CellParams) -> Array:
    """h_prev W_hh^T + b_hh   (B, G·H)"""
    hw = h_prev @ p.w_hh.T
    return hw if p.b_hh is None else hw + p.b_hh


@dataclass(slots=True)
class RecurrenceCache:
    """What :func:`recurrence_backward` needs of one step: ``carry_prev`` the state
    entering it, ``(h_prev,)`` (B, P) or ``(h_prev, c_prev)`` ((B, P), (B, H));
    ``cell`` the cell's own cache (ElmanCache, GRUCache or LSTMCache: its gates, each
    (B, H)); ``m`` (B, H) the state before the output projection h = m W_hr^T (an LSTM
    with ``proj_size``), else None."""

    carry_prev: Carry      # the state entering the step: (h_prev,) or (h_prev, c_prev)
    cell: Any              # the cell's own cache: gates (B, H) each
    m: Array | None        # (B, H) the state before the output projection, if any


def recurrence_forward(cell: CellSpec, xw: Array, carry: Carry, p: CellParams
                       ) -> tuple[Carry, RecurrenceCache]:
    """carry_t from xw_t (B, G·H) and carry_{t-1}: hw, the pointwise forward, the projection."""
    hw = recurrent_projection(carry[0], p)                             # (B, G·H)
    new, k = cell.forward(*gate_blocks(xw, cell.gates), *gate_blocks(hw, cell.gates), *carry)
    m = None
    if cell.projection:
        m = new[0]                                                     # (B, H)
        new = (m @ p.w_hr.T,) + tuple(new[1:])                         # h = m W_hr^T (B, P)
    return new, RecurrenceCache(carry, k, m)


def recurrence_backward(cell: CellSpec, dcarry: Carry, rc: RecurrenceCache, p: CellParams
                        ) -> tuple[Array, Array, Carry]:
    """∂L/∂carry_t -> ``da_x``, ``da_h`` (B, G·H) and ∂L/∂carry_{t-1} (through W_hh too).

    With a projection, ∂L/∂m = ∂L/∂h W_hr first (dW_hr = Σ_t ∂L/∂h_t^T m_t is
    left to the caller, who has every step's ∂L/∂h_t).
    """
    xp = B.namespace(dcarry[0])
    dstate = dcarry
    if cell.projection:
        dstate = (dcarry[0] @ p.w_hr,) + tuple(dcarry[1:])            # ∂L/∂m (B, H)
    da_x, da_h, direct = cell.backward(*dstate, *rc.carry_prev, rc.cell)
    da_x = xp.concat(list(da_x), axis=1)                               # (B, G·H)
    da_h = da_x if da_h is None else xp.concat(list(da_h), axis=1)
    dh_prev = da_h @ p.w_hh                                            # (B, P)
    if not _is_zero(direct[0]):
        dh_prev = dh_prev + direct[0]
    return da_x, da_h, (dh_prev,) + tuple(direct[1:])


def _is_zero(v: Any) -> bool:
    return isinstance(v, (int, float)) and v == 0


# --------------------------------------------------------------------------- #
# The full single step (input projection + recurrence), for people studying
# the math and for the step-level gradient tests.
# --------------------------------------------------------------------------- #
@dataclass(slots=True)
class StepCache:
    """What a ``*_step_forward`` keeps for its ``*_step_backward``: ``x`` (B, I) the
    step's input, ``params`` the :class:`CellParams` it used (W_ih (G·H, I), W_hh
    (G·H, P), b_ih, b_hh (G·H,), W_hr (P, H) or None), and ``recur`` the
    :class:`RecurrenceCache`: the state entering the step (``recur.carry_prev``) and
    the gates (``recur.cell``: ``h`` for Elman; ``r, z, n, hn`` for the GRU;
    ``i, f, g, o, tanh_c`` for the LSTM, each (B, H))."""

    x: Array               # (B, I)
    params: CellParams     # the parameters of the step
    recur: RecurrenceCache  # state entering the step and the cell's gates


def check_step_inputs(cell: CellSpec, x: Any, carry: Carry, p: Any) -> None:
    """Refuse what a layer would refuse, with the layers' messages: parameters that are
    not one floating dtype on one backend or do not fit together, and an ``x`` (B, I),
    ``h_prev`` (B, P), ``c_prev`` (B, H) of another backend, dtype or shape (NaN/Inf
    too, when ``set_check_finite(True)`` is on)."""
    from ..nn import checks  # the layers' checks (lazily: scratchrnn.nn imports cells)

    if not isinstance(p, CellParams):
        raise TypeError(f"params: expected a CellParams, got {type(p).__name__}")
    if not B.is_array(p.w_ih) or p.w_ih.ndim != 2 or not B.is_floating(p.w_ih):
        got = f"shape {tuple(p.w_ih.shape)}, dtype {B.dtype_name(p.w_ih)}" \
            if B.is_array(p.w_ih) else type(p.w_ih).__name__
        raise TypeError(f"params.w_ih: expected a 2-D floating-point array (G·H, I), got {got}")
    be, dtype = B.backend_of(p.w_ih), p.w_ih.dtype
    GH, I = p.w_ih.shape
    if GH % cell.gates:
        raise ValueError(f"params.w_ih: expected {cell.gates}·hidden_size rows "
                         f"({cell.name}), got shape {(GH, I)}")
    H = GH // cell.gates
    P = p.w_hr.shape[0] if cell.projection and B.is_array(p.w_hr) else H
    expected = {"w_hh": ((GH, P), "(G·H, P)"), "b_ih": ((GH,), "(G·H,)"),
                "b_hh": ((GH,), "(G·H,)"), "w_hr": ((P, H), "(P, H)")}
    for field, (shape, meaning) in expected.items():
        value = getattr(p, field)
        if value is None and (field.startswith("b_") or not cell.projection):
            continue           # no bias; no projection
        if value is None or field == "w_hr" and not cell.projection:
            raise ValueError(f"params.{field}: expected "
                             f"{'an array' if value is None else 'None'} for {cell.name}, "
                             f"got {'None' if value is None else 'an array'}")
        checks.check_array(f"params.{field}", value, be)
        checks.check_float(f"params.{field}", value, dtype)
        checks.check_shape(f"params.{field}", value, shape, meaning)
    checks.check_array("x", x, be)
    checks.check_float("x", x, dtype)
    checks.check_shape("x", x, (None, I), "(batch, input_size)")
    checks.check_finite("x", x)
    for name, c, size, meaning in zip(cell.state, carry, (P, H),
                                      ("(batch, P)" if cell.projection else "(batch, H)",
                                       "(batch, H)")):
        checks.check_array(f"{name}_prev", c, be)
        checks.check_float(f"{name}_prev", c, dtype)
        checks.check_shape(f"{name}_prev", c, (x.shape[0], size), meaning)
        checks.check_finite(f"{name}_prev", c)


def check_step_grads(cell: CellSpec, dcarry: Carry, cache: Any) -> None:
    """``dh`` (B, P) [, ``dc`` (B, H)] must match the forward step's backend, dtype and
    shapes (the layers' upstream-gradient check), and ``cache`` be a step's cache."""
    from ..nn import checks  # the layers' checks (lazily: scratchrnn.nn imports cells)

    if not isinstance(cache, StepCache):
        raise TypeError(f"cache: expected the StepCache of a *_step_forward, got "
                        f"{type(cache).__name__}")
    carry_prev = cache.recur.carry_prev
    be = B.backend_of(cache.x)
    for name, g, c in zip(cell.state, dcarry, carry_prev):
        checks.check_grad_input(f"d{name}", g, c.shape, c.dtype, be,
                                f"(batch, {'P' if name == 'h' and cell.projection else 'H'})")


def step_forward(cell: CellSpec, x: Array, carry: Carry, p: CellParams
                 ) -> tuple[Carry, StepCache]:
    """xw = x W_ih^T + b_ih, then the cell's recurrence (inputs checked first)."""
    check_step_inputs(cell, x, carry, p)
    xw = x @ p.w_ih.T
    if p.b_ih is not None:
        xw = xw + p.b_ih                                               # (B, G·H)
    new_carry, rc = recurrence_forward(cell, xw, carry, p)
    return new_carry, StepCache(x, p, rc)


def step_backward(cell: CellSpec, dcarry: Carry, cache: StepCache
                  ) -> tuple[Array, Carry, CellParams]:
    """Returns ``dx`` (B, I), ``dcarry_prev`` and the parameter gradients."""
    check_step_grads(cell, dcarry, cache)
    xp = B.namespace(cache.x)
    p, rc = cache.params, cache.recur
    da_x, da_h, dcarry_prev = recurrence_backward(cell, dcarry, rc, p)
    grads = CellParams(
        w_ih=da_x.T @ cache.x,                                         # (G·H, I)
        w_hh=da_h.T @ rc.carry_prev[0],                                # (G·H, P)
        b_ih=None if p.b_ih is None else xp.sum(da_x, axis=0),          # (G·H,)
        b_hh=None if p.b_hh is None else xp.sum(da_h, axis=0),
        w_hr=None if rc.m is None else dcarry[0].T @ rc.m,              # (P, H)
    )
    return da_x @ p.w_ih, dcarry_prev, grads
