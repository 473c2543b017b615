"""Multi-layer, optionally bidirectional RNN / GRU / LSTM layers with PyTorch's API.

    output, h_n = rnn(x, h0=None, lengths=None)        # RNN, GRU
    output, (h_n, c_n) = lstm(x, (h0, c0), lengths)     # LSTM
    dx, dh0 = rnn.backward(d_output, dh_n=None)          # BPTT, grads accumulate
    dx, (dh0, dc0) = lstm.backward(d_output, (dh_n, dc_n))

Shapes (time-major unless ``batch_first``): x (T, B, I), output (T, B, D·H),
h_n (D·L, B, H) with index ``layer·D + direction``. Parameters carry PyTorch's
names (``weight_ih_l0``, ``bias_hh_l1_reverse``...), shapes and
initialisation U(-1/√H, 1/√H), so weights move between the two freely.

Layer l reads the previous layer's output (both directions concatenated),
with inverted dropout between layers in training mode. Each direction of
each layer is one run of an engine (:mod:`scratchrnn.engines`) over its
cell: ``engine="auto"`` picks the best for the arrays (``layer.engine_for(x)``
says which), ``"reference"`` is the loop to read, and ``checkpoint_every``
wraps whichever runs in segment replay.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend as B
from ..backend import Array, Generator
from ..cells import GRU_CELL, LSTM_CELL, LSTM_PROJ_CELL, CellParams, CellSpec, elman_spec
from ..engines import (
    Checkpointed,
    Engine,
    check_engine_name,
    default_engine,
    segment_length,
    select_engine,
)
from . import checks
from .module import Module, Parameter


class RNNBase(Module):
    """The shared machinery; use :class:`RNN`, :class:`GRU` or :class:`LSTM`."""

    def __init__(self, cell: CellSpec, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, dtype: str = "float32",
                 device: str | B.Backend | None = None, generator: Generator | None = None,
                 checkpoint_every: int | bool | str | None = None, engine: str | None = None,
                 allow_tf32: bool | None = None, proj_size: int = 0) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if not isinstance(proj_size, int) or isinstance(proj_size, bool) or proj_size < 0:
            raise ValueError(f"proj_size: expected an int >= 0, got {proj_size!r}")
        if proj_size and cell is not LSTM_PROJ_CELL:
            raise ValueError(f"proj_size: only the LSTM has a projection, got {proj_size!r}")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size: expected less than hidden_size ({hidden_size}), "
                             f"got {proj_size}")
        for name, value in (("bias", bias), ("batch_first", batch_first),
                            ("bidirectional", bidirectional), ("allow_tf32", allow_tf32)):
            if not (isinstance(value, bool) or (name == "allow_tf32" and value is None)):
                expected = "True, False or None" if name == "allow_tf32" else "True or False"
                raise TypeError(f"{name}: expected {expected}, got {value!r}")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout: expected a float in [0, 1), got {dropout!r}")
        self.cell = cell
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.dropout = float(dropout)
        self.num_directions = 2 if bidirectional else 1
        self.generator = generator   # None: the library's default generator
        if checkpoint_every is not None and checkpoint_every is not False:
            segment_length(1, checkpoint_every)                  # validates it
        # keep every k-th state, recompute the rest in backward (True/'auto': k = ⌈√T⌉)
        self.checkpoint_every = checkpoint_every
        # which engine runs the time loop: "auto" | "reference" | "numba" | "cupy"
        self.engine = check_engine_name(engine if engine is not None else default_engine())
        # float32 GEMMs on TF32 tensor cores (cuda-graph engine; None: CuPy's CUPY_TF32)
        self.allow_tf32 = allow_tf32
        self.proj_size = proj_size
        self.record_hidden_grads = False
        self.hidden_grads: dict[tuple[int, int], Array] = {}
        self._clear_cache()

        backend = B.get_backend(device)
        init = generator or B.default_generator()
        G, H, k = cell.gates, hidden_size, 1.0 / math.sqrt(hidden_size)
        P = self.output_size                          # h's size: proj_size or hidden_size
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else P * self.num_directions
            for direction in range(self.num_directions):
                sfx = self._suffix(layer, direction)
                shapes = [("weight_ih", (G * H, layer_in)), ("weight_hh", (G * H, P))]
                if bias:
                    shapes += [("bias_ih", (G * H,)), ("bias_hh", (G * H,))]
                if cell.projection:
                    shapes += [("weight_hr", (P, H))]
                for name, shape in shapes:   # PyTorch's order, so one seed = one init
                    setattr(self, name + sfx,
                            Parameter(init.uniform(-k, k, shape, backend, dtype)))

    # ---- names and parameters ------------------------------------------ #
    @property
    def output_size(self) -> int:
        """The size of h (and of each direction's output): proj_size, else hidden_size."""
        return self.proj_size or self.hidden_size

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction == 1 else "")

    def cell_params(self, layer: int, direction: int) -> CellParams:
        """The arrays of one direction of one layer."""
        sfx = self._suffix(layer, direction)
        ps = self._parameters
        arrays = {field: ps[name + sfx].data if name + sfx in ps else None
                  for field, name in CellParams.NAMES.items()}
        return CellParams(**arrays)

    def _accumulate(self, layer: int, direction: int, grads: CellParams) -> None:
        sfx = self._suffix(layer, direction)
        for name, g in grads.named():
            p = self._parameters[name + sfx]
            p.grad = p.grad + g

    def engine_for(self, x: Array) -> Engine:
        """The engine this layer runs on arrays like ``x`` (checkpointing included)."""
        engine = select_engine(self.engine, x, self.allow_tf32)
        if self.checkpoint_every is not None and self.checkpoint_every is not False:
            engine = Checkpointed(engine, self.checkpoint_every)
        return engine

    def _clear_cache(self) -> None:
        self._tapes: dict[tuple[int, int], Any] = {}
        self._drop_masks: dict[int, Array] = {}
        self._batch = 0
        self._backward_done = False   # set by backward: one backward per forward

    def extra_repr(self) -> str:
        """The arguments shown in the module's repr."""
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False), ("proj_size", 0), ("engine", "auto")):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s

    # ---- forward ------------------------------------------------------- #
    def _state_shapes(self, batch: int) -> list[tuple[int, int, int]]:
        """Shape of each carried state: h (D·L, B, P), then c (D·L, B, H) for the LSTM."""
        DL = self.num_layers * self.num_directions
        return [(DL, batch, self.output_size if j == 0 else self.hidden_size)
                for j in range(self.cell.carry_size)]

    def _initial_carry(self, h0: Any, batch: int, dtype: Any) -> tuple[Array, ...]:
        backend = self.backend
        shapes = self._state_shapes(batch)
        if h0 is None:
            return tuple(backend.xp.zeros(shape, dtype=dtype, device=backend.device)
                         for shape in shapes)
        names = ("h0",) if self.cell.carry_size == 1 else ("h0", "c0")
        if self.cell.carry_size == 1:
            h0 = (h0,)
        elif not (isinstance(h0, (tuple, list)) and len(h0) == 2):
            raise TypeError(f"h0: expected a tuple (h0, c0) for an LSTM, got {type(h0).__name__}")
        for name, h, shape in zip(names, h0, shapes):
            size = "proj_size" if name == "h0" and self.proj_size else "hidden_size"
            checks.check_array(name, h, backend)
            checks.check_shape(name, h, shape, f"(num_layers·num_directions, batch, {size})")
            checks.check_float(name, h, dtype)
            checks.check_finite(name, h)
        return tuple(h0)

    def _check_input(self, x: Any) -> Array:
        backend = self.backend
        checks.check_array("input", x, backend)
        if x.ndim != 3:
            order = "(batch, seq_len, input_size)" if self.batch_first else \
                "(seq_len, batch, input_size)"
            raise ValueError(f"input: expected a 3-D array {order}, got shape {tuple(x.shape)}")
        dtype = self.cell_params(0, 0).w_ih.dtype
        checks.check_float("input", x, dtype, hint=" (integer token ids go through an "
                           "Embedding first)" if B.is_integer(x) else "")
        if x.shape[2] != self.input_size:
            raise ValueError(f"input: expected input_size (last dim) {self.input_size}, got "
                             f"shape {tuple(x.shape)}")
        checks.check_finite("input", x)
        return x

    def _run(self, x: Array, h0: Any, lengths: Any) -> tuple[Array, tuple[Array, ...]]:
        x = self._check_input(x)                                  # before namespace(x)
        xp = B.namespace(x)
        if self.batch_first:
            x = xp.permute_dims(x, (1, 0, 2))                     # (T, B, I)
        T, batch, _ = x.shape
        carry0 = self._initial_carry(h0, batch, x.dtype)           # each (D·L, B, H)
        mask = None if lengths is None else checks.lengths_to_mask(lengths, T, batch,
                                                                   self.backend)
        self._clear_cache()
        self._batch = batch
        finals: list[tuple[Array, ...]] = []
        engine = self.engine_for(x)
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                idx = layer * self.num_directions + d
                out, carry_n, tape = engine.forward(
                    self.cell, layer_in, tuple(c[idx, ...] for c in carry0),
                    self.cell_params(layer, d), mask, reverse=(d == 1))
                self._tapes[(layer, d)] = tape
                outs.append(out)
                finals.append(carry_n)
            layer_in = outs[0] if len(outs) == 1 else xp.concat(outs, axis=2)  # (T, B, D·H)
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                keep = 1.0 - self.dropout
                gen = self.generator or B.default_generator()
                drop = gen.keep_mask(keep, layer_in.shape, self.backend, layer_in.dtype) / keep
                self._drop_masks[layer] = drop
                layer_in = layer_in * drop
        output = xp.permute_dims(layer_in, (1, 0, 2)) if self.batch_first else layer_in
        h_n = tuple(xp.stack([f[j] for f in finals], axis=0)
                    for j in range(self.cell.carry_size))          # each (D·L, B, H)
        return output, h_n

    # ---- backward ------------------------------------------------------ #
    def _run_backward(self, d_output: Any, dh_n: tuple[Any, ...]) -> tuple[Array, tuple]:
        checks.cache_for_backward(self, checks.SPENT if self._backward_done
                                  else self._tapes or None)  # one backward per forward
        backend, xp = self.backend, self.backend.xp
        T = self._tapes[(0, 0)].x.shape[0]
        H = self.output_size
        DH = self.num_directions * H
        dtype = self._tapes[(0, 0)].x.dtype
        shapes = self._state_shapes(self._batch)
        names = ("dh_n",) if self.cell.carry_size == 1 else ("dh_n", "dc_n")
        checks.check_carry_grads(dh_n, names)
        if d_output is not None:
            want = (self._batch, T, DH) if self.batch_first else (T, self._batch, DH)
            checks.check_grad_input("d_output", d_output, want, dtype, backend,
                                    "(the forward output's shape)")
            if self.batch_first:
                d_output = xp.permute_dims(d_output, (1, 0, 2))   # (T, B, D·H)
        for name, d, shape in zip(names, dh_n, shapes):
            if d is not None:
                checks.check_grad_input(name, d, shape, dtype, backend,
                                        "(the final state's shape)")
        self._backward_done = True
        dcarry_n = tuple(
            xp.zeros(shape, dtype=dtype, device=backend.device) if d is None else d
            for d, shape in zip(dh_n, shapes))
        dcarry0: list[Any] = [None] * (self.num_layers * self.num_directions)
        d_in = d_output
        for layer in reversed(range(self.num_layers)):
            if d_in is not None and layer in self._drop_masks:
                d_in = d_in * self._drop_masks[layer]
            dx_sum = None
            for d in range(self.num_directions):
                idx = layer * self.num_directions + d
                dout = None if d_in is None else d_in[:, :, d * H:(d + 1) * H]
                tape = self._tapes[(layer, d)]
                dx, dc0, grads = tape.engine.backward(
                    tape, dout, tuple(c[idx, ...] for c in dcarry_n),
                    self.cell_params(layer, d), record=self.record_hidden_grads)
                if self.record_hidden_grads:
                    self.hidden_grads[(layer, d)] = self._tapes[(layer, d)].hidden_grads
                self._accumulate(layer, d, grads)
                dcarry0[idx] = dc0
                dx_sum = dx if dx_sum is None else dx_sum + dx
            d_in = dx_sum                                         # (T, B, I of layer)
        dx = xp.permute_dims(d_in, (1, 0, 2)) if self.batch_first else d_in
        dh0 = tuple(xp.stack([c[j] for c in dcarry0], axis=0)
                    for j in range(self.cell.carry_size))
        return dx, dh0


class _HiddenStateRNN(RNNBase):
    """Forward/backward for the cells whose state is h alone (Elman, GRU)."""

    def forward(self, x: Array, h0: Array | None = None, lengths: Any = None
                ) -> tuple[Array, Array]:
        """x (T, B, I) -> output (T, B, D·H), h_n (D·L, B, H)."""
        output, (h_n,) = self._run(x, h0, lengths)
        return output, h_n

    def backward(self, d_output: Array | None, dh_n: Array | None = None
                 ) -> tuple[Array, Array]:
        """∂L/∂output, ∂L/∂h_n -> ∂L/∂x, ∂L/∂h0; parameter gradients accumulate."""
        dx, (dh0,) = self._run_backward(d_output, (dh_n,))
        return dx, dh0


class RNN(_HiddenStateRNN):
    """Elman RNN: h_t = φ(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), φ = tanh | relu.

    ``RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, *, dtype, device, generator)``
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, **kwargs: Any) -> None:
        super().__init__(elman_spec(nonlinearity), input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, **kwargs)
        self.nonlinearity = nonlinearity


class GRU(_HiddenStateRNN):
    """Gated recurrent unit (PyTorch's equations; see :mod:`scratchrnn.cells.gru`)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, **kwargs: Any) -> None:
        super().__init__(GRU_CELL, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, **kwargs)


class LSTM(RNNBase):
    """Long short-term memory (PyTorch's equations; see :mod:`scratchrnn.cells.lstm`).

    ``proj_size=P`` (0 < P < hidden_size) adds PyTorch's projection
    h_t = (o ⊙ tanh c_t) W_hr^T: h and the output have size P, c keeps
    hidden_size, and each direction of each layer gets ``weight_hr_l{k}`` (P, H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, **kwargs: Any) -> None:
        cell = LSTM_PROJ_CELL if proj_size else LSTM_CELL
        super().__init__(cell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size=proj_size, **kwargs)

    def forward(self, x: Array, h0: tuple[Array, Array] | None = None, lengths: Any = None
                ) -> tuple[Array, tuple[Array, Array]]:
        """x (T, B, I) -> output (T, B, D·H), (h_n, c_n) each (D·L, B, H)."""
        output, (h_n, c_n) = self._run(x, h0, lengths)
        return output, (h_n, c_n)

    def backward(self, d_output: Array | None,
                 dh_n: tuple[Array | None, Array | None] | None = None
                 ) -> tuple[Array, tuple[Array, Array]]:
        """∂L/∂output, (∂L/∂h_n, ∂L/∂c_n) -> ∂L/∂x, (∂L/∂h0, ∂L/∂c0)."""
        dx, (dh0, dc0) = self._run_backward(d_output, dh_n if dh_n is not None else (None, None))
        return dx, (dh0, dc0)
