"""Let OpenBLAS use its AVX-512 kernels on CPUs its dispatcher does not know yet.

NumPy's wheels ship OpenBLAS built for many CPUs at once; at load time it reads
CPUID and picks one set of kernels. OpenBLAS 0.3.31 (NumPy 2.4) does not know
AMD's Zen 5 (CPU family 26) and falls back to its AVX2 kernels ("Haswell"),
although the CPU has AVX-512. Measured on a 2-core Zen 5 (2 threads, float32):

    (4096, 512) x (512, 1024)   Haswell 148 GFLOP/s   SkylakeX 330 GFLOP/s
    (64, 256) x (256, 1024)     Haswell 142 GFLOP/s   SkylakeX 213 GFLOP/s

Zen 4 (family 25) already gets the AVX-512 kernels ("SkylakeX"); this module
asks for the same on newer AMD CPUs with AVX-512. OpenBLAS reads its choice
from the environment variable ``OPENBLAS_CORETYPE`` once, when the library is
loaded, i.e. when numpy is first imported. So :func:`tune_openblas_env` runs
at the top of :mod:`scratchrnn.backend`, before its own ``import numpy``, and
does nothing when

* ``OPENBLAS_CORETYPE`` is already set (the user's choice wins),
* ``SCRATCHRNN_TUNE_BLAS=0`` (opt out; a value other than on/off words, see
  :mod:`.env`, is a warning and leaves OpenBLAS alone),
* numpy is already imported (too late: import scratchrnn first, or export
  ``OPENBLAS_CORETYPE=SkylakeX`` yourself),
* the CPU is not such a CPU, or the OS has no ``/proc/cpuinfo``.

Setting the variable changes nothing but the kernels OpenBLAS picks (results
agree to float rounding); it is inherited by child processes.
This module imports only the standard library.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping, MutableMapping

from .env import env_flag

#: AVX-512 subsets OpenBLAS's SkylakeX kernels use.
_AVX512 = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")
_FIRST_UNKNOWN_AMD_FAMILY = 26   # Zen 5; OpenBLAS 0.3.31 maps family 25 (Zen 4) itself


def coretype_for(cpuinfo: str) -> str | None:
    """The OpenBLAS core type to ask for on the CPU ``cpuinfo`` (/proc/cpuinfo text) describes,
    or None to leave OpenBLAS's own choice."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break                                   # the first processor is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    try:
        family = int(fields.get("cpu family", ""))
    except ValueError:
        return None
    flags = set(fields.get("flags", "").split())
    if (fields.get("vendor_id") == "AuthenticAMD" and family >= _FIRST_UNKNOWN_AMD_FAMILY
            and all(f in flags for f in _AVX512)):
        return "SkylakeX"
    return None


def tune_openblas_env(environ: MutableMapping[str, str] = os.environ,
                      modules: Mapping[str, object] = sys.modules,
                      cpuinfo_path: str = "/proc/cpuinfo") -> str | None:
    """Set ``OPENBLAS_CORETYPE`` when it helps (see the module docstring); returns what was set."""
    try:
        wanted = env_flag("SCRATCHRNN_TUNE_BLAS", True, environ)
    except ValueError as err:   # at import: a warning, not an error of `import scratchrnn`
        warnings.warn(f"{err}; OpenBLAS is left as it is", stacklevel=2)
        wanted = False
    if "OPENBLAS_CORETYPE" in environ or "numpy" in modules or not wanted:
        return None
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            core = coretype_for(f.read(65536))
    except OSError:
        return None
    if core is not None:
        environ["OPENBLAS_CORETYPE"] = core
    return core
