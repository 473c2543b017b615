"""Time one training step of RNN/GRU/LSTM layers: scratchrnn vs PyTorch vs naive NumPy.

A step is forward over T steps plus the loss-free backward of ``output.sum()``
(all parameter gradients and ∂L/∂x), float32, one layer, one direction:

    small: T=50,  B=32,  I=64,  H=128
    mid:   T=100, B=64,  I=256, H=256
    large: T=50,  B=128, I=512, H=512
    (cupy adds xl: T=50, B=256, I=1024, H=1024)

Each implementation runs alone in a fresh subprocess (OpenMP and OpenBLAS
threads in one process slow each other), rounds rotate the order, and the
table shows medians over rounds. GFLOP/s counts the six GEMM-equivalents
of forward + backward, 3·2·T·B·(I+H)·G·H; the ceiling is the float32 product
``(64·B, I+H) × (I+H, G·H)`` through the same library.

    python benchmarks/layers.py [--shapes small,mid] [--cells lstm] [--rounds 3]
                                [--threads 2] [--dtype float32] [--backend numpy|cupy]
                                [--clock cpu --threads 1]  # CPU time: for a busy machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc

import blas_env

SHAPES = {  # name: (T, B, I, H)
    "small": (50, 32, 64, 128),
    "mid": (100, 64, 256, 256),
    "large": (50, 128, 512, 512),
    "xl": (50, 256, 1024, 1024),
    "long": (2000, 16, 64, 128),   # --long: checkpointed BPTT vs the normal path
}
GATES = {"rnn_tanh": 1, "gru": 3, "lstm": 4}   # scratchrnn.cells names
IMPLS = ("ours", "portable", "torch", "naive", "ceiling")
# also: "ours_mkl" (SCRATCHRNN_MKL=1: MKL's packed products) and "ours_openblas" (=0)
LONG_IMPLS = ("ours", "ours_ckpt", "portable", "portable_ckpt")


def step_flops(cell: str, T: int, B: int, I: int, H: int) -> float:
    return 3 * 2 * T * B * (I + H) * GATES[cell] * H


# --------------------------------------------------------------------------- #
# Worker: one implementation, one cell, one shape, in this (fresh) process.
# --------------------------------------------------------------------------- #
def _sync(backend: str) -> None:
    if backend == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


def _now() -> float:
    """The benchmark's clock: wall time, or this process's CPU time (``--clock cpu``)."""
    if os.environ.get("SCRATCHRNN_BENCH_CLOCK") == "cpu":
        return time.process_time()
    return time.perf_counter()


def _time(fn, repeats: int, backend: str, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(backend)
    times = []
    for _ in range(repeats):
        t0 = _now()
        fn()
        _sync(backend)
        times.append(_now() - t0)
    return times


def _peak_and_cached(fn_forward, fn_backward, T: int) -> tuple[int, int]:
    """tracemalloc peak of one step, and bytes alive after forward (minus the output) per step."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    out = fn_forward()
    held = tracemalloc.get_traced_memory()[0] - base - int(out.nbytes)
    fn_backward(out)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak, max(held, 0) // T


def worker(impl: str, cell: str, shape: str, dtype: str, threads: int, backend: str,
           repeats: int) -> dict:
    from threadpoolctl import threadpool_limits

    T, B, I, H = SHAPES[shape]
    G = GATES[cell]
    result: dict = {"impl": impl, "cell": cell, "shape": shape}
    with threadpool_limits(limits=threads):
        if impl == "ceiling":
            xp = _xp(backend)
            a = xp.ones((64 * B, I + H), dtype=dtype)
            b = xp.ones((I + H, G * H), dtype=dtype)
            times = _time(lambda: a @ b, max(repeats, 5), backend)
            result["gflops"] = 2 * a.shape[0] * a.shape[1] * b.shape[1] / min(times) / 1e9
            return result
        if impl == "torch":
            import torch

            torch.set_num_threads(threads)
            dev = "cuda" if backend == "cupy" else "cpu"
            cls = {"rnn_tanh": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
            model = cls(I, H).to(device=dev, dtype=getattr(torch, dtype))
            x = torch.randn(T, B, I, device=dev, dtype=getattr(torch, dtype), requires_grad=True)

            def step():
                model.zero_grad()
                x.grad = None
                out, _ = model(x)
                out.sum().backward()
                if dev == "cuda":
                    torch.cuda.synchronize()

            result["times"] = _time(step, repeats, backend)
            return result
        xp = _xp(backend)
        rng = __import__("numpy").random.default_rng(0)
        x = xp.asarray(rng.standard_normal((T, B, I)), dtype=dtype)
        if impl == "naive":
            from naive import NaiveRNN

            model = NaiveRNN(cell, I, H, dtype, xp=xp)
            d_out = xp.ones((T, B, H), dtype=dtype)
            fwd = lambda: model.forward(x)  # noqa: E731
            bwd = lambda out: model.backward(d_out)  # noqa: E731
        else:
            import scratchrnn as sr

            cls = {"rnn_tanh": sr.RNN, "gru": sr.GRU, "lstm": sr.LSTM}[cell]
            model = cls(I, H, dtype=dtype, device="cuda" if backend == "cupy" else "cpu",
                        checkpoint_every=True if impl.endswith("_ckpt") else None,
                        engine="auto" if impl.startswith("ours") else "reference")
            d_out = xp.ones((T, B, H), dtype=dtype)
            fwd = lambda: model(x)[0]  # noqa: E731

            def bwd(out):
                model.zero_grad()
                model.backward(d_out)

        result["times"] = _time(lambda: bwd(fwd()), repeats, backend)
        if backend == "numpy":
            result["peak"], result["cached_per_step"] = _peak_and_cached(fwd, bwd, T)
        return result


def _xp(backend: str):
    if backend == "cupy":
        import cupy

        return cupy
    import numpy

    return numpy


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #
def run_one(impl: str, cell: str, shape: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--cells", cell, "--shapes", shape,
           "--dtype", args.dtype, "--threads", str(args.threads), "--backend", args.backend,
           "--repeats", str(args.repeats)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if impl in ("ours_openblas", "ours_mkl"):
        env["SCRATCHRNN_MKL"] = "1" if impl == "ours_mkl" else "0"
    env["SCRATCHRNN_BENCH_CLOCK"] = args.clock
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.abspath(__file__)))
    if proc.returncode != 0:
        print(f"[{impl} {cell} {shape}] failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine_info() -> dict:
    info = {"python": platform.python_version()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, val = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "L2 cache",
                               "L3 cache"):
                info[key.strip()] = val.strip()
    except OSError:
        pass
    for mod in ("numpy", "torch", "numba", "cupy"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = "not installed"
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = ", ".join(f"{d['internal_api']} {d['version']} ({d['threading_layer']}, "
                                 f"{d['architecture']})" for d in threadpool_info()
                                 if d["user_api"] == "blas")
    except ImportError:
        pass
    return info


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default=None, help="comma list of " + ",".join(SHAPES))
    ap.add_argument("--cells", default="rnn_tanh,gru,lstm",
                    help="comma list of rnn_tanh (alias rnn), gru, lstm")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per implementation")
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per process")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--backend", default="numpy", choices=("numpy", "cupy"))
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="cpu: process CPU time, steadier on a shared machine (with --threads 1)")
    ap.add_argument("--long", action="store_true",
                    help="T=2000: checkpointed BPTT (k = √T) vs the normal path")
    ap.add_argument("--json", default=None, help="also write raw results here")
    ap.add_argument("--openblas-coretype", default="auto", help=blas_env.CHOICES_HELP)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    default_shapes = "small,mid,large" + (",xl" if args.backend == "cupy" else "")
    if args.long:
        default_shapes = "long"
        if args.impls == ",".join(IMPLS):
            args.impls = ",".join(LONG_IMPLS)
    shapes = (args.shapes or default_shapes).split(",")
    cells = args.cells.split(",")
    if args.worker:                      # the parent has set OPENBLAS_CORETYPE for us
        print(json.dumps(worker(args.worker, cells[0], shapes[0], args.dtype, args.threads,
                                args.backend, args.repeats)))
        return

    blas_line = blas_env.apply(args.openblas_coretype)
    # after blas_env, which must run before anything imports numpy
    from scratchrnn.cells import cell_name

    cells = [cell_name(c, GATES, "--cells") for c in cells]       # 'rnn' -> 'rnn_tanh'
    impls = args.impls.split(",")
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    runs: dict[tuple[str, str, str], list[dict]] = {}
    for shape in shapes:
        for cell in cells:
            for r in range(args.rounds):
                order = impls[r % len(impls):] + impls[:r % len(impls)]   # rotate
                for impl in order:
                    res = run_one(impl, cell, shape, args)
                    if res:
                        runs.setdefault((impl, cell, shape), []).append(res)
            print(f"done {cell} {shape}", file=sys.stderr, flush=True)

    def med_ms(impl: str, cell: str, shape: str) -> float | None:
        rs = runs.get((impl, cell, shape))
        if not rs:
            return None
        return statistics.median(statistics.median(r["times"]) for r in rs) * 1e3

    def field(impl: str, cell: str, shape: str, key: str) -> float | None:
        rs = runs.get((impl, cell, shape))
        return None if not rs or key not in rs[0] else statistics.median(r[key] for r in rs)

    def fmt(v: float | None, spec: str = ".1f") -> str:
        return "-" if v is None else format(v, spec)

    if args.long:
        lines = [f"T, B, I, H = {SHAPES['long']}, {args.dtype}, threads {args.threads}, "
                 f"{args.rounds} fresh processes x {args.repeats} steps", "",
                 "| cell | path | normal ms | checkpointed ms | time ratio | peak MB normal / "
                 "ckpt | tape MB normal / ckpt |", "|---|---|---|---|---|---|---|"]
        T = SHAPES["long"][0]
        for cell in cells:
            for base in ("ours", "portable"):
                if (base, cell, "long") not in runs:
                    continue
                a, b = med_ms(base, cell, "long"), med_ms(base + "_ckpt", cell, "long")
                pa, pb = (field(i, cell, "long", "peak") for i in (base, base + "_ckpt"))
                ta, tb = (field(i, cell, "long", "cached_per_step") for i in
                          (base, base + "_ckpt"))
                lines.append(
                    f"| {cell} | {base} | {fmt(a)} | {fmt(b)} | "
                    f"{fmt(b / a if a and b else None, '.2f')}x | {_mb(pa)} / {_mb(pb)} | "
                    f"{_mb(ta and ta * T)} / {_mb(tb and tb * T)} |")
        print("\n".join(lines))
        print(blas_line + "\nmachine: " + json.dumps(machine_info()))
        return

    lines = [f"backend {args.backend}, {args.dtype}, threads {args.threads}, {args.clock} clock, "
             f"{args.rounds} fresh processes x {args.repeats} steps per implementation", "",
             "| cell | shape | ours ms | GFLOP/s | of ceiling | portable ms | torch ms | naive ms "
             "| vs torch | vs naive | peak MB ours / naive | cached KB/step ours / naive |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for shape in shapes:
        T, B, I, H = SHAPES[shape]
        for cell in cells:
            ours = med_ms("ours", cell, shape)
            flops = step_flops(cell, T, B, I, H)
            gf = None if ours is None else flops / (ours * 1e-3) / 1e9
            ceil = field("ceiling", cell, shape, "gflops")
            torch_ms, naive_ms = med_ms("torch", cell, shape), med_ms("naive", cell, shape)
            vs_t = None if not (ours and torch_ms) else torch_ms / ours
            vs_n = None if not (ours and naive_ms) else naive_ms / ours
            frac = None if not (gf and ceil) else gf / ceil
            peak = f"{_mb(field('ours', cell, shape, 'peak'))} / " \
                   f"{_mb(field('naive', cell, shape, 'peak'))}"
            c_o, c_n = (field(i, cell, shape, "cached_per_step") for i in ("ours", "naive"))
            cached = f"{fmt(c_o and c_o / 1024, '.0f')} / {fmt(c_n and c_n / 1024, '.0f')}"
            lines.append(
                f"| {cell} | {shape} | {fmt(ours)} | {fmt(gf, '.0f')} | {fmt(frac, '.2f')} | "
                f"{fmt(med_ms('portable', cell, shape))} | {fmt(torch_ms)} | {fmt(naive_ms)} | "
                f"{fmt(vs_t, '.2f')}x | {fmt(vs_n, '.2f')}x | {peak} | {cached} |")
    print("\n".join(lines))
    # the ratio of each round (both in fresh processes, side by side): median [range]
    ours_impls = [i for i in impls if i.startswith("ours") or i == "portable"]
    if "torch" in impls and ours_impls:
        ratio_lines = ["", "torch / ours per round, median [min-max]:", "",
                       "| cell | shape | " + " | ".join(ours_impls) + " |",
                       "|---|---|" + "---|" * len(ours_impls)]
        for shape in shapes:
            for cell in cells:
                cols = []
                for impl in ours_impls:
                    pairs = list(zip(runs.get(("torch", cell, shape), []),
                                     runs.get((impl, cell, shape), [])))
                    r = sorted(statistics.median(t["times"]) / statistics.median(o["times"])
                               for t, o in pairs)
                    cols.append(f"{statistics.median(r):.2f}x [{r[0]:.2f}-{r[-1]:.2f}]"
                                if r else "-")
                ratio_lines.append(f"| {cell} | {shape} | " + " | ".join(cols) + " |")
        lines += ratio_lines
        print("\n".join(ratio_lines))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("\nceiling GFLOP/s: " + ", ".join(
        f"{c}/{s} {fmt(field('ceiling', c, s, 'gflops'), '.0f')}" for s in shapes for c in cells))
    print(blas_line + "\nmachine: " + json.dumps(machine_info()))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"table": lines, "machine": machine_info(), "blas": blas_line,
                       "runs": {"|".join(k): v for k, v in runs.items()}}, fh, indent=1)


if __name__ == "__main__":
    main()
