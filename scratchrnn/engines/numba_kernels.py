"""The numba target: each cell's pointwise math compiled into one fused loop per step.

For a cell, :func:`kernels` prints a small module of numba functions (its
source is worth reading: ``kernels(cell).source``) and compiles it:

* ``forward_step``: for every batch row, add the biases into the step's
  slices of ``xw`` and ``hw``, then one loop over H running the cell's
  forward lines (``scratchrnn/cells/*.py``, restated by
  :mod:`~scratchrnn.engines.pointwise`) and storing the new state, the
  cache and the output;
* ``backward_step``: δ = ∂L/∂h_t gathered from the carried gradient and
  ∂L/∂out (``_carry_in``), the cell's backward lines, ∂L/∂pre-activations
  stored, the bias gradients summed;
* for a cell with an output projection, ``carry_in_step`` and
  ``finish_projection`` do the padding around the projection's products.

Padding, ∂L/∂out, the recording of ∂L/∂h_t and the bias sums are written
once, in the templates below, for every cell. The module is written to a
cache folder and compiled with ``cache=True``, so the compilation is paid
once per machine. The folder must be private to the user (see
:func:`_cache_dir`): its files are executed and unpickled.

The loop shapes follow what LLVM vectorises (measured when the kernels were
hand-written): one array per cached gate, each gate block a contiguous row,
bias rows folded in a loop of their own and bias gradients summed in loops
of their own. tanh in float32 is a rational approximation (|error| < 5e-7,
plain arithmetic, so it vectorises; libm's tanhf does not); float64 keeps
``math.tanh``. Kernels are serial on purpose: numba's threading layer and
OpenBLAS's threads slow each other down badly.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import math
import os
import shutil
import stat
import sys
import tempfile
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType

import numba
import numpy as np
from numba import types
from numba.extending import overload

from ..cells.base import CellSpec
from . import pointwise as pwise

_JIT = dict(cache=True, nogil=True, error_model="numpy",
            fastmath={"contract", "arcp", "nsz"})

# tanh(x) ≈ x P(x²) / Q(x²) on [-9, 9] (tanh(±9) = ±1 in float32), fitted for this module.
_P = (0.9999999944286927, -0.15887199784426523, 0.031416252854081575, 0.007962043472326756,
      0.0002271186464554118, 1.3588038111496904e-06, 8.729158594597959e-10)
_Q = (1.0, 0.1744612459893807, -0.04376308858437347, 0.024080834495984128,
      0.0016351945265772549, 2.160249835510185e-05, 5.11344552499763e-08)
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = (np.float32(v) for v in _P)
_Q0, _Q1, _Q2, _Q3, _Q4, _Q5, _Q6 = (np.float32(v) for v in _Q)
_CLIP = np.float32(9.0)
_ONE = np.float32(1.0)


@numba.njit(inline="always", **_JIT)
def _tanh_f32(x):
    x = min(max(x, -_CLIP), _CLIP)
    s = x * x
    p = (((((_P6 * s + _P5) * s + _P4) * s + _P3) * s + _P2) * s + _P1) * s + _P0
    q = (((((_Q6 * s + _Q5) * s + _Q4) * s + _Q3) * s + _Q2) * s + _Q1) * s + _Q0
    return min(max(x * p / q, -_ONE), _ONE)               # keep |tanh| <= 1 exactly


def tanh(x):  # pragma: no cover - replaced by the overload inside kernels
    return math.tanh(x)


@overload(tanh, inline="always", jit_options=_JIT)
def _tanh_overload(x):
    if x == types.float32:
        return lambda x: _tanh_f32(x)
    return lambda x: math.tanh(x)


def const(like, value):  # pragma: no cover - replaced by the overload inside kernels
    return value


@overload(const, inline="always", jit_options=_JIT)
def _const_overload(like, value):
    """``value`` in ``like``'s dtype: a bare 1.0 would promote float32 math to float64."""
    if getattr(like, "dtype", like) == types.float32:
        return lambda like, value: np.float32(value)
    return lambda like, value: np.float64(value)


# ---- the pointwise vocabulary of the cells, per element ------------------- #
@numba.njit(inline="always", **_JIT)
def sigmoid(a):
    half = const(a, 0.5)
    return half * (tanh(half * a) + const(a, 1.0))   # σ(a) = (1 + tanh(a/2)) / 2, as the cells


@numba.njit(inline="always", **_JIT)
def relu(a):
    return max(a, const(a, 0.0))


@numba.njit(inline="always", **_JIT)
def relu_prime(h):
    return const(h, 1.0) if h > const(h, 0.0) else const(h, 0.0)


# ---- what every cell's kernels share -------------------------------------- #
@numba.njit(inline="always", **_JIT)
def add_rows(dst, src, G):
    """dst[g, :] += src[g, :] for g < G, one gate row at a time."""
    for g in range(G):
        d, s = dst[g], src[g]
        for k in range(d.shape[0]):
            d[k] += s[k]


@numba.njit(inline="always", **_JIT)
def carry_in(t, b, dh_rec, dh_res, dout, has_dout, rec, record):
    """δ = dh_rec + dh_res + dout[t] for a valid step, kept in dh_res (and in rec)."""
    d_rec, d_res = dh_rec[b], dh_res[b]
    if has_dout:
        d_o = dout[t, b]
        for k in range(d_res.shape[0]):
            d_res[k] += d_rec[k] + d_o[k]
    else:
        for k in range(d_res.shape[0]):
            d_res[k] += d_rec[k]
    if record:
        rec[t, b, :] = d_res


@numba.njit(inline="always", **_JIT)
def pass_padding(t, b, dh_rec, dh_res, rec, record):
    """A padded step: δ carries on to h_{t-1} unchanged."""
    d_rec, d_res = dh_rec[b], dh_res[b]
    for k in range(d_res.shape[0]):
        d_res[k] += d_rec[k]
    if record:
        rec[t, b, :] = 0


@numba.njit(**_JIT)
def carry_in_step(t, dh_rec, dh_res, delta, dout, has_dout, mask, use_mask, rec):
    """Projection cells: δ_t (B, P) into ``delta`` and ``rec``; the carried part reset.

    A padded row passes its gradient on (``dh_res``) and gets δ = 0.
    """
    for b in range(dh_rec.shape[0]):
        if use_mask and not mask[t, b]:
            pass_padding(t, b, dh_rec, dh_res, rec, True)
            delta[b, :] = 0
            continue
        carry_in(t, b, dh_rec, dh_res, dout, has_dout, rec, True)
        delta[b, :] = dh_res[b]
        dh_res[b, :] = 0


@numba.njit(**_JIT)
def finish_projection(t, hs, rp, wp, out, mask, use_mask):
    """Projection cells: after hs[wp] = m_t W_hr^T, padded rows keep their state, out = h."""
    for b in range(hs.shape[1]):
        if use_mask and not mask[t, b]:
            hs[wp, b, :] = hs[rp, b, :]
            out[t, b, :] = 0
        else:
            out[t, b, :] = hs[wp, b, :]


# --------------------------------------------------------------------------- #
# The per-cell module, printed from the cell's pointwise functions
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class CellKernels:
    """The compiled kernels of one cell (see the module docstring)."""

    cell: str
    source: str                  # the generated module's text
    forward_step: object
    backward_step: object


def _indent(lines: list[str], n: int) -> list[str]:
    return [" " * n + line for line in lines]


def generate(cell: CellSpec) -> str:
    """The numba source of ``cell``'s two kernels."""
    fwd = pwise.parse(cell.forward)
    bwd = pwise.parse(cell.backward, cell.cache)
    G, S = cell.gates, len(cell.state)
    cache_fields = [f.name for f in fields(cell.cache)]
    states, cache_arrays = [f"S{s}" for s in range(S)], [f"K_{f}" for f in cache_fields]
    xs, hs, prevs = fwd.args[:G], fwd.args[G:2 * G], fwd.args[2 * G:]
    new_state, new_cache = fwd.returns
    proj = cell.projection
    lines = [f'"""Generated from {cell.forward.__module__} ({cell.name}) by '
             f'scratchrnn.engines.numba_kernels; do not edit."""',
             "from scratchrnn.engines.numba_kernels import (_JIT, add_rows, carry_in, const, "
             "numba, pass_padding, relu, relu_prime, sigmoid, tanh)",
             "", "", "@numba.njit(**_JIT)",
             f"def forward_step(_t, xw, hw, b_ih, b_hh, {', '.join(states)}, _rp, _wp, "
             f"{', '.join(cache_arrays)}, hout, mask, use_mask):"]
    body = ["_Bn, _H = hw.shape[0], hw.shape[2]", "_zero = const(xw, 0.0)"]
    body += [f"{pwise.const_name(v)} = const(xw, {v!r})" for v in pwise.constants(fwd)]
    body += ["for _b in range(_Bn):",
             "    if use_mask and not mask[_t, _b]:        # padding: keep the state, output 0"]
    body += [f"        {s}[_wp, _b, :] = {s}[_rp, _b, :]" for s in states[int(proj):]]
    body += ["        hout[_t, _b, :] = _zero", "        continue",
             f"    add_rows(xw[_t, _b], b_ih, {G})", f"    add_rows(hw[_b], b_hh, {G})"]
    body += [f"    _x{g} = xw[_t, _b, {g}]" for g in range(G)]
    body += [f"    _h{g} = hw[_b, {g}]" for g in range(G)]
    body += [f"    _p{s} = {states[s]}[_rp, _b]" for s in range(S) if fwd.used(prevs[s])]
    body += [f"    _n{s} = {states[s]}[_wp, _b]" for s in range(int(proj), S)]
    body += [f"    _k_{f} = K_{f}[_t, _b]" for f in cache_fields]
    body += ["    _o = hout[_t, _b]", "    for _k in range(_H):"]
    inner = [f"{a} = _x{g}[_k]" for g, a in enumerate(xs)]
    inner += [f"{a} = _h{g}[_k]" for g, a in enumerate(hs)]
    inner += [f"{a} = _p{s}[_k]" for s, a in enumerate(prevs) if fwd.used(a)]
    inner += pwise.python_lines(fwd)
    inner += [f"_n{s}[_k] = {pwise.python_expr(new_state[s])}" for s in range(int(proj), S)]
    inner += [f"_k_{f}[_k] = {pwise.python_expr(e)}" for f, e in zip(cache_fields, new_cache)]
    inner += [f"_o[_k] = {pwise.python_expr(new_state[0])}"]
    lines += _indent(body + _indent(inner, 8), 4)

    # ---- backward -------------------------------------------------------- #
    da_x, da_h, direct = bwd.returns
    dstate, bprevs = bwd.args[:S], bwd.args[S:2 * S]
    grads = [f"D{s}" for s in range(1, S)]
    lines += ["", "", "@numba.njit(**_JIT)",
              f"def backward_step(_t, dh_rec, dh_res, {''.join(g + ', ' for g in grads)}"
              f"dout, has_dout, {', '.join(states)}, _rp, {', '.join(cache_arrays)}, dm, "
              f"da_x, da_h, db_x, db_h, mask, use_mask, rec, record):"]
    body = ["_Bn, _H = da_x.shape[1], da_x.shape[3]", "_zero = const(da_x, 0.0)"]
    body += [f"{pwise.const_name(v)} = const(da_x, {v!r})" for v in pwise.constants(bwd)]
    body += ["for _b in range(_Bn):", "    if use_mask and not mask[_t, _b]:"]
    if not proj:
        body += ["        pass_padding(_t, _b, dh_rec, dh_res, rec, record)"]
    body += ["        da_x[_t, _b, :, :] = 0"]
    if cell.separate_h_grad:
        body += ["        da_h[_t, _b, :, :] = 0"]
    body += ["        continue"]
    if proj:
        body += ["    _dh = dm[_b]                    # ∂L/∂m = δ W_hr, from the driver"]
    else:
        body += ["    carry_in(_t, _b, dh_rec, dh_res, dout, has_dout, rec, record)",
                 "    _dh = dh_res[_b]"]
    body += [f"    _d{s} = D{s}[_b]" for s in range(1, S)]
    body += [f"    _p{s} = {states[s]}[_rp, _b]" for s in range(S) if bwd.used(bprevs[s])]
    body += [f"    _k_{f} = K_{f}[_t, _b]" for f in cache_fields
             if bwd.used(f"{bwd.cache_arg}_{f}")]
    body += [f"    _ax{g} = da_x[_t, _b, {g}]" for g in range(G)]
    if cell.separate_h_grad:
        body += [f"    _ah{g} = da_h[_t, _b, {g}]" for g in range(G)]
    body += ["    _res = dh_res[_b]", "    for _k in range(_H):"]
    inner = [f"{dstate[0]} = _dh[_k]"] + [f"{dstate[s]} = _d{s}[_k]" for s in range(1, S)]
    inner += [f"{a} = _p{s}[_k]" for s, a in enumerate(bprevs) if bwd.used(a)]
    inner += [f"{bwd.cache_arg}_{f} = _k_{f}[_k]" for f in cache_fields
              if bwd.used(f"{bwd.cache_arg}_{f}")]
    inner += pwise.python_lines(bwd)
    inner += [f"_ax{g}[_k] = {pwise.python_expr(e)}" for g, e in enumerate(da_x)]
    if cell.separate_h_grad:
        inner += [f"_ah{g}[_k] = {pwise.python_expr(e)}" for g, e in enumerate(da_h)]
    if not proj:    # the part of ∂L/∂h_{t-1} that does not go through W_hh
        rest = "_zero" if pwise.is_zero(direct[0]) else pwise.python_expr(direct[0])
        inner += [f"_res[_k] = {rest}"]
    inner += [f"_d{s}[_k] = {pwise.python_expr(direct[s])}" for s in range(1, S)]
    after = [f"    add_rows(db_x, da_x[_t, _b], {G})"]
    if cell.separate_h_grad:
        after += [f"    add_rows(db_h, da_h[_t, _b], {G})"]
    lines += _indent(body + _indent(inner, 8) + after, 4)
    return "\n".join(lines) + "\n"


def _check(cell: CellSpec) -> None:
    """The shapes the template relies on (a projection's direct ∂L/∂h_{t-1} must be 0)."""
    bwd = pwise.parse(cell.backward, cell.cache)
    if (bwd.returns[1] is not None) != cell.separate_h_grad:
        raise ValueError(f"{cell.name}: separate_h_grad={cell.separate_h_grad} but "
                         f"{cell.backward.__name__} returns da_h={bwd.returns[1] is not None}")
    if cell.projection and not pwise.is_zero(bwd.returns[2][0]):
        raise ValueError(f"{cell.name}: a projected cell's backward must return 0 as the "
                         "direct part of ∂L/∂h_prev")


# --------------------------------------------------------------------------- #
# The kernel cache: a folder only this user can write in
# --------------------------------------------------------------------------- #
# Its files are imported (the generated modules) and unpickled (numba's index
# in __pycache__), so a folder anyone else can write in would run their code.
# A folder is used only when it is (or is made) a real folder owned by this
# user with mode 0700, in a chain of folders no other user can change; the
# module is executed from the text generated in this process, after the file
# on disk has been checked (rewritten if it differs) to hold that same text.
_private_tmp: Path | None = None      # mkdtemp folder of this process, when both refuse


def _others_can_write(st: os.stat_result, uid: int) -> bool:
    """Can a user other than ``uid`` (root aside) create or rename entries here?"""
    if st.st_uid not in (uid, 0):
        return True
    group = bool(st.st_mode & stat.S_IWGRP) and st.st_gid != os.getgid()
    world = bool(st.st_mode & stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX
    return group or world


def _why_not_private(path: Path) -> str:
    """'' when ``path`` is a folder only this user can write in (created with mode
    0700 when missing; an own folder that others cannot write in is tightened to
    0700), else why it is refused."""
    uid = os.getuid()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            return "is not a folder (or is a link)"
        if st.st_uid != uid:
            return f"belongs to uid {st.st_uid}, not to this user (uid {uid})"
        if _others_can_write(st, uid):
            return f"can be written by other users (mode {stat.S_IMODE(st.st_mode):04o})"
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(path, 0o700)
        for parent in Path(os.path.realpath(path.parent), "x").parents:
            if _others_can_write(os.stat(parent), uid):
                return f"lies in {parent}, which other users can change"
        probe = path / f".probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        return f"cannot be used ({err.strerror or err})"
    return ""


def _cache_dir() -> Path:
    """The first private folder of ``$SCRATCHRNN_CACHE``/scratchrnn/numba (else
    ``$XDG_CACHE_HOME`` or ``~/.cache``), ``$TMPDIR/scratchrnn-numba-<uid>``, and a
    new temporary folder for this process (removed at exit), with a one-line
    warning when a folder is refused for its owner or permissions."""
    global _private_tmp
    base = os.environ.get("SCRATCHRNN_CACHE") or os.environ.get("XDG_CACHE_HOME") or \
        os.path.join(os.path.expanduser("~"), ".cache")
    refused = []
    for path in (Path(base) / "scratchrnn" / "numba",
                 Path(tempfile.gettempdir()) / f"scratchrnn-numba-{os.getuid()}"):
        why = _why_not_private(path)
        if not why:
            if refused:
                warnings.warn(f"numba kernel cache: {refused[0]}; using {path}", RuntimeWarning,
                              stacklevel=3)
            return path
        if not why.startswith("cannot be used"):
            refused.append(f"{path} {why}")
    if _private_tmp is None or not _private_tmp.is_dir():
        _private_tmp = Path(tempfile.mkdtemp(prefix="scratchrnn-numba-"))     # mode 0700
        atexit.register(shutil.rmtree, _private_tmp, ignore_errors=True)
    if refused:
        warnings.warn(f"numba kernel cache: {'; '.join(refused)}; compiling into "
                      f"{_private_tmp} for this process only", RuntimeWarning, stacklevel=3)
    return _private_tmp


def _load(name: str, source: str) -> ModuleType:
    """``source`` as a module: run from this text, with its file (named by the text's
    hash, written atomically) in the private cache folder for numba's cache."""
    key = hashlib.sha256((source + Path(__file__).read_text(encoding="utf-8")).encode())
    stem = f"{name}_{key.hexdigest()[:16]}"
    mod_name = f"scratchrnn_generated_{stem}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    folder = _cache_dir()
    path = folder / f"{stem}.py"
    if not _holds(path, source):          # missing, damaged or not ours: write it again
        fd, tmp = tempfile.mkstemp(prefix=f"{stem}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(source)
        os.replace(tmp, path)
    module = ModuleType(mod_name)
    module.__file__ = str(path)
    sys.modules[mod_name] = module
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)   # the generated text
    except BaseException:
        del sys.modules[mod_name]
        raise
    return module


def _holds(path: Path, source: str) -> bool:
    """Is ``path`` a regular file (not a link) whose text is ``source``?"""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        return path.read_text(encoding="utf-8") == source
    except (OSError, UnicodeDecodeError):
        return False


_compiled: dict[str, CellKernels] = {}


def kernels(cell: CellSpec) -> CellKernels:
    """The kernels of ``cell``, generated and compiled on first use."""
    if cell.name not in _compiled:
        _check(cell)
        source = generate(cell)
        module = _load(cell.name, source)
        _compiled[cell.name] = CellKernels(cell.name, source, module.forward_step,
                                           module.backward_step)
    return _compiled[cell.name]
