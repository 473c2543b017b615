"""NCCL collectives on CuPy arrays (``cupy.cuda.nccl``), for data parallelism on GPUs.

This lives in :mod:`scratchrnn.backend` because it imports CuPy. It is the
GPU half of :mod:`scratchrnn.training.distributed`: MPI starts the processes
and carries NCCL's unique id from rank 0 to the others; NCCL then sums the
flat gradient buffer in place on the GPUs, without host copies.

**Unverified.** No GPU was available when this was written: it follows
CuPy's documented API (``NcclCommunicator(ndev, commId, rank)``,
``allReduce(sendbuf, recvbuf, count, datatype, op, stream)``,
``bcast(buff, count, datatype, root, stream)``), and no test has run it.
``SCRATCHRNN_NCCL=0`` turns it off; MPI on host copies is then used.
"""

from __future__ import annotations

from typing import Any

from .env import env_flag


def available() -> bool:
    """True when CuPy was built with NCCL, a GPU is visible and ``SCRATCHRNN_NCCL`` != 0."""
    if not env_flag("SCRATCHRNN_NCCL", True):
        return False
    try:
        from cupy.cuda import nccl, runtime

        return bool(nccl.available) and runtime.getDeviceCount() > 0
    except Exception:   # ImportError, no driver, no NCCL in this CuPy build
        return False


def device_count() -> int:
    """The number of visible CUDA devices (0 without CuPy or a driver)."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def use_device(index: int) -> None:
    """Make GPU ``index`` this process's current CUDA device (one GPU per process)."""
    import cupy

    cupy.cuda.Device(index).use()


def unique_id() -> Any:
    """A fresh NCCL id (bytes or a tuple, picklable), made on one rank and sent to all."""
    from cupy.cuda import nccl

    return nccl.get_unique_id()


class NcclReducer:
    """One process's member of an NCCL communicator of ``size`` GPUs (one per process)."""

    def __init__(self, size: int, uid: Any, rank: int, device_id: int) -> None:
        import cupy
        from cupy.cuda import nccl

        self._cupy, self._nccl = cupy, nccl
        self.device_id = device_id
        with cupy.cuda.Device(device_id):
            self.comm = nccl.NcclCommunicator(size, uid, rank)

    def _dtype(self, buf: Any) -> int:
        n = self._nccl
        types = {"float32": n.NCCL_FLOAT32, "float64": n.NCCL_FLOAT64}
        name = str(buf.dtype)
        if name not in types:
            raise TypeError(f"buffer: expected float32 or float64, got {name}")
        return types[name]

    def allreduce_(self, buf: Any) -> Any:
        """buf ← Σ_ranks buf, in place on this process's GPU (buf contiguous, 1-D)."""
        with self._cupy.cuda.Device(self.device_id):
            stream = self._cupy.cuda.get_current_stream()
            self.comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, self._dtype(buf),
                                self._nccl.NCCL_SUM, stream.ptr)
            stream.synchronize()
        return buf

    def broadcast_(self, buf: Any, root: int = 0) -> Any:
        """buf ← rank ``root``'s buf, in place."""
        with self._cupy.cuda.Device(self.device_id):
            stream = self._cupy.cuda.get_current_stream()
            self.comm.bcast(buf.data.ptr, buf.size, self._dtype(buf), root, stream.ptr)
            stream.synchronize()
        return buf
