"""The fused engines: per step one matrix product and one generated kernel, each way.

Same contract and results as the reference engine (``engines/reference.py``),
organised for speed. One driver serves every cell and every target:

* ``numba``: NumPy arrays, kernels from :mod:`~scratchrnn.engines.numba_kernels`;
* ``cupy``: CuPy arrays, kernels from :mod:`~scratchrnn.engines.cupy_kernels`;
* ``cuda-graph`` (:mod:`~scratchrnn.engines.cuda_graph`) records the same
  operations once and replays them as one CUDA graph.

What the driver does, for any cell (:func:`forward_ops`, :func:`backward_ops`):

* one GEMM for the input projection of all steps, gate blocks per row
  ``(T, B, G, H)``; the kernels fold the biases in;
* states in one ``(T+1, B, ·)`` array each: step t reads slot ``rp`` and
  writes ``wp``, so h_{t-1} for every t is a slice, ready for dW_hh; the
  cell's cache in one ``(T, B, H)`` array per field;
* per step one product ``h_{t-1} W_hh^T`` into a buffer allocated once, then
  the cell's forward kernel (and, with a projection, ``h = m W_hr^T``);
  backward the same, mirrored, with ``da_h W_hh`` into a buffer;
* weight gradients and ∂L/∂x as one GEMM each over all steps; bias
  gradients summed in the numba kernels, or as one product with a vector
  of ones after the loop.

The operations go through an executor (``ex.gemm``, ``ex.launch``): the
eager one runs each at once; the CUDA-graph engine's records them. On NumPy
arrays with the ``mkl`` wheel installed and ``SCRATCHRNN_MKL=1``,
:class:`MklEager` does the products with MKL and packs W_hh once per call
for the T per-step products (the driver marks them ``reused``); otherwise
NumPy's BLAS does them all.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..cells.base import Carry, CellParams, CellSpec
from .base import Engine


# --------------------------------------------------------------------------- #
# Targets: where the arrays live and who compiles the kernels
# --------------------------------------------------------------------------- #
class NumbaTarget:
    name = "numba"
    bias_in_kernel = True     # the kernels add each step's da rows into db
    xp = np

    @staticmethod
    def available() -> bool:
        """numba imports here (installed is not enough: a numba built for another NumPy
        fails at import, and then the reference engine runs)."""
        try:
            if importlib.util.find_spec("numba") is None:
                return False
            import numba  # noqa: F401
            return True
        except Exception:  # ImportError, or sys.modules["numba"] = None (ValueError)
            return False

    @staticmethod
    def owns(x: Any) -> bool:
        return isinstance(x, np.ndarray)

    @staticmethod
    def mkl() -> Any:
        """MKL (``[mkl]`` extra, ``SCRATCHRNN_MKL=1``), or None: NumPy's BLAS does them."""
        from ..backend import get_blas_threads, mkl_blas

        return mkl_blas.load(threads=get_blas_threads)      # as many threads as NumPy's BLAS

    @staticmethod
    def kernels(cell: CellSpec) -> Any:
        from . import numba_kernels

        return numba_kernels.kernels(cell)

    @staticmethod
    def shared() -> Any:
        from . import numba_kernels

        return numba_kernels


class CupyTarget:
    name = "cupy"
    bias_in_kernel = False    # one reduction after the loop

    @staticmethod
    def available() -> bool:
        from .. import backend as B

        return B.cuda_available()

    @staticmethod
    def owns(x: Any) -> bool:
        return type(x).__module__.startswith("cupy")

    @staticmethod
    def mkl() -> None:
        return None

    @property
    def xp(self) -> Any:
        import cupy

        return cupy

    @staticmethod
    def kernels(cell: CellSpec) -> Any:
        from . import cupy_kernels

        return cupy_kernels.kernels(cell)

    @staticmethod
    def shared() -> Any:
        from . import cupy_kernels

        return cupy_kernels


# --------------------------------------------------------------------------- #
# Executors: run an operation now (eager) -- the graph engine has its own
# --------------------------------------------------------------------------- #
class Eager:
    """Runs each operation as it is issued."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp

    def gemm(self, c: Any, a: Any, b: Any, trans_a: bool = False, trans_b: bool = False,
             reused: bool = False) -> None:
        """c = op(a) @ op(b), every array 2-D and row-major; op = transpose if asked.

        ``reused`` marks a right operand that the same call multiplies by again and
        again (W_hh at every step): an executor may prepare it once.
        """
        self.xp.matmul(a.T if trans_a else a, b.T if trans_b else b, out=c)

    def launch(self, fn: Any, *args: Any) -> None:
        fn(*args)


class MklEager(Eager):
    """Eager on NumPy arrays with MKL's products; a ``reused`` operand is packed once.

    One executor lives for one forward or one backward call, so a packed W_hh
    never outlives the weights it was packed from.
    """

    SMALL = 1 << 20    # M·N·K below this: NumPy's call costs less than the ctypes one

    def __init__(self, mkl: Any) -> None:
        super().__init__(np)
        self.mkl = mkl
        self.packed: dict[tuple[int, bool, int], Any] = {}

    def gemm(self, c: Any, a: Any, b: Any, trans_a: bool = False, trans_b: bool = False,
             reused: bool = False) -> None:
        K = a.shape[0] if trans_a else a.shape[1]
        if c.size * K < self.SMALL or not (
                c.flags.c_contiguous and a.flags.c_contiguous and b.flags.c_contiguous
                and c.dtype == a.dtype == b.dtype):
            return super().gemm(c, a, b, trans_a, trans_b)
        if reused and not trans_a:
            key = (id(b), trans_b, c.shape[0])
            if key not in self.packed:
                self.packed[key] = self.mkl.pack_b(b, trans_b, c.shape[0])
            return self.mkl.gemm_packed(c, a, self.packed[key])
        self.mkl.gemm(c, a, b, trans_a, trans_b)


# --------------------------------------------------------------------------- #
# The buffers of one direction of one layer
# --------------------------------------------------------------------------- #
@dataclass(slots=True)
class Weights:
    """Parameters in the kernels' layout."""

    w_ih: Any          # (G·H, I)
    w_hh: Any          # (G·H, P)
    w_hh_t: Any        # (P, G·H) W_hh^T, contiguous: 15-25% faster per-step products on CPUs
    b_ih: Any          # (G, H)   zeros without bias
    b_hh: Any          # (G, H)
    w_hr: Any          # (P, H) or None
    w_hr_t: Any        # (H, P) or None


def prepare_weights(xp: Any, cell: CellSpec, p: CellParams, dtype: Any) -> Weights:
    GH = p.w_hh.shape[0]
    G = cell.gates
    H = GH // G
    zeros = xp.zeros((G, H), dtype=dtype)
    b_ih = zeros if p.b_ih is None else xp.ascontiguousarray(p.b_ih.reshape(G, H), dtype=dtype)
    b_hh = zeros if p.b_hh is None else xp.ascontiguousarray(p.b_hh.reshape(G, H), dtype=dtype)
    w_hr_t = None if p.w_hr is None else xp.ascontiguousarray(p.w_hr.T)
    return Weights(p.w_ih, p.w_hh, xp.ascontiguousarray(p.w_hh.T), b_ih, b_hh, p.w_hr, w_hr_t)


@dataclass(slots=True)
class Forward:
    """What forward reads and writes. ``x``, ``states[s][first]`` and ``mask`` are inputs."""

    x: Any             # (T, B, I)
    states: tuple      # per state (T+1, B, ·)
    caches: tuple      # per cache field (T, B, H)
    xw: Any            # (T, B, G, H) scratch: the input projection
    hw: Any            # (B, G·H) scratch: h_{t-1} W_hh^T
    out: Any           # (T, B, P)
    m: Any             # (T, B, H) the state before the projection, or None
    mask: Any          # (T, B) bool, or a (1, 1) placeholder
    use_mask: bool
    H: int             # hidden size (the gates' width)


def forward_buffers(xp: Any, cell: CellSpec, T: int, Bn: int, I: int, H: int,
                    state_sizes: tuple[int, ...], dtype: Any, use_mask: bool) -> Forward:
    G = cell.gates
    states = tuple(xp.empty((T + 1, Bn, n), dtype=dtype) for n in state_sizes)
    return Forward(
        x=xp.empty((T, Bn, I), dtype=dtype), states=states,
        caches=tuple(xp.empty((T, Bn, H), dtype=dtype) for _ in fields(cell.cache)),
        xw=xp.empty((T, Bn, G, H), dtype=dtype), hw=xp.empty((Bn, G * H), dtype=dtype),
        out=xp.empty((T, Bn, state_sizes[0]), dtype=dtype),
        m=xp.empty((T, Bn, H), dtype=dtype) if cell.projection else None,
        mask=xp.empty((T, Bn), dtype=bool) if use_mask else xp.ones((1, 1), dtype=bool),
        use_mask=use_mask, H=H)


def forward_ops(ex: Any, target: Any, cell: CellSpec, f: Forward, w: Weights, reverse: bool
                ) -> None:
    """Issue forward: the input projection, then per step one product and one kernel."""
    kern = target.kernels(cell)
    T, Bn, I = f.x.shape
    G, H = cell.gates, f.H
    ex.gemm(f.xw.reshape(T * Bn, G * H), f.x.reshape(T * Bn, I), w.w_ih, trans_b=True)
    hw3 = f.hw.reshape(Bn, G, H)
    hout = f.m if cell.projection else f.out
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        rp, wp = (t + 1, t) if reverse else (t, t + 1)
        ex.gemm(f.hw, f.states[0][rp], w.w_hh_t, reused=True)              # (B, G·H)
        ex.launch(kern.forward_step, t, f.xw, hw3, w.b_ih, w.b_hh, *f.states, rp, wp,
                  *f.caches, hout, f.mask, f.use_mask)
        if cell.projection:                                                 # h = m W_hr^T
            ex.gemm(f.states[0][wp], f.m[t], w.w_hr_t, reused=True)
            ex.launch(target.shared().finish_projection, t, f.states[0], rp, wp, f.out,
                      f.mask, f.use_mask)


@dataclass(slots=True)
class Backward:
    """What backward reads and writes. ``dout``, ``dh_rec`` and ``d_other`` are inputs
    (∂L/∂out and ∂L/∂carry_T); ``dx``, ``grads`` and ``dcarry0`` the results."""

    dout: Any          # (T, B, P), or a (1, B, P) placeholder without ∂L/∂out
    has_dout: bool
    dh_rec: Any        # (B, P) ∂L/∂h carried through W_hh; in: ∂L/∂h_T
    dh_res: Any        # (B, P) the rest of ∂L/∂h
    d_other: tuple     # (B, H) ∂L/∂c and so on; in: ∂L/∂c_T; out: ∂L/∂c_0
    da_x: Any          # (T, B, G, H) ∂L/∂(x W_ih^T + b_ih)
    da_h: Any          # (T, B, G, H) ∂L/∂(h W_hh^T + b_hh); da_x itself but for the GRU
    has_bias: bool
    db_x: Any          # (G, H) Σ da_x (summed even without bias: the kernels add into it)
    db_h: Any          # (G, H) Σ da_h; db_x itself but for the GRU
    rec: Any           # (T, B, P) δh_t, or a (1, 1, 1) placeholder
    keep: bool         # rec is written (recording, or a projection's dW_hr)
    delta: Any         # (B, P) δh_t of this step (projection), or None
    dm: Any            # (B, H) ∂L/∂m (projection), or a (1, 1) placeholder
    ones: Any          # (1, T·B) for the bias sums as a product, or None
    dx: Any            # (T, B, I)
    grads: CellParams


def backward_buffers(xp: Any, cell: CellSpec, f: Forward, has_bias: bool, has_dout: bool,
                     record: bool, bias_in_kernel: bool, dout: Any = None) -> Backward:
    """The backward buffers; ``dout`` (eager engines) is used in place of a buffer of its own."""
    T, Bn, I = f.x.shape
    G, H = cell.gates, f.H
    P = f.states[0].shape[2]
    dt = f.x.dtype
    da_x = xp.empty((T, Bn, G, H), dtype=dt)
    db_x = xp.zeros((G, H), dtype=dt)
    keep = record or cell.projection
    separate = cell.separate_h_grad
    if dout is not None:
        dout = xp.ascontiguousarray(dout, dtype=dt)
    elif has_dout:
        dout = xp.empty((T, Bn, P), dtype=dt)
    else:
        dout = xp.zeros((1, Bn, P), dtype=dt)
    return Backward(
        dout=dout,
        has_dout=has_dout, dh_rec=xp.empty((Bn, P), dtype=dt),
        dh_res=xp.zeros((Bn, P), dtype=dt),
        d_other=tuple(xp.empty((Bn, s.shape[2]), dtype=dt) for s in f.states[1:]),
        da_x=da_x, da_h=xp.empty_like(da_x) if separate else da_x,
        has_bias=has_bias, db_x=db_x, db_h=xp.zeros((G, H), dtype=dt) if separate else db_x,
        rec=xp.zeros((T, Bn, P), dtype=dt) if keep else xp.zeros((1, 1, 1), dtype=dt),
        keep=keep, delta=xp.empty((Bn, P), dtype=dt) if cell.projection else None,
        dm=xp.empty((Bn, H), dtype=dt) if cell.projection else xp.zeros((1, 1), dtype=dt),
        ones=None if bias_in_kernel or not has_bias else xp.ones((1, T * Bn), dtype=dt),
        dx=xp.empty((T, Bn, I), dtype=dt),
        grads=CellParams(w_ih=xp.empty((G * H, I), dtype=dt), w_hh=xp.empty((G * H, P), dtype=dt),
                         w_hr=xp.empty((P, H), dtype=dt) if cell.projection else None))


def backward_ops(ex: Any, target: Any, cell: CellSpec, f: Forward, b: Backward, w: Weights,
                 reverse: bool) -> None:
    """Issue backward: per step (from the last) one kernel and one product, then the GEMMs."""
    kern = target.kernels(cell)
    T, Bn, I = f.x.shape
    G, H = cell.gates, f.H
    P = f.states[0].shape[2]
    for t in (range(T) if reverse else range(T - 1, -1, -1)):
        rp = t + 1 if reverse else t
        if cell.projection:                                       # ∂L/∂m = δ W_hr
            ex.launch(target.shared().carry_in_step, t, b.dh_rec, b.dh_res, b.delta, b.dout,
                      b.has_dout, f.mask, f.use_mask, b.rec)
            ex.gemm(b.dm, b.delta, w.w_hr, reused=True)
        ex.launch(kern.backward_step, t, b.dh_rec, b.dh_res, *b.d_other, b.dout, b.has_dout,
                  *f.states, rp, *f.caches, b.dm, b.da_x, b.da_h, b.db_x, b.db_h, f.mask,
                  f.use_mask, b.rec, b.keep)
        ex.gemm(b.dh_rec, b.da_h[t].reshape(Bn, G * H), w.w_hh, reused=True)   # (B, P)

    h_prev = f.states[0][1:] if reverse else f.states[0][:-1]         # (T, B, P)
    da_x, da_h = b.da_x.reshape(T * Bn, G * H), b.da_h.reshape(T * Bn, G * H)
    ex.gemm(b.grads.w_ih, da_x, f.x.reshape(T * Bn, I), trans_a=True)         # (G·H, I)
    ex.gemm(b.grads.w_hh, da_h, h_prev.reshape(T * Bn, P), trans_a=True)      # (G·H, P)
    if b.ones is not None:                               # Σ_t,b da as a product with ones
        ex.gemm(b.db_x.reshape(1, G * H), b.ones, da_x)
        if cell.separate_h_grad:
            ex.gemm(b.db_h.reshape(1, G * H), b.ones, da_h)
    if cell.projection:                                                       # (P, H)
        ex.gemm(b.grads.w_hr, b.rec.reshape(T * Bn, P), f.m.reshape(T * Bn, H), trans_a=True)
    ex.gemm(b.dx.reshape(T * Bn, I), da_x, w.w_ih)                            # (T, B, I)
    ex.launch(add_into, ex.xp, b.dh_rec, b.dh_res)            # ∂L/∂h_0 = both parts


def add_into(xp: Any, dst: Any, src: Any) -> None:
    """dst += src, in place (nothing allocated: safe inside a CUDA-graph capture)."""
    xp.add(dst, src, out=dst)


def finish_grads(b: Backward, cell: CellSpec, copy: bool) -> CellParams:
    """The gradients of one backward as a CellParams (copies when the buffers are reused)."""
    def take(a: Any) -> Any:
        return None if a is None else (a.copy() if copy else a)

    GH = b.db_x.size
    return CellParams(
        w_ih=take(b.grads.w_ih), w_hh=take(b.grads.w_hh),
        b_ih=b.db_x.reshape(GH).copy() if b.has_bias else None,
        b_hh=b.db_h.reshape(GH).copy() if b.has_bias else None,   # db_h may be db_x itself
        w_hr=take(b.grads.w_hr))


# --------------------------------------------------------------------------- #
# The eager fused engine
# --------------------------------------------------------------------------- #
@dataclass(slots=True)
class FusedTape:
    """What a fused engine keeps from forward for backward."""

    engine: Engine
    cell: CellSpec
    x: Any                        # (T, B, I)
    reverse: bool
    fwd: Forward
    hidden_grads: Any = field(default=None)  # (T, B, P) ∂L/∂h_t if recorded


class FusedEngine(Engine):
    """The fused time loop on one target (see the module docstring), run eagerly."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.name = target.name

    def executor(self) -> Eager:
        """MKL's products (W_hh packed once per call) where the target has them, else xp's."""
        mkl = self.target.mkl() if hasattr(self.target, "mkl") else None
        return Eager(self.target.xp) if mkl is None else MklEager(mkl)

    def supports(self, x: Any) -> bool:
        return (self.target.owns(x) and getattr(x, "ndim", 0) == 3
                and str(x.dtype) in ("float32", "float64"))

    def _check(self, x: Any) -> None:
        if not self.supports(x):
            raise TypeError(f"engine {self.name!r}: expected a 3-D float32/float64 "
                            f"{self.target.name} array, got {type(x).__name__} "
                            f"{getattr(x, 'dtype', '')}")

    def forward(self, cell: CellSpec, x: Any, carry: Carry, p: CellParams,
                mask: Any = None, reverse: bool = False) -> tuple[Any, Carry, FusedTape]:
        self._check(x)
        xp = self.target.xp
        T, Bn, I = x.shape
        dt = x.dtype
        w = prepare_weights(xp, cell, p, dt)
        H = w.b_ih.shape[1]
        first = T if reverse else 0
        states = []
        for c in carry:                                   # the entry carry in slot `first`
            s = xp.empty((T + 1,) + tuple(c.shape), dtype=dt)
            s[first] = c
            states.append(s)
        use_mask = mask is not None
        f = Forward(
            x=xp.ascontiguousarray(x), states=tuple(states),
            caches=tuple(xp.empty((T, Bn, H), dtype=dt) for _ in fields(cell.cache)),
            xw=xp.empty((T, Bn, cell.gates, H), dtype=dt),
            hw=xp.empty((Bn, cell.gates * H), dtype=dt),
            out=xp.empty((T, Bn, states[0].shape[2]), dtype=dt),
            m=xp.empty((T, Bn, H), dtype=dt) if cell.projection else None,
            mask=xp.ascontiguousarray(mask[:, :, 0]) if use_mask else xp.ones((1, 1), bool),
            use_mask=use_mask, H=H)
        forward_ops(self.executor(), self.target, cell, f, w, reverse)
        last = 0 if reverse else T
        final = tuple(s[last].copy() for s in f.states)   # copies: a view keeps the tape alive
        f.xw = f.hw = None                                # scratch: free it before backward
        return f.out, final, FusedTape(self, cell, f.x, reverse, f)

    def backward(self, tape: FusedTape, dout: Any, dcarry: Carry, p: CellParams,
                 record: bool = False) -> tuple[Any, Carry, CellParams]:
        xp, cell, f = self.target.xp, tape.cell, tape.fwd
        dt = f.x.dtype
        w = prepare_weights(xp, cell, p, dt)
        b = backward_buffers(xp, cell, f, p.b_ih is not None, dout is not None, record,
                             self.target.bias_in_kernel, dout)
        b.dh_rec[...] = dcarry[0]
        for d, src in zip(b.d_other, dcarry[1:]):
            d[...] = src
        backward_ops(self.executor(), self.target, cell, f, b, w, tape.reverse)
        if record:
            tape.hidden_grads = b.rec
        return b.dx, (b.dh_rec, *b.d_other), finish_grads(b, cell, copy=False)
