"""One step's derivatives, read off the cell's own backward.

Write the carried state as one vector s_t of size S (h_t for Elman and GRU,
[h_t, c_t] for the LSTM: S = H, or P + H with ``proj_size``) and the layer's
parameters as one vector θ of size N_θ (``weight_ih``, ``weight_hh``,
``bias_ih``, ``bias_hh``[, ``weight_hr``], each flattened row-major, in that
order). One step is a function s_t = F(s_{t-1}, x_t; θ). Its two derivatives

    J_t = ∂s_t/∂s_{t-1}             (S, S)     the step Jacobian
    M_t = ∂s_t/∂θ at fixed s_{t-1}  (S, N_θ)   the immediate sensitivity

are what BPTT, RTRL and truncated BPTT are built from. The cell's backward
(:func:`scratchrnn.cells.base.recurrence_backward`) computes the vector-Jacobian
product u ↦ u^T ∂s_t/∂(s_{t-1}, gates); fed the S basis vectors e_i as the
upstream gradient u, it returns the S rows of J_t, and its gate gradients
``da_x``, ``da_h`` give the rows of M_t exactly as the layer's own weight
gradients are formed (dW_ih = da_x^T x_t, dW_hh = da_h^T h_{t-1}, ...).
The S basis vectors ride in the batch: the step is run on S·B rows, row
i·B + b holding sequence b and basis vector e_i.

Past a sequence's end (``lengths``) the layers freeze the state: there
J_t = I and M_t = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import backend as B
from ..backend import Array
from ..cells.base import Carry, CellParams, CellSpec, recurrence_backward, recurrence_forward
from ..engines.reference import ReferenceEngine, Tape, input_projection
from ..nn import checks
from ..nn.recurrent import RNNBase

MAX_BYTES = 256 * 2**20   # default memory limit of the study tools (256 MiB)


@dataclass(slots=True)
class Problem:
    """A single-layer, one-direction layer and one batch, time-major."""

    layer: RNNBase
    cell: CellSpec
    p: CellParams
    names: list[str]          # the layer's parameter names, in θ's order
    shapes: list[tuple]       # their shapes
    x: Array                  # (T, B, I)
    carry0: Carry             # h0 (B, P)[, c0 (B, H)]
    mask: Array | None        # (T, B, 1) bool t < length[b], or None
    xw: Array                 # (T, B, G·H) x W_ih^T + b_ih
    tape: Tape                # the reference engine's forward: tape.caches[t].carry_prev
    single: bool              # x was one sequence (T, I): results drop the batch axis

    @property
    def sizes(self) -> tuple[int, ...]:
        """The size of each carried array: (P,) or (P, H)."""
        return tuple(c.shape[1] for c in self.carry0)

    @property
    def state_size(self) -> int:
        """S, the size of the state s_t: H, or H + H (h and c) for the LSTM."""
        return sum(self.sizes)

    @property
    def num_params(self) -> int:
        """N_θ, the number of the layer's parameters."""
        return sum(_numel(s) for s in self.shapes)

    @property
    def xp(self) -> Any:
        """The array namespace of the input."""
        return B.namespace(self.x)

    def carry_before(self, t: int) -> Carry:
        """s_{t-1}: the state entering step t (carry0 for t = 0)."""
        return self.tape.caches[t].carry_prev


def _numel(shape: tuple) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def check_layer(layer: Any, what: str = "layer") -> RNNBase:
    """The study tools take one layer of one direction: say which argument is wrong."""
    if not isinstance(layer, RNNBase):
        raise TypeError(f"{what}: expected a scratchrnn RNN, GRU or LSTM layer, got "
                        f"{type(layer).__name__}")
    if layer.num_layers != 1:
        raise ValueError(f"{what}: expected num_layers=1 (one layer: its state is one vector "
                         f"per step), got num_layers={layer.num_layers}; study each layer of "
                         f"a stack as its own single-layer RNN")
    if layer.bidirectional:
        raise ValueError(f"{what}: expected bidirectional=False (one direction of time), got "
                         f"bidirectional=True")
    return layer


def prepare(layer: Any, x: Any, h0: Any = None, lengths: Any = None) -> Problem:
    """Validate the arguments as the layer does and run the reference forward.

    ``x`` is what the layer takes ((T, B, I), or (B, T, I) with ``batch_first``)
    or one sequence (T, I); ``h0`` as the layer takes it ((1, B, P), or the pair
    (h0, c0) for an LSTM).
    """
    layer = check_layer(layer)
    single = B.is_array(x) and x.ndim == 2
    if single:
        x = B.namespace(x).expand_dims(x, axis=1 if not layer.batch_first else 0)
    x = layer._check_input(x)
    xp = B.namespace(x)
    if layer.batch_first:
        x = xp.permute_dims(x, (1, 0, 2))                             # (T, B, I)
    T, Bn, _ = x.shape
    carry0 = tuple(c[0, ...] for c in layer._initial_carry(h0, Bn, x.dtype))
    mask = None if lengths is None else checks.lengths_to_mask(lengths, T, Bn, layer.backend)
    p = layer.cell_params(0, 0)
    named = list(p.named())
    _, _, tape = ReferenceEngine().forward(layer.cell, x, carry0, p, mask)
    return Problem(layer, layer.cell, p, [n + "_l0" for n, _ in named],
                   [tuple(a.shape) for _, a in named], x, carry0, mask,
                   input_projection(x, p), tape, single)


def check_d_output(prob: Problem, d_output: Any) -> Array:
    """∂L/∂output in the layer's layout -> (T, B, P), zero past each sequence's end."""
    layer, xp = prob.layer, prob.xp
    T, Bn, _ = prob.x.shape
    P = prob.sizes[0]
    if prob.single and B.is_array(d_output) and d_output.ndim == 2:
        d_output = xp.expand_dims(d_output, axis=1 if not layer.batch_first else 0)
    want = (Bn, T, P) if layer.batch_first else (T, Bn, P)
    checks.check_grad_input("d_output", d_output, want, prob.x.dtype, layer.backend,
                            "(the layer's output shape)")
    if layer.batch_first:
        d_output = xp.permute_dims(d_output, (1, 0, 2))
    if prob.mask is not None:                       # the output is 0 there: no gradient flows
        d_output = xp.where(prob.mask, d_output, 0.0)
    return d_output


def check_memory(what: str, n_values: int, itemsize: int, max_bytes: int, formula: str,
                 advice: str) -> None:
    """Refuse, naming the memory it would need, when ``n_values`` exceed ``max_bytes``."""
    need = n_values * itemsize
    if need > max_bytes:
        raise MemoryError(
            f"{what} would hold {need:,} bytes = {_human(need)} ({formula} = {n_values:,} "
            f"values of {itemsize} bytes), above the limit max_bytes={max_bytes:,} "
            f"({_human(max_bytes)}); pass max_bytes={need:,} (or more) to allow it, or {advice}")


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # pragma: no cover


def itemsize(x: Array) -> int:
    """Bytes per element of ``x``'s dtype."""
    return B.to_numpy_dtype(x.dtype).itemsize


def eye_batch(xp: Any, S: int, Bn: int, like: Array) -> Array:
    """B copies of the S×S identity: (B, S, S)."""
    eye = xp.eye(S, dtype=like.dtype, device=B.device_of(like))
    return xp.broadcast_to(eye[None, ...], (Bn, S, S))


def step_derivatives(prob: Problem, t: int, params: bool = True
                     ) -> tuple[Array, Array | None]:
    """J_t (B, S, S) with J_t[b, i, j] = ∂s_t[b, i]/∂s_{t-1}[b, j], and with ``params``
    M_t (B, S, N_θ) = ∂s_t/∂θ with s_{t-1} held fixed (None without ``params``).

    Both come from one call of the cell's backward on S·B rows (the module
    docstring); the forward of the step is run again on the tiled rows so
    that the cache it builds has S·B rows too.
    """
    xp, cell, p = prob.xp, prob.cell, prob.p
    S = prob.state_size
    carry = prob.carry_before(t)                                      # s_{t-1}
    Bn = carry[0].shape[0]

    def tile(a: Array) -> Array:                                      # (B, K) -> (S·B, K)
        return xp.concat([a] * S, axis=0)

    _, rc = recurrence_forward(cell, tile(prob.xw[t, ...]), tuple(tile(c) for c in carry), p)
    basis = xp.reshape(eye_batch(xp, S, Bn, carry[0]), (Bn, S, S))
    basis = xp.reshape(xp.permute_dims(basis, (1, 0, 2)), (S * Bn, S))  # row i·B+b = e_i
    upstream, lo = [], 0
    for size in prob.sizes:                                           # e_i split as (h[, c])
        upstream.append(basis[:, lo:lo + size])
        lo += size
    da_x, da_h, dprev = recurrence_backward(cell, tuple(upstream), rc, p)
    J = xp.concat(list(dprev), axis=1)                                # (S·B, S) rows of J_t
    J = xp.permute_dims(xp.reshape(J, (S, Bn, S)), (1, 0, 2))          # (B, S, S)
    valid = None if prob.mask is None else prob.mask[t, ...]           # (B, 1)
    if valid is not None:                                             # frozen state: J = I
        J = xp.where(valid[:, :, None], J, eye_batch(xp, S, Bn, J))
    if not params:
        return J, None

    G_H = da_x.shape[1]
    da_x3 = xp.reshape(da_x, (S, Bn, G_H))                            # (S, B, G·H)
    da_h3 = xp.reshape(da_h, (S, Bn, G_H))
    x_t, h_prev = prob.x[t, ...], carry[0]                            # (B, I), (B, P)
    parts = {"w_ih": da_x3[:, :, :, None] * x_t[None, :, None, :],     # (S, B, G·H, I)
             "w_hh": da_h3[:, :, :, None] * h_prev[None, :, None, :],  # (S, B, G·H, P)
             "b_ih": da_x3, "b_hh": da_h3}                             # (S, B, G·H)
    if rc.m is not None:                                              # h = m W_hr^T
        dh = xp.reshape(upstream[0], (S, Bn, prob.sizes[0]))           # (S, B, P)
        m = xp.reshape(rc.m, (S, Bn, rc.m.shape[1]))                   # (S, B, H)
        parts["w_hr"] = dh[:, :, :, None] * m[:, :, None, :]           # (S, B, P, H)
    flat = [xp.reshape(parts[f], (S, Bn, -1)) for f, n in CellParams.NAMES.items()
            if n + "_l0" in prob.names]
    M = xp.permute_dims(xp.concat(flat, axis=2), (1, 0, 2))            # (B, S, N_θ)
    if valid is not None:
        M = xp.where(valid[:, :, None], M, 0.0)
    return J, M


def unflatten(prob: Problem, theta: Array) -> dict[str, Array]:
    """A gradient vector (N_θ,) -> {parameter name: array of its shape}."""
    xp, out, lo = prob.xp, {}, 0
    for name, shape in zip(prob.names, prob.shapes):
        n = _numel(shape)
        out[name] = xp.reshape(theta[lo:lo + n], shape)
        lo += n
    return out


def flatten(prob: Problem, grads: dict[str, Array]) -> Array:
    """{parameter name: array} -> one vector (N_θ,) in θ's order."""
    xp = prob.xp
    return xp.concat([xp.reshape(grads[n], (-1,)) for n in prob.names])
