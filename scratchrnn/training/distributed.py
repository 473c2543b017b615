"""Data parallelism: N processes train one model, each on its share of every batch.

Every process (rank r of N) holds the same model and optimizer (rank 0's
weights are broadcast at the start). A global batch of B items (the target
tokens of a TBPTT window, or sequences) is split into shares, B_r items on
rank r (Σ_r B_r = B). Rank r runs forward and backward on its share and
holds the gradient of its *mean* loss, g_r = (1/B_r) Σ_{i∈r} ∇ℓ_i. Then one
Allreduce sums one flat buffer per step::

    [ B_r·g_r (every parameter, flattened) | B_r·L_r | B_r ]  ──Σ_r──►  [ Σ_i ∇ℓ_i | Σ_i ℓ_i | B ]

and every rank divides by B: g = (1/B) Σ_i ∇ℓ_i is the gradient one process
computes on the whole batch (up to the order of the sums). Clipping, the
gradient norm and the optimizer all see that global gradient, so every rank
takes the same step. Uneven shares (B not divisible by N, the short last
batch of an epoch) are weighted right, and a rank with no items adds zeros.

Communicators, behind one interface::

    SingleProcess   N = 1: every collective is the identity (the default)
    MPIComm         mpi4py's COMM_WORLD on host buffers. CuPy buffers are summed
                    on the GPUs by NCCL when CuPy has it (backend/nccl.py;
                    unverified, no GPU was available), else via host copies.

:func:`world` picks one. mpi4py is imported only when an MPI launcher
started this process (mpiexec, srun: seen in the variables they set) or when
asked (``world("mpi")`` or ``SCRATCHRNN_DISTRIBUTED=mpi``), so nothing changes
for one process. Under MPI an uncaught exception on any rank aborts every
rank (``MPI_Abort``) instead of leaving the others waiting in a collective.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .. import backend as B
from ..backend import Array, Generator
from ..nn.module import Parameter

# Variables a launcher sets to the number of processes: MPICH/Intel MPI (Hydra),
# Open MPI, MVAPICH, and Slurm's srun (for the tasks of a job step).
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE",
                  "SLURM_STEP_NUM_TASKS")
KINDS = ("auto", "single", "mpi")
USER_THREADS = ("SCRATCHRNN_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


class Communicator:
    """The collectives data parallelism needs; see the module docstring.

    Subclasses give ``rank``, ``size``, ``local_rank``, ``local_size``,
    ``allreduce_``, ``broadcast_``, ``allgather``, ``barrier`` and ``abort``; the training
    helpers below are written once on top of them.
    """

    name = "single process"
    rank, size, local_rank, local_size = 0, 1, 0, 1   # local: on this machine
    reduce_seconds = 0.0   # time spent in average_gradients, pack to unpack (benchmarks)

    @property
    def is_root(self) -> bool:
        """Rank 0: the one that prints and writes files."""
        return self.rank == 0

    # ---- primitives -------------------------------------------------------- #
    def allreduce_(self, buf: Array) -> Array:
        """buf ← Σ_ranks buf for a flat float buffer; returns it (maybe a new array)."""
        return buf

    def broadcast_(self, buf: Array, root: int = 0) -> Array:
        """buf ← rank ``root``'s buf; returns it (maybe a new array)."""
        return buf

    def allgather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (any picklable value), in rank order."""
        return [obj]

    def barrier(self) -> None:
        """Wait until every rank is here (rank 0 has finished writing a checkpoint)."""

    def abort(self, code: int = 1) -> None:
        """End every rank now with exit status ``code``."""
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    # ---- training helpers -------------------------------------------------- #
    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on at least one (a time budget)."""
        return any(self.allgather(bool(flag))) if self.size > 1 else bool(flag)

    def sum_floats(self, values: Sequence[float]) -> list[float]:
        """Element-wise Σ_ranks of a few numbers (validation sums), exactly rounded."""
        if self.size == 1:
            return [float(v) for v in values]
        return [math.fsum(column) for column in zip(*self.allgather([float(v)
                                                                     for v in values]))]

    def average_gradients(self, params: Sequence[Parameter], loss: float,
                          count: int) -> tuple[float, int]:
        """The one Allreduce of a step: every ``p.grad`` becomes the gradient of the
        mean loss over the *global* batch; returns (global mean loss, global count).

        ``loss`` and the gradients are this rank's means over its ``count`` items.
        """
        if self.size == 1:
            return loss, count
        t0 = time.perf_counter()
        grads = [p.grad for p in params]
        xp = B.namespace(*grads)
        dtype = xp.result_type(*grads)
        tail = xp.asarray([loss, 1.0], dtype=dtype, device=B.device_of(grads[0]))
        flat = xp.concat([xp.reshape(g, (-1,)) for g in grads] + [tail]) * count  # (P + 2,)
        flat = self.allreduce_(flat)
        total = B.to_scalar(flat[-1])
        if total > 0:
            loss = B.to_scalar(flat[-2]) / total
            _unflatten(flat[:-2] / total, params, "grad")
        else:   # no rank had an item: the gradient stays zero
            loss = 0.0
        self.reduce_seconds += time.perf_counter() - t0
        return loss, int(round(total))

    def broadcast_parameters(self, params: Sequence[Parameter]) -> None:
        """Every rank gets rank 0's weights (one Bcast of one flat buffer)."""
        if self.size == 1 or not params:
            return
        xp = B.namespace(*[p.data for p in params])
        flat = self.broadcast_(xp.concat([xp.reshape(p.data, (-1,)) for p in params]))
        if not self.is_root:
            _unflatten(flat, params, "data")

    def allgather_concat(self, a: Array, axis: int) -> Array:
        """Every rank's ``a`` joined along ``axis`` in rank order (a sharded state)."""
        if self.size == 1:
            return a
        parts = self.allgather(B.to_numpy(a))
        return B.backend_of(a).asarray(B.namespace(*parts).concat(parts, axis=axis))

    def decorrelate(self, generators: Mapping[str, Generator]) -> None:
        """Give ranks > 0 their own random streams (dropout masks), derived from the
        common seed and the rank; rank 0 keeps its stream (that of one process)."""
        if self.rank == 0:
            return
        for g in {id(g): g for g in generators.values()}.values():
            g.set_state(Generator([int(g.host.integers(2**62)), self.rank]).get_state())

    def rank_states(self, states: dict[str, Any]) -> dict[str, Any]:
        """For rank 0's checkpoint: every rank's generator states ({} for one process)."""
        if self.size == 1:
            return {}
        return {"ranks": {"size": self.size, "rng": self.allgather(states)}}

    def check_rank_states(self, info: Mapping[str, Any]) -> None:
        """``ValueError`` naming the field unless :meth:`restore_rank_states` can take
        ``info`` without failing half way (called before anything is restored)."""
        if self.size == 1:
            return
        ranks = info.get("ranks") or {}
        if not isinstance(ranks, Mapping):
            raise ValueError(f"info.ranks: expected a JSON object, got {ranks!r:.60}")
        if ranks.get("size") != self.size:
            return
        streams = ranks.get("rng")
        if not isinstance(streams, list) or len(streams) != self.size or \
                not all(isinstance(r, Mapping) for r in streams):
            raise ValueError(f"info.ranks.rng: expected {self.size} objects of generator "
                             f"states, got {streams!r:.60}")
        for name, state in streams[self.rank].items():
            try:
                B.check_generator_state(state)
            except ValueError as err:
                raise ValueError(f"info.ranks.rng[{self.rank}][{name!r}]: {err}") from None

    def restore_rank_states(self, info: Mapping[str, Any],
                            generators: Mapping[str, Generator]) -> None:
        """Undo :meth:`rank_states`: each rank takes back its own streams (a checkpoint
        from another number of processes: rank 0's, decorrelated)."""
        if self.size == 1:
            return
        ranks = info.get("ranks") or {}
        if ranks.get("size") != self.size:
            self.decorrelate(generators)
            return
        for name, state in ranks["rng"][self.rank].items():
            if name in generators:
                generators[name].set_state(state)

    def describe(self, device_label: str) -> str:
        """For the run's first line: 'cpu', or '2 processes (cpu each, MPI)'."""
        if self.size == 1:
            return device_label
        return f"{self.size} processes ({device_label.split(':')[0]} each, {self.name})"


def _unflatten(flat: Array, params: Sequence[Parameter], attr: str) -> None:
    """Cut a flat buffer back into the parameters' shapes (``p.data`` or ``p.grad``)."""
    xp = B.namespace(flat)
    offset = 0
    for p in params:
        like = getattr(p, attr)
        n = math.prod(like.shape)
        part = xp.reshape(flat[offset:offset + n], like.shape)
        setattr(p, attr, part if part.dtype == like.dtype else xp.astype(part, like.dtype))
        offset += n


class SingleProcess(Communicator):
    """One process: every collective is the identity."""


class MPIComm(Communicator):
    """MPI_COMM_WORLD through mpi4py (see the module docstring)."""

    name = "MPI"

    def __init__(self) -> None:
        try:
            from mpi4py import MPI
        except ImportError:
            raise RuntimeError("distributed training needs mpi4py: pip install "
                               "'scratchrnn[mpi]'") from None
        self._MPI, self._comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self._comm.Get_rank(), self._comm.Get_size()
        node = self._comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._nccl: Any = None     # decided at the first CuPy buffer (collectively)

    def _on_gpus(self, buf: Array) -> bool:
        if B.backend_of(buf).name != "cupy":
            return False
        if self._nccl is None:
            from ..backend import nccl

            if all(self.allgather(nccl.available())):
                uid = self._comm.bcast(nccl.unique_id() if self.is_root else None, root=0)
                self._nccl = nccl.NcclReducer(self.size, uid, self.rank, buf.device.id)
                self.name = "NCCL"
            else:
                self._nccl = False
        return self._nccl is not False

    def _host(self, buf: Array) -> Any:
        host = B.to_numpy(buf)
        return host if B.backend_of(buf).name == "numpy" else host.copy()

    def allreduce_(self, buf: Array) -> Array:
        if self._on_gpus(buf):
            return self._nccl.allreduce_(buf)
        host = self._host(buf)
        self._comm.Allreduce(self._MPI.IN_PLACE, host, op=self._MPI.SUM)
        return B.backend_of(buf).asarray(host)

    def broadcast_(self, buf: Array, root: int = 0) -> Array:
        if self._on_gpus(buf):
            return self._nccl.broadcast_(buf, root)
        host = self._host(buf)
        self._comm.Bcast(host, root=root)
        return B.backend_of(buf).asarray(host)

    def allgather(self, obj: Any) -> list[Any]:
        return self._comm.allgather(obj)

    def barrier(self) -> None:
        self._comm.Barrier()

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(0.5)  # let the launcher forward our last lines before it kills everyone
        self._comm.Abort(code)
        os._exit(code)   # MPICH's MPI_Abort can return before the launcher kills us


def _abort_on_uncaught_exception(comm: Communicator) -> None:
    """An exception nobody catches prints its traceback, then ends every rank."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        previous(kind, value, tb)
        comm.abort(1)

    sys.excepthook = hook


# --------------------------------------------------------------------------- #
def launched_size() -> int:
    """The number of processes an MPI launcher or srun started (1 if none did)."""
    for name in SIZE_VARIABLES:
        try:
            return max(1, int(os.environ[name]))
        except (KeyError, ValueError):
            continue
    return 1


_world: Communicator | None = None


def world(kind: str | None = None) -> Communicator:
    """This process's communicator (made once): ``kind`` 'single', 'mpi', or 'auto'
    (the default, also from ``SCRATCHRNN_DISTRIBUTED``): MPI when a launcher started
    more than one process, else :class:`SingleProcess`."""
    global _world
    what = "kind" if kind else "SCRATCHRNN_DISTRIBUTED"
    given = kind or os.environ.get("SCRATCHRNN_DISTRIBUTED") or "auto"
    kind = given.strip().lower() if isinstance(given, str) else given
    if kind not in KINDS:
        raise ValueError(f"{what}: expected one of {KINDS}, got {given!r}")
    if kind == "single":
        return SingleProcess()
    if _world is None:
        _world = SingleProcess()
        if kind == "mpi" or launched_size() > 1:
            comm = MPIComm()
            if comm.size > 1:
                _abort_on_uncaught_exception(comm)
                _world = comm
    return _world


def current() -> Communicator:
    """The communicator :func:`world` made, or a single process if it made none yet."""
    return _world if _world is not None else SingleProcess()


def setup(model: Any, task: Any, generators: Mapping[str, Generator],
          comm: Communicator | None = None) -> Communicator:
    """Join a trainer to the other processes: the task keeps this rank's share of each
    batch, the weights become rank 0's, ranks > 0 get their own random streams."""
    comm = comm if comm is not None else world()
    if comm.size > 1:
        task.shard(comm)
        comm.broadcast_parameters(model.parameters())
        comm.decorrelate(generators)
    return comm


def threads_per_rank(comm: Communicator) -> int | None:
    """BLAS threads for each of the processes that share this machine's cores, so that
    they do not oversubscribe them: ⌊cores / local processes⌋. None (the thread policy's
    own choice) for one process per machine, or when the user set a count."""
    if comm.local_size == 1 or any(os.environ.get(v, "").strip() for v in USER_THREADS):
        return None
    return max(1, (os.cpu_count() or 1) // comm.local_size)


def device_for(spec: Any, comm: Communicator) -> Any:
    """A device spec for this rank: a bare 'cuda' (or 'auto' with GPUs) becomes this
    rank's own GPU, ``cuda:(local rank mod GPUs on this machine)``."""
    if comm.size == 1 or not isinstance(spec, str):
        return spec
    base, _, index = spec.strip().lower().partition(":")
    if base in ("cuda", "cupy", "gpu", "auto") and not index:
        from ..backend import nccl

        n = nccl.device_count()
        if n:
            nccl.use_device(comm.local_rank % n)    # also CuPy's current device
            return f"cuda:{comm.local_rank % n}"
    return spec
