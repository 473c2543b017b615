"""How many threads NumPy's BLAS uses: a policy that follows the machine's load.

A recurrent step makes many small matrix products (``h W_hh^T`` for every time
step). OpenBLAS splits each one into equal parts, one per thread, and the
product is done when the slowest part is. When another process takes a core,
the thread that shares it runs in the scheduler's slices (milliseconds), and
every 50 µs product waits for it. The news classifier took 62 s alone and
605 s beside another CPU-bound process on a 2-core machine; with one BLAS
thread, 57 s. One thread is no answer either: alone, the main job's LSTM-256
step is 1.6x faster with two (see ``benchmarks/RESULTS.md``).

So the thread count follows the load. The policy comes from
``SCRATCHRNN_THREADS`` or :func:`set_thread_policy` (the CLI's ``--threads``):

==========  ================================================================
``auto``    the default: as many threads as the cores other processes leave
            free, at least 1. :func:`adapt_blas_threads` (the trainer calls it
            every step) measures that every second from ``/proc/stat``:
            others = (busy CPU time of our cores, stolen time included)
            − (this process's CPU time), per second of wall time, and sets
            ``threads = clamp(round(cores − others), 1, start)`` where
            ``start`` is BLAS's own thread count at the first call.
``N``       exactly N threads, set once.
``off``     leave BLAS alone (its own choice, or ``OPENBLAS_NUM_THREADS``).
==========  ================================================================

A thread count in the environment (``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS``, ``GOTO_NUM_THREADS``) is the user's choice: ``auto``
then does nothing. ``cores`` are those this process may run on (its CPU
affinity), capped by a cgroup v2 CPU quota. Where ``/proc/stat`` does not
exist (macOS, Windows) ``auto`` leaves BLAS alone.

The count is set through OpenBLAS's own C API (``openblas_set_num_threads``,
with the symbol prefix and suffix of NumPy's bundled ``scipy-openblas``),
found with ctypes in the libraries this process has loaded, so no extra
package is needed. For another BLAS (MKL, Accelerate) threadpoolctl is used
when it is installed.

Numerics: OpenBLAS splits a product's rows and columns between threads, not
its inner sum, but some of its kernels round edge tiles differently, so a
product's last bits can depend on the thread count (float64, or float32 with
its AVX2 kernels). A run whose count changed with the load then differs from
another run in float rounding. For bit-identical reruns and resumes under any
load, fix the count (``--threads N`` or ``SCRATCHRNN_THREADS=N``).
"""

from __future__ import annotations

import ctypes
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ENV = "SCRATCHRNN_THREADS"
#: Environment variables through which a user fixes BLAS's thread count.
USER_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
INTERVAL_S = 1.0  # how often ``auto`` re-reads the load


# ---- reading the load ------------------------------------------------------ #
@dataclass(frozen=True, slots=True)
class CpuSample:
    """One reading of /proc/stat for the thread policy: wall time, busy and own CPU time."""
    wall: float   # time.monotonic(), s
    busy: float   # CPU-seconds our cores spent busy: every process, and stolen by a hypervisor
    own: float    # CPU-seconds this process used, all its threads


def busy_seconds(stat_text: str, cpus: set[int], ticks_per_s: float) -> float:
    """CPU-seconds spent busy on ``cpus``, summed from ``/proc/stat``'s per-CPU lines.

    Busy = user + nice + system + irq + softirq + steal (guest time is inside user).
    """
    total = 0
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        # user nice system idle iowait irq softirq steal (missing fields count as 0)
        f = [int(v) for v in rest.split()] + [0] * 8
        total += f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
    return total / ticks_per_s


def others_busy(before: CpuSample, after: CpuSample) -> float:
    """Cores' worth of CPU that other processes (or the hypervisor) took between two samples."""
    wall = after.wall - before.wall
    if wall <= 0:
        return 0.0
    return max(0.0, (after.busy - before.busy) - (after.own - before.own)) / wall


def threads_for(others: float, cores: int, most: int) -> int:
    """The thread count for ``cores`` usable cores of which ``others`` are taken: the free
    cores rounded to the nearest whole (a core taken 40 % of the time still counts as
    free), between 1 and ``most``."""
    return max(1, min(most, math.floor(cores - others + 0.5)))


def usable_cores(affinity: set[int] | None = None,
                 cpu_max_path: str = "/sys/fs/cgroup/cpu.max") -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 quota
    (``cpu.max`` holds ``"QUOTA PERIOD"`` or ``"max PERIOD"``)."""
    if affinity is None:
        affinity = _affinity()
    cores = max(1, len(affinity))
    try:
        quota, period = Path(cpu_max_path).read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # not Linux
        return set(range(os.cpu_count() or 1))


def read_cpu_sample(cpus: set[int], stat_path: str = "/proc/stat") -> CpuSample | None:
    """The current :class:`CpuSample`, or None where ``stat_path`` cannot be read."""
    try:
        text = Path(stat_path).read_text()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return CpuSample(time.monotonic(), busy_seconds(text, cpus, ticks), time.process_time())


# ---- setting BLAS's thread count -------------------------------------------- #
_API: tuple[Callable[[int], None], Callable[[], int]] | None | bool = False  # False: not looked up


def _loaded_openblas_paths() -> list[str]:
    """Files of an OpenBLAS that may be loaded: from /proc/self/maps, then numpy's wheel folders."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                path = line.split(maxsplit=5)[-1].strip() if line.count(" ") >= 5 else ""
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    import numpy

    here = Path(numpy.__file__).parent
    for folder in (here / ".dylibs", here.parent / "numpy.libs", here / ".libs"):
        if folder.is_dir():
            paths += sorted(str(p) for p in folder.glob("*openblas*") if str(p) not in paths)
    return paths


def _openblas_api() -> tuple[Callable[[int], None], Callable[[], int]] | None:
    """``(set, get)`` of the OpenBLAS NumPy uses, or None when it has none we can find."""
    global _API
    if _API is not False:
        return _API  # type: ignore[return-value]
    import numpy  # noqa: F401  (loads NumPy's BLAS first, so we find that one)

    _API = None
    for path in _loaded_openblas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_", ""):        # scipy-openblas (NumPy's wheels) / plain builds
            for suffix in ("64_", "", "_64", "64"):
                try:
                    set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
                    get_ = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
                except AttributeError:
                    continue
                set_.argtypes, set_.restype = [ctypes.c_int], None
                get_.argtypes, get_.restype = [], ctypes.c_int
                _API = (set_, get_)
                return _API
    return None


def get_blas_threads() -> int | None:
    """BLAS's thread count now (None when neither OpenBLAS nor threadpoolctl can tell)."""
    api = _openblas_api()
    if api is not None:
        return int(api[1]())
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [d["num_threads"] for d in threadpool_info() if d.get("user_api") == "blas"]
    return max(counts) if counts else None


def set_blas_threads(n: int) -> None:
    """Make NumPy's BLAS use ``n`` threads from now on (OpenBLAS's API, else threadpoolctl)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"threads: expected a positive integer, got {n!r}")
    _remember_own_count()
    from . import mkl_blas

    mkl = mkl_blas.loaded()            # the engines' MKL products follow the same count
    if mkl is not None:
        mkl.set_threads(n)
    api = _openblas_api()
    if api is not None:
        api[0](n)
        return
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        raise RuntimeError(f"threads: cannot set {n} BLAS threads: NumPy's BLAS is not an "
                           "OpenBLAS found in this process; install threadpoolctl for others "
                           "(MKL, Accelerate), or set OMP_NUM_THREADS before starting") from None
    ThreadpoolController().limit(limits=n, user_api="blas")


# ---- the policy ------------------------------------------------------------- #
def parse_policy(spec: str | int | None, environ: Mapping[str, str] = os.environ) -> str | int:
    """``"auto"``, ``"off"`` or a fixed count, from ``spec`` or else ``SCRATCHRNN_THREADS``.

    Without either, a thread count in the environment (``OPENBLAS_NUM_THREADS``, ...) makes
    it ``"off"`` (the user's choice stands); otherwise ``"auto"``.
    """
    where = "threads"
    if spec is None:
        spec, where = environ.get(ENV), ENV
        if spec is None or not spec.strip():
            return "off" if any(environ.get(v, "").strip() for v in USER_THREAD_VARS) \
                else "auto"
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in ("auto", "off"):
            return text
        try:
            spec = int(text)
        except ValueError:
            raise ValueError(f"{where}: expected 'auto', 'off' or a positive integer, "
                             f"got {spec!r}") from None
    if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
        raise ValueError(f"{where}: expected 'auto', 'off' or a positive integer, got {spec!r}")
    return spec


class ThreadPolicy:
    """Applies a policy (see the module docstring); :meth:`tick` is cheap between samples."""

    def __init__(self, policy: str | int = "auto", interval: float = INTERVAL_S,
                 sample: Callable[[], CpuSample | None] | None = None,
                 set_threads: Callable[[int], None] = set_blas_threads,
                 get_threads: Callable[[], int | None] = get_blas_threads,
                 cores: int | None = None, most: int | None = None) -> None:
        self.policy = parse_policy(policy)
        self.interval = interval
        cpus = _affinity()
        self._sample = sample if sample is not None else (lambda: read_cpu_sample(cpus))
        self._set, self._get = set_threads, get_threads
        self.cores = cores if cores is not None else usable_cores(cpus)
        self.most = most                      # the most threads auto uses (None: BLAS's count
        #                                       at the first tick)
        self.threads: int | None = None       # the count this policy set last
        self._last: CpuSample | None = None
        self._due = 0.0
        self.others = 0.0                      # the last measured load of other processes
        if isinstance(self.policy, int):
            self._set(self.policy)
            self.threads = self.policy

    def tick(self) -> int | None:
        """Under ``auto``, re-read the load when a sample is due and set the thread count;
        returns the count set (None when nothing was set)."""
        if self.policy != "auto":
            return None
        now = time.monotonic()
        if now < self._due:
            return None
        self._due = now + self.interval
        current = self._sample()
        if current is None:                    # no /proc/stat: leave BLAS alone
            self.policy = "off"
            return None
        if self.most is None:
            self.most = self._get() or self.cores
        before, self._last = self._last, current
        if before is None:
            return None
        self.others = others_busy(before, current)
        want = threads_for(self.others, self.cores, self.most)
        if want == self.threads:
            return None
        try:
            self._set(want)
        except RuntimeError:                   # a BLAS we cannot steer: leave it alone
            self.policy = "off"
            return None
        self.threads = want
        return want


_POLICY: ThreadPolicy | None = None
_OWN: int | None = None    # BLAS's own thread count, before scratchrnn set one


def _remember_own_count() -> None:
    global _OWN
    if _OWN is None:
        _OWN = get_blas_threads()


def set_thread_policy(policy: str | int | None = None) -> ThreadPolicy:
    """Choose the policy (None: from the environment, see :func:`parse_policy`) and apply it.

    Each policy starts from BLAS's own thread count ("off" leaves it there)."""
    global _POLICY
    policy = parse_policy(policy)
    _remember_own_count()
    if _OWN is not None and get_blas_threads() != _OWN:
        set_blas_threads(_OWN)
    _POLICY = ThreadPolicy(policy, most=_OWN)
    return _POLICY


def thread_policy() -> ThreadPolicy:
    """The policy in force (made from the environment at the first call)."""
    return _POLICY if _POLICY is not None else set_thread_policy()


def adapt_blas_threads() -> int | None:
    """Let the current policy follow the load (call it once per training step)."""
    return thread_policy().tick()
