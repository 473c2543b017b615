"""GPU: one layer's training step and forward pass, scratchrnn against cuDNN, in one process.

For each cell and shape, float32, one layer, one direction, the step is
forward over T plus backward of ``(output * R).sum()`` (all gradients):

* ``cudnn``: ``torch.nn.LSTM/GRU/RNN`` on cuDNN;
* ``graph``: scratchrnn's default engine on CuPy, ``cuda-graph``;
* ``eager``: scratchrnn's ``cupy`` engine (fused kernels, launched one by one).

at strict FP32 (``torch.backends.*.allow_tf32 = False``, ``allow_tf32=False``)
and at TF32 (both on). GPU timings need no process isolation: each timing is
the median of ``--repeats`` calls, synchronised, after warm-up. The ratio is
cuDNN's time over ours (above 1: ours is faster).

    python benchmarks/gpu_layers.py [--cells lstm,gru,rnn_tanh] [--shapes small,mid,large,xl,batch1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

SHAPES = {  # name: (T, B, I, H)
    "small": (50, 32, 64, 128),
    "mid": (100, 64, 256, 256),
    "large": (50, 128, 512, 512),
    "xl": (50, 256, 1024, 1024),
    "batch1": (200, 1, 128, 256),
}


def timed(fn, sync, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def bench(cell: str, shape: str, tf32: bool, repeats: int) -> dict:
    import cupy
    import numpy as np
    import torch

    import scratchrnn as sr

    T, B, I, H = SHAPES[shape]
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((T, B, I)).astype("float32")
    r_np = rng.standard_normal((T, B, H)).astype("float32")
    res = {"cell": cell, "shape": shape, "precision": "tf32" if tf32 else "fp32"}

    tcls = {"rnn_tanh": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    tm = tcls(I, H).cuda()
    tx = torch.tensor(x_np, device="cuda", requires_grad=True)
    tr = torch.tensor(r_np, device="cuda")

    def t_step():
        tm.zero_grad()
        tx.grad = None
        out, _ = tm(tx)
        (out * tr).sum().backward()

    def t_fwd():
        with torch.no_grad():
            tm(tx)

    res["cudnn_step"] = timed(t_step, torch.cuda.synchronize, repeats)
    res["cudnn_fwd"] = timed(t_fwd, torch.cuda.synchronize, repeats)

    cls = {"rnn_tanh": sr.RNN, "gru": sr.GRU, "lstm": sr.LSTM}[cell]
    x, r = cupy.asarray(x_np), cupy.asarray(r_np)
    sync = cupy.cuda.Device().synchronize
    for engine in ("auto", "cupy"):
        m = cls(I, H, device="cuda", engine=engine, allow_tf32=tf32)
        m.load_state_dict({k: v.detach().cpu().numpy() for k, v in tm.state_dict().items()})
        name = "graph" if engine == "auto" else "eager"
        res[f"{name}_engine"] = m.engine_for(x).name

        def step(m=m):
            m.zero_grad()
            m(x)
            m.backward(r)

        res[f"{name}_step"] = timed(step, sync, repeats)
        res[f"{name}_fwd"] = timed(lambda m=m: m(x), sync, repeats)
        if engine == "auto":                 # agreement with cuDNN on this step
            m.zero_grad()
            out, _ = m(x)
            m.backward(r)
            t_step()
            ours = cupy.asnumpy(m.weight_hh_l0.grad)
            theirs = tm.weight_hh_l0.grad.cpu().numpy()
            res["grad_rel_err"] = float(np.abs(ours - theirs).max() /
                                        max(np.abs(theirs).max(), 1e-30))
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", default="lstm,gru,rnn_tanh",
                    help="comma list of lstm, gru, rnn_tanh (alias rnn)")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--precisions", default="fp32,tf32")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    print("| cell | shape | precision | cuDNN step ms | ours step ms | ratio | eager step ms "
          "| cuDNN fwd ms | ours fwd ms | fwd ratio | max rel err dW_hh |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    from scratchrnn.cells import cell_name

    for cell in (cell_name(c, ("lstm", "gru", "rnn_tanh"), "--cells")      # 'rnn' = rnn_tanh
                 for c in args.cells.split(",")):
        for shape in args.shapes.split(","):
            for prec in args.precisions.split(","):
                r = bench(cell, shape, prec == "tf32", args.repeats)
                rows.append(r)
                print(f"| {cell} | {shape} | {prec} | {r['cudnn_step']:.2f} | "
                      f"{r['graph_step']:.2f} | {r['cudnn_step'] / r['graph_step']:.2f}x | "
                      f"{r['eager_step']:.2f} | {r['cudnn_fwd']:.2f} | {r['graph_fwd']:.2f} | "
                      f"{r['cudnn_fwd'] / r['graph_fwd']:.2f}x | {r['grad_rel_err']:.1e} |",
                      flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
