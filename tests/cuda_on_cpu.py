"""Run the ``cupy`` engine's kernels on the CPU: their CUDA sources, compiled as C++.

A ``cupy.ElementwiseKernel(in_params, out_params, body, name, preamble=...)``
runs ``body`` once for every index ``i < size``, with each ``raw`` parameter a
pointer into its (1-D, contiguous) array. :class:`CpuElementwiseKernel` does the
same on the host: it writes the body into a C++ function

    extern "C" void run(T* xw, ..., int H, ..., long long size) {
        for (long long i = 0; i < size; ++i) { <body> }
    }

with ``T`` the float type of the first ``raw T`` argument, compiles it with the
system's C++ compiler, loads it with ctypes and calls it with NumPy arrays.
:func:`load_cupy_kernels` imports ``scratchrnn.engines.cupy_kernels`` against a
stand-in ``cupy`` module that provides only this class, so the module's own
Python wrappers run too, and :class:`CudaOnCpuTarget` hands them to the fused
driver (``scratchrnn.engines.fused``) with NumPy arrays.
:meth:`CpuElementwiseKernel.source` with ``cuda=True`` gives the same body
as a CUDA kernel, for ``nvcc`` to compile where it is installed. What this
cannot check is the GPU itself (launches, device memory, cuBLAS); it checks the
kernels' indexing and equations, and that they compile as CUDA.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import importlib
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
NVCC = shutil.which("nvcc")
_C_TYPES = {"float32": "float", "float64": "double"}
_build_dir = Path(tempfile.mkdtemp(prefix="scratchrnn-cuda-on-cpu-"))
atexit.register(shutil.rmtree, _build_dir, ignore_errors=True)
_libs: dict[str, ctypes.CDLL] = {}


def _params(spec: str) -> list[tuple[bool, str, str]]:
    """'raw T xw, int32 H, raw bool mask' -> [(raw, type, name), ...]."""
    out = []
    for item in spec.split(","):
        words = item.split()
        raw = words[0] == "raw"
        if raw:
            words = words[1:]
        typ, name = words
        if not raw and typ not in ("int32",):
            raise NotImplementedError(f"only raw arrays and int32 scalars are emulated: {item!r}")
        out.append((raw, typ, name))
    return out


class CpuElementwiseKernel:
    """The subset of ``cupy.ElementwiseKernel`` that ``cupy_kernels`` uses, on the CPU."""

    def __init__(self, in_params: str, out_params: str, operation: str, name: str,
                 preamble: str = "") -> None:
        self.params = _params(in_params) + _params(out_params)
        self.operation, self.name, self.preamble = operation, name, preamble

    def source(self, ctype: str, cuda: bool = False) -> str:
        """The kernel as C++ for the host, or (``cuda``) as a CUDA grid-stride kernel,
        the shape of the code CuPy generates, for ``nvcc`` to compile."""
        args = []
        for raw, typ, name in self.params:
            if raw:
                args.append(f"{'bool' if typ == 'bool' else 'T'}* {name}")
            else:
                args.append(f"int {name}")
        if cuda:
            head = [self.preamble, f"typedef {ctype} T;",
                    f'extern "C" __global__ void {self.name}({", ".join(args)}, '
                    "long long size) {",
                    "    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;"
                    " i < size; i += (long long)blockDim.x * gridDim.x) {"]
        else:
            head = ["#include <cmath>", "#define __device__", "#define __forceinline__ inline",
                    "using std::tanh;", self.preamble, f"typedef {ctype} T;",
                    f'extern "C" void run({", ".join(args)}, long long size) {{',
                    "    for (long long i = 0; i < size; ++i) {"]
        return "\n".join(head + [self.operation, "    }", "}"])

    def _lib(self, ctype: str) -> ctypes.CDLL:
        src = self.source(ctype)
        key = hashlib.sha256(src.encode()).hexdigest()[:16]
        if key not in _libs:
            cpp, so = _build_dir / f"{self.name}_{key}.cpp", _build_dir / f"{self.name}_{key}.so"
            cpp.write_text(src)
            subprocess.run([CXX, "-O2", "-shared", "-fPIC", "-o", str(so), str(cpp)],
                           check=True, capture_output=True, text=True)
            _libs[key] = ctypes.CDLL(str(so))
        return _libs[key]

    def __call__(self, *args, size: int) -> None:
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: expected {len(self.params)} arguments, "
                            f"got {len(args)}")
        ctype, c_args = None, []
        for (raw, typ, name), a in zip(self.params, args):
            if raw:
                if not (isinstance(a, np.ndarray) and a.flags.c_contiguous):
                    raise TypeError(f"{self.name}: {name} must be a contiguous ndarray")
                if typ == "T":
                    ctype = ctype or _C_TYPES[str(a.dtype)]
                    if _C_TYPES[str(a.dtype)] != ctype:
                        raise TypeError(f"{self.name}: {name} has dtype {a.dtype}, not {ctype}")
                elif a.dtype != np.bool_:
                    raise TypeError(f"{self.name}: {name} must be bool, got {a.dtype}")
                c_args.append(ctypes.c_void_p(a.ctypes.data))
            else:
                c_args.append(ctypes.c_int(int(a)))
        self._lib(ctype).run(*c_args, ctypes.c_longlong(size))


def load_cupy_kernels() -> types.ModuleType:
    """``scratchrnn/engines/cupy_kernels.py`` imported against a CPU stand-in for ``cupy``.

    The module is imported afresh under its own name and taken out of
    ``sys.modules`` again, so a real CuPy import later is unaffected.
    """
    fake = types.ModuleType("cupy")
    fake.ElementwiseKernel = CpuElementwiseKernel
    name = "scratchrnn.engines.cupy_kernels"
    with mock.patch.dict(sys.modules, {"cupy": fake}):
        sys.modules.pop(name, None)
        module = importlib.import_module(name)
        sys.modules.pop(name, None)
    return module


class CudaOnCpuTarget:
    """The ``cupy`` engine's target with NumPy arrays and the kernels compiled as C++."""

    name = "cupy-on-cpu"
    bias_in_kernel = False
    xp = np

    def __init__(self) -> None:
        self.module = load_cupy_kernels()

    @staticmethod
    def available() -> bool:
        return CXX is not None

    @staticmethod
    def owns(x) -> bool:
        return isinstance(x, np.ndarray)

    def kernels(self, cell):
        return self.module.kernels(cell)

    def shared(self):
        return self.module
