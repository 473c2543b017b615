"""Data parallelism: shares, the single-process no-op, and ``mpiexec -n 2`` runs that
must end with the weights of one process (to 1e-9), resume exactly, and end every rank
when one fails.

The MPI tests start ``mpiexec`` in a subprocess with a timeout (a hang fails, it does
not block), and skip when mpiexec or mpi4py is missing (``pip install -e ".[mpi]"``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.data.batching import LMBatches, shard_range
from scratchrnn.nn.module import Parameter
from scratchrnn.training import distributed
from scratchrnn.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("mpi_worker.py")
TIMEOUT = 240


# ---- in one process -------------------------------------------------------- #
@pytest.mark.parametrize("n, size", [(8, 2), (7, 2), (3, 4), (10, 3), (0, 2)])
def test_shares_are_contiguous_even_and_cover_everything(n, size):
    ranges = [shard_range(n, r, size) for r in range(size)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [hi - lo for lo, hi in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_shard_range_rejects_a_bad_rank():
    with pytest.raises(ValueError, match=r"rank: expected 0 <= rank < size = 2, got 2"):
        shard_range(8, 2, 2)


def test_lm_shards_are_the_columns_of_each_window():
    ids = list(range(100))
    full = LMBatches(ids, 5, 4)
    parts = [full.shard(r, 2) for r in range(2)]
    assert [p.batch_size for p in parts] == [2, 3] and len(parts[0]) == len(full)
    for i in range(len(full)):
        w, a, b = full.window(i), parts[0].window(i), parts[1].window(i)
        assert np.array_equal(np.concatenate([a.x, b.x], axis=1), w.x)
        assert np.array_equal(np.concatenate([a.y, b.y], axis=1), w.y)
    with pytest.raises(ValueError, match=r"batch_size: expected at least one stream per "
                                         r"process \(8 processes\), got 5"):
        full.shard(0, 8)


def test_one_process_changes_nothing():
    comm = distributed.world("single")
    assert (comm.rank, comm.size, comm.is_root) == (0, 1, True)
    p = Parameter(B.get_backend("numpy").asarray([[1.0, 2.0], [3.0, 4.0]]))
    p.grad = p.data * 3
    before = p.grad
    assert comm.average_gradients([p], 0.25, 7) == (0.25, 7)
    assert p.grad is before                    # not even copied
    assert comm.sum_floats([1.5, 2]) == [1.5, 2.0] and comm.any(True) and not comm.any(False)
    assert comm.describe("cpu") == "cpu"


class Twins(distributed.Communicator):
    """Rank 0 of 2 in one process, where rank 1 always sends what rank 0 sends."""

    rank, size = 0, 2

    def __init__(self) -> None:
        self.reduced: list[tuple[int, ...]] = []

    def allreduce_(self, buf):
        self.reduced.append(tuple(buf.shape))
        return buf * 2

    def allgather(self, obj):
        return [obj, obj]


def test_one_allreduce_of_one_flat_buffer_per_step(tmp_path):
    from scratchrnn.models import LanguageModel
    from scratchrnn.training import Adam
    from scratchrnn.training.tasks import LanguageModelTask
    from scratchrnn.training.trainer import TrainConfig, Trainer

    model = LanguageModel(11, 8, 2, "gru", 4, generator=B.Generator(0))
    task = LanguageModelTask([i % 11 for i in range(300)], None, batch_size=6, seq_len=5)
    comm = Twins()
    trainer = Trainer(model, Adam(model.named_parameters(), 0.01), task,
                      TrainConfig(max_steps=7, progress=False), comm=comm)
    assert task.train.batch_size == 3                       # rank 0's half of the streams
    trainer.fit()
    assert comm.reduced == [(model.num_parameters() + 2,)] * 7   # gradients, loss, count
    assert trainer.history.tokens_per_s and all(t > 0 for t in trainer.history.tokens_per_s)
    trainer.save(tmp_path / "ck.npz")                       # both ranks' states, joined
    assert load_checkpoint(tmp_path / "ck.npz").arrays["state0"].shape == (2, 6, 8)


def test_without_a_launcher_mpi4py_is_not_imported():
    env = {k: v for k, v in os.environ.items() if k not in distributed.SIZE_VARIABLES}
    env["PYTHONPATH"] = str(ROOT)
    code = ("import sys; from scratchrnn.training import distributed as d; "
            "c = d.world(); print(type(c).__name__, c.size, 'mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=TIMEOUT, check=True).stdout
    assert out.split() == ["SingleProcess", "1", "False"]


def test_the_launchers_variables_give_the_size(monkeypatch):
    for name in distributed.SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.launched_size() == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert distributed.launched_size() == 4
    with pytest.raises(ValueError, match=r"kind: expected one of .*got 'tcp'"):
        distributed.world("tcp")


def test_each_rank_gets_its_own_gpu(monkeypatch):
    from scratchrnn.backend import nccl

    class Rank3(distributed.SingleProcess):
        rank, size, local_rank = 3, 4, 3

    monkeypatch.setattr(nccl, "device_count", lambda: 2)
    used = []
    monkeypatch.setattr(nccl, "use_device", used.append)
    assert distributed.device_for("cuda", Rank3()) == "cuda:1" and used == [1]
    assert distributed.device_for("cuda:0", Rank3()) == "cuda:0"   # asked for: kept
    assert distributed.device_for("cpu", Rank3()) == "cpu"
    assert distributed.device_for("cuda", distributed.SingleProcess()) == "cuda"
    monkeypatch.setattr(nccl, "device_count", lambda: 0)
    assert distributed.device_for("cuda", Rank3()) == "cuda"     # no GPU: the error says so


def test_processes_sharing_a_machine_share_its_cores(monkeypatch):
    class Local(distributed.SingleProcess):
        size, local_size = 8, 4

    for name in distributed.USER_THREADS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert distributed.threads_per_rank(distributed.SingleProcess()) is None
    assert distributed.threads_per_rank(Local()) == 4
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    Local.local_size = 3
    assert distributed.threads_per_rank(Local()) == 1
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")            # the user's choice stands
    assert distributed.threads_per_rank(Local()) is None


# ---- under mpiexec ---------------------------------------------------------- #
def _mpiexec() -> str | None:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


needs_mpi = pytest.mark.skipif(
    _mpiexec() is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs mpiexec and mpi4py (pip install -e '.[mpi]')")


def run(args: list[str], n: int | None, cwd: Path) -> subprocess.CompletedProcess:
    """``mpiexec -n n python args`` (or plain python for n=None) with a timeout; on
    timeout the whole process group is killed and the test fails."""
    env = {k: v for k, v in os.environ.items() if k not in distributed.SIZE_VARIABLES}
    env.update(PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("SCRATCHRNN_DEBUG", None)
    cmd = [sys.executable, *args]
    if n is not None:
        cmd = [_mpiexec(), "-n", str(n), *cmd]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not end within {TIMEOUT} s (a hang)")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def train(tmp_path: Path, out: str, n: int | None, *extra: str,
          batch: str = "8") -> subprocess.CompletedProcess:
    text = tmp_path / "text.txt"
    if not text.exists():
        text.write_text((ROOT / "README.md").read_text(encoding="utf-8")[:20000],
                        encoding="utf-8")
    args = ["-m", "scratchrnn", "train", "--text", str(text), "--dtype", "float64",
            "--batch-size", batch, "--seq-len", "16", "--hidden", "16", "--eval-every", "10",
            "--sample-length", "0", "--out", str(tmp_path / out), *extra]
    result = run(args, n, tmp_path)
    assert result.returncode == 0, result.stderr
    return result


def weights(path: Path) -> dict[str, np.ndarray]:
    return load_checkpoint(path / "checkpoint.npz").weights


@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("batch", ["8", "7"])     # 7: shares of 3 and 4 streams
def test_lm_on_two_processes_ends_with_the_weights_of_one(tmp_path, batch):
    one = train(tmp_path, "one", None, "--steps", "20", batch=batch)
    two = train(tmp_path, "two", 2, "--steps", "20", batch=batch)
    first = two.stdout.splitlines()[0]
    assert "on 2 processes (cpu each, MPI)" in first and "on cpu" in one.stdout.splitlines()[0]
    assert two.stdout.count("training an LSTM") == 1         # rank 0 alone prints
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max(float(np.max(np.abs(a[k] - b[k]))) for k in a) < 1e-9
    ca, cb = (load_checkpoint(tmp_path / d / "checkpoint.npz") for d in ("one", "two"))
    # the carried state of all streams, joined from both ranks
    assert cb.arrays["state0"].shape == ca.arrays["state0"].shape == (1, int(batch), 16)
    assert np.allclose(ca.arrays["state1"], cb.arrays["state1"], rtol=0, atol=1e-9)
    ha, hb = ca.info["history"], cb.info["history"]
    assert np.allclose(ha["loss"], hb["loss"], rtol=1e-12)
    assert np.allclose(ha["grad_norm"], hb["grad_norm"], rtol=1e-9)
    assert [v["val_loss"] for v in ha["val"]] == pytest.approx(
        [v["val_loss"] for v in hb["val"]], rel=1e-12)


@needs_mpi
@pytest.mark.slow
def test_a_two_process_checkpoint_resumes_exactly_on_two(tmp_path):
    """Dropout makes each rank's random stream matter: rank 1's must be restored too."""
    model = ["--layers", "2", "--dropout", "0.3"]
    train(tmp_path, "straight", 2, "--steps", "20", *model)
    train(tmp_path, "resumed", 2, "--steps", "10", *model)
    ck = load_checkpoint(tmp_path / "resumed" / "checkpoint.npz")
    assert ck.step == 10 and ck.info["ranks"]["size"] == 2
    assert ck.info["ranks"]["rng"][0] != ck.info["ranks"]["rng"][1]   # own dropout streams
    resumed = train(tmp_path, "resumed", 2, "--steps", "20", "--resume",
                    str(tmp_path / "resumed"))
    assert "resumed from" in resumed.stdout
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert all(np.array_equal(a[k], b[k]) for k in a)


@needs_mpi
@pytest.mark.slow
def test_classifier_on_two_processes_ends_with_the_weights_of_one(tmp_path):
    for n, folder in ((None, "one"), (2, "two")):
        (tmp_path / folder).mkdir()
        result = run([str(WORKER), "classify", str(tmp_path / folder)], n, tmp_path)
        assert result.returncode == 0, result.stderr
    one = np.load(tmp_path / "one" / "rank0.npz")
    r0, r1 = np.load(tmp_path / "two" / "rank0.npz"), np.load(tmp_path / "two" / "rank1.npz")
    assert all(np.array_equal(r0[k], r1[k]) for k in one.files)     # ranks stay in step
    assert max(float(np.max(np.abs(one[k] - r0[k]))) for k in one.files) < 1e-9
    h1, h2 = (json.loads((tmp_path / d / "rank0.json").read_text()) for d in ("one", "two"))
    assert (h1["size"], h2["size"], h1["step"], h2["step"]) == (1, 2, 15, 15)
    assert np.allclose(h1["loss"], h2["loss"], rtol=1e-9)
    assert np.allclose(h1["grad_norm"], h2["grad_norm"], rtol=1e-9)   # clipping at 0.5 bites
    assert max(h1["grad_norm"]) > 0.5
    for v1, v2 in zip(h1["val"], h2["val"], strict=True):
        assert v1["val_accuracy"] == v2["val_accuracy"]
        assert v1["val_loss"] == pytest.approx(v2["val_loss"], rel=1e-9)


@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("mode, line", [
    ("cli-fault", "scratchrnn train: error: rank 1 of 2: bad data on this rank (test)"),
    ("cli-nan", "scratchrnn train: training diverged: training stopped at step 5: the loss "
                "is nan; the weights are those after step 4 and the last good checkpoint is "
                "kept at"),
])
def test_an_error_on_one_rank_ends_every_rank_and_keeps_the_checkpoint(tmp_path, mode, line):
    text = tmp_path / "text.txt"
    text.write_text((ROOT / "README.md").read_text(encoding="utf-8")[:20000], encoding="utf-8")
    result = run([str(WORKER), mode, "train", "--text", str(text), "--batch-size", "8",
                  "--seq-len", "16", "--hidden", "16", "--steps", "20", "--eval-every", "2",
                  "--quiet", "--out", str(tmp_path / "run")], 2, tmp_path)
    assert result.returncode != 0
    assert result.stderr.count(line) == 1, result.stderr   # one line, from one rank
    assert "Traceback" not in result.stderr
    ck = load_checkpoint(tmp_path / "run" / "checkpoint.npz")     # the last good one
    assert ck.step == 4


@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("how", ["uncaught", "killed"])
def test_an_uncaught_exception_or_a_killed_rank_ends_every_rank(tmp_path, how):
    result = run([str(WORKER), how], 2, tmp_path)
    assert result.returncode != 0, result.stdout + result.stderr
    if how == "uncaught":
        assert "RuntimeError: rank 1 fails on purpose (test)" in result.stderr, \
            f"rc {result.returncode}\n{result.stdout}\n{result.stderr}"
