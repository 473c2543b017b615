"""The package's on/off environment variables (``SCRATCHRNN_CHECK_FINITE``,
``SCRATCHRNN_NCCL``, ``SCRATCHRNN_TUNE_BLAS``, ``SCRATCHRNN_FAST``,
``SCRATCHRNN_DEBUG``, ``SCRATCHRNN_MKL``), read one way: ``1 true yes on`` / ``0 false no off``
(any case), unset or empty for the default. Any other value is a ValueError
that names the variable. Standard library only (``blas_tuning`` reads its
variable before NumPy loads).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ON = ("1", "true", "yes", "on")
OFF = ("0", "false", "no", "off")


def env_flag(name: str, default: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """The on/off variable ``name`` (``default`` when unset or empty)."""
    value = environ.get(name, "")
    text = value.strip().lower()
    if not text:
        return default
    if text in ON:
        return True
    if text in OFF:
        return False
    raise ValueError(f"{name}: expected one of {', '.join(ON + OFF)} (or unset), "
                     f"got {value!r}")
