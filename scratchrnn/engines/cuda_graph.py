"""The ``cuda-graph`` engine: the fused time loop captured once as a CUDA graph, then replayed.

Per (cell, T, B, sizes, dtype, direction, bias, masked or not) -- the graph's
*key* -- the engine builds a :class:`Plan`: every buffer the fused driver
(:mod:`~scratchrnn.engines.fused`) needs, allocated once, and the driver's
operations recorded against them (``forward_ops``/``backward_ops`` issued to a
:class:`Recorder`). A call then

1. copies the inputs, the initial states, the mask and the **weights** into
   the plan's buffers (an optimizer replaces ``p.data``: a graph that kept a
   pointer to the old array would silently compute with stale weights);
2. runs the recorded operations: on a GPU the first call runs them eagerly,
   then captures them on a stream of its own as one CUDA graph (GEMMs
   through :mod:`~scratchrnn.engines.cublas`, kernels as CuPy launches), and
   every later call replays that graph;
3. copies the outputs out into fresh arrays.

Nothing is allocated while capturing. Lengths and masks are device data, so
a new batch of lengths replays the same graph. Bias gradients are one
product with a vector of ones after the loop, inside the graph. A forward's
plan stays reserved for its backward (its buffers are the tape) and returns
to the pool when the tape is dropped; the pool holds at most ``max_plans``
plans, least recently used first out. When capture fails, or every plan is
in use, the call runs the eager ``cupy`` engine instead, with a one-line
warning.

``allow_tf32`` (default: CuPy's ``CUPY_TF32``) lets cuBLAS use TF32 tensor
cores for float32 products, as PyTorch does by default; off, float32 is strict.

Without a GPU the same plans run on the CPU (``tests/test_engines.py``):
NumPy buffers, the CUDA kernel sources compiled as C++, the operations
executed eagerly in the recorded order.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..cells.base import Carry, CellParams, CellSpec
from .base import Engine
from .fused import (
    Backward,
    Eager,
    Forward,
    Weights,
    backward_buffers,
    backward_ops,
    finish_grads,
    forward_buffers,
    forward_ops,
)


def default_allow_tf32() -> bool:
    return os.environ.get("CUPY_TF32", "0").strip() == "1"


class Recorder:
    """An executor that keeps the operations, in order, for replay or capture."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self.ops: list[tuple] = []

    def gemm(self, c: Any, a: Any, b: Any, trans_a: bool = False, trans_b: bool = False,
             reused: bool = False) -> None:
        self.ops.append(("gemm", c, a, b, trans_a, trans_b))

    def launch(self, fn: Any, *args: Any) -> None:
        self.ops.append(("launch", fn, args))


def replay(ops: list[tuple], gemm: Any) -> None:
    """Run recorded operations in order, the GEMMs through ``gemm``."""
    for op in ops:
        if op[0] == "gemm":
            gemm(*op[1:])
        else:
            op[1](*op[2])


@dataclass(eq=False)
class Plan:
    """One key's buffers and recorded operations (see the module docstring)."""

    key: tuple
    cell: CellSpec
    reverse: bool
    w: Weights                                # static weights, copied in per call
    f: Forward
    forward: list[tuple]                      # recorded forward operations
    backward: dict[bool, tuple[Backward, list[tuple]]] = field(default_factory=dict)
    graphs: dict[Any, Any] = field(default_factory=dict)   # "forward" / ("backward", rec)
    owner: int = 0                            # the tape holding the buffers (0: free)

    @property
    def in_use(self) -> bool:
        return self.owner != 0


class GraphTape:
    """The tape of a ``cuda-graph`` forward: the plan whose buffers hold it."""

    def __init__(self, engine: CudaGraphEngine, cell: CellSpec, x: Any, plan: Plan) -> None:
        self.engine, self.cell, self.x, self.plan = engine, cell, x, plan
        self.hidden_grads: Any = None
        weakref.finalize(self, CudaGraphEngine._release, plan, plan.owner)


class EagerRunner:
    """Runs a plan's operations each call (the CPU stand-in for a graph)."""

    def __init__(self, xp: Any) -> None:
        self.gemm = Eager(xp).gemm

    def run(self, plan: Plan, which: Any, ops: list[tuple]) -> None:
        replay(ops, self.gemm)


class GraphRunner:
    """Captures a plan's operations as a CUDA graph on the first call and replays it."""

    def __init__(self, allow_tf32: bool) -> None:
        import cupy

        from .cublas import Cublas

        self.cupy = cupy
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.blas = Cublas(self.stream.ptr, allow_tf32)

    def run(self, plan: Plan, which: Any, ops: list[tuple]) -> None:
        cupy = self.cupy
        current = cupy.cuda.get_current_stream()
        self.stream.wait_event(current.record())        # the copies-in come first
        graph = plan.graphs.get(which)
        if graph is not None:
            graph.launch(self.stream)
        else:
            with self.stream:                           # eager once: compiles every kernel
                replay(ops, self.blas.gemm)
                self.stream.begin_capture()
                try:
                    replay(ops, self.blas.gemm)
                finally:
                    graph = self.stream.end_capture()
            plan.graphs[which] = graph
        current.wait_event(self.stream.record())        # the copies-out wait for the graph


class CudaGraphEngine(Engine):
    """The fused loop as one CUDA graph per key (see the module docstring)."""

    name = "cuda-graph"

    def __init__(self, target: Any = None, allow_tf32: bool | None = None,
                 max_plans: int = 32, runner: Any = None) -> None:
        from .fused import CupyTarget, FusedEngine

        self.target = target if target is not None else CupyTarget()
        self.allow_tf32 = default_allow_tf32() if allow_tf32 is None else bool(allow_tf32)
        self.max_plans = max_plans
        self._runner = runner
        self._pool: OrderedDict[tuple, list[Plan]] = OrderedDict()
        self._eager = FusedEngine(self.target)
        self._warned = False
        self._tokens = 0

    @property
    def runner(self) -> Any:
        if self._runner is None:
            self._runner = GraphRunner(self.allow_tf32)
        return self._runner

    def supports(self, x: Any) -> bool:
        return self._eager.supports(x) and x.shape[0] > 0 and x.shape[1] > 0

    # ---- the pool of plans ---------------------------------------------- #
    def _acquire(self, key: tuple, build: Any) -> Plan | None:
        plans = self._pool.setdefault(key, [])
        self._pool.move_to_end(key)
        self._tokens += 1
        for plan in plans:
            if not plan.in_use:
                plan.owner = self._tokens
                return plan
        if self.plans() >= self.max_plans and not self._evict():
            return None
        plan = build()
        plan.owner = self._tokens
        plans.append(plan)
        return plan

    def _evict(self) -> bool:
        """Drop the least recently used free plan; False when every plan is in use."""
        for key, plans in self._pool.items():
            for plan in plans:
                if not plan.in_use:
                    plans.remove(plan)
                    if not plans:
                        del self._pool[key]
                    return True
        return False

    @staticmethod
    def _release(plan: Plan, owner: int) -> None:
        """Free ``plan`` if ``owner`` still holds it (a late finalizer must not free a
        plan that a newer forward has taken)."""
        if plan.owner == owner:
            plan.owner = 0

    def plans(self) -> int:
        return sum(len(v) for v in self._pool.values())

    def _fallback(self, why: str) -> Engine:
        if not self._warned:
            warnings.warn(f"cuda-graph engine: {why}; running the eager 'cupy' engine",
                          RuntimeWarning, stacklevel=4)
            self._warned = True
        return self._eager

    # ---- forward -------------------------------------------------------- #
    def _build(self, cell: CellSpec, x: Any, carry: Carry, p: CellParams, use_mask: bool,
               reverse: bool, key: tuple) -> Plan:
        xp = self.target.xp
        T, Bn, I = x.shape
        G = cell.gates
        H = p.w_hh.shape[0] // G
        P = p.w_hh.shape[1]
        dt = x.dtype
        w = Weights(w_ih=xp.empty((G * H, I), dtype=dt), w_hh=xp.empty((G * H, P), dtype=dt),
                    w_hh_t=xp.empty((P, G * H), dtype=dt), b_ih=xp.zeros((G, H), dtype=dt),
                    b_hh=xp.zeros((G, H), dtype=dt),
                    w_hr=xp.empty((P, H), dtype=dt) if cell.projection else None,
                    w_hr_t=xp.empty((H, P), dtype=dt) if cell.projection else None)
        f = forward_buffers(xp, cell, T, Bn, I, H, tuple(c.shape[1] for c in carry), dt,
                            use_mask)
        rec = Recorder(xp)
        forward_ops(rec, self.target, cell, f, w, reverse)
        return Plan(key, cell, reverse, w, f, rec.ops)

    def _copy_weights(self, plan: Plan, p: CellParams) -> None:
        w, G = plan.w, plan.cell.gates
        w.w_ih[...] = p.w_ih
        w.w_hh[...] = p.w_hh
        w.w_hh_t[...] = p.w_hh.T
        if p.b_ih is not None:
            w.b_ih[...] = p.b_ih.reshape(G, -1)
            w.b_hh[...] = p.b_hh.reshape(G, -1)
        if p.w_hr is not None:
            w.w_hr[...] = p.w_hr
            w.w_hr_t[...] = p.w_hr.T

    def forward(self, cell: CellSpec, x: Any, carry: Carry, p: CellParams,
                mask: Any = None, reverse: bool = False) -> tuple[Any, Carry, Any]:
        self._eager._check(x)
        T, Bn, I = x.shape
        key = (cell.name, T, Bn, I, tuple(p.w_hh.shape), str(x.dtype), reverse,
               p.b_ih is not None, mask is not None)
        plan = self._acquire(key, lambda: self._build(cell, x, carry, p, mask is not None,
                                                      reverse, key))
        if plan is None:
            return self._fallback(f"all {self.max_plans} graph plans are in use").forward(
                cell, x, carry, p, mask, reverse)
        f = plan.f
        f.x[...] = x
        first = T if reverse else 0
        for s, c in zip(f.states, carry):
            s[first] = c
        if mask is not None:
            f.mask[...] = mask[:, :, 0]
        self._copy_weights(plan, p)
        try:
            self.runner.run(plan, "forward", plan.forward)
        except Exception as err:  # capture impossible (driver, cuBLAS, ...)
            self._release(plan, plan.owner)
            self._pool.pop(key, None)
            return self._fallback(f"capture failed ({type(err).__name__}: {err})").forward(
                cell, x, carry, p, mask, reverse)
        last = 0 if reverse else T
        final = tuple(s[last].copy() for s in f.states)
        return f.out.copy(), final, GraphTape(self, cell, x, plan)

    # ---- backward ------------------------------------------------------- #
    def _backward_plan(self, plan: Plan, has_bias: bool, record: bool
                       ) -> tuple[Backward, list[tuple]]:
        if record not in plan.backward:
            xp = self.target.xp
            b = backward_buffers(xp, plan.cell, plan.f, has_bias, True, record,
                                 bias_in_kernel=False)
            rec = Recorder(xp)
            backward_ops(rec, self.target, plan.cell, plan.f, b, plan.w, plan.reverse)
            plan.backward[record] = (b, rec.ops)
        return plan.backward[record]

    def backward(self, tape: Any, dout: Any, dcarry: Carry, p: CellParams,
                 record: bool = False) -> tuple[Any, Carry, CellParams]:
        if not isinstance(tape, GraphTape):        # a forward that fell back to eager
            return tape.engine.backward(tape, dout, dcarry, p, record)
        plan = tape.plan
        b, ops = self._backward_plan(plan, p.b_ih is not None, record)
        if dout is None:
            b.dout[...] = 0
        else:
            b.dout[...] = dout
        b.dh_rec[...] = dcarry[0]
        b.dh_res[...] = 0
        for d, src in zip(b.d_other, dcarry[1:]):
            d[...] = src
        if b.keep:
            b.rec[...] = 0
        self._copy_weights(plan, p)
        self.runner.run(plan, ("backward", record), ops)
        if record:
            tape.hidden_grads = b.rec.copy()
        dcarry0 = (b.dh_rec.copy(), *(d.copy() for d in b.d_other))
        grads = finish_grads(b, plan.cell, copy=True)
        dx = b.dx.copy()
        self._release(plan, plan.owner)
        return dx, dcarry0, grads
