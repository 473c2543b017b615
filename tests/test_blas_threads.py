"""BLAS thread policy (scratchrnn.backend.blas_threads): the load arithmetic, the policy's
decisions on a scripted load, and setting the count without threadpoolctl. No timing."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.backend import blas_threads as bt

STAT = """cpu  300 0 30 500 5 0 2 10 0 0
cpu0 100 0 10 300 5 0 1 4 0 0
cpu1 200 0 20 200 0 0 1 6 7 0
intr 12345 0 0
ctxt 999
"""


def test_busy_seconds_sums_busy_fields_of_our_cpus():
    # user + nice + system + irq + softirq + steal, not idle or iowait; the "cpu" total is skipped
    assert bt.busy_seconds(STAT, {0}, 100) == pytest.approx((100 + 10 + 1 + 4) / 100)
    assert bt.busy_seconds(STAT, {1}, 100) == pytest.approx((200 + 20 + 1 + 6) / 100)
    assert bt.busy_seconds(STAT, {0, 1}, 100) == pytest.approx(3.42)
    assert bt.busy_seconds(STAT, {5}, 100) == 0.0
    assert bt.busy_seconds("cpu0 10 0 5 99\n", {0}, 10) == pytest.approx(1.5)   # old kernels


def sample(wall: float, busy: float, own: float) -> bt.CpuSample:
    return bt.CpuSample(wall, busy, own)


@pytest.mark.parametrize("busy, own, expected", [
    (2.0, 2.0, 0.0),    # alone with two threads (spinning included): nobody else
    (2.0, 1.0, 1.0),    # one core's worth taken by another process
    (1.0, 1.0, 0.0),    # alone with one thread, the other core idle
    (0.5, 0.9, 0.0),    # tick rounding: never negative
])
def test_others_busy(busy, own, expected):
    assert bt.others_busy(sample(10.0, 5.0, 3.0),
                          sample(11.0, 5.0 + busy, 3.0 + own)) == pytest.approx(expected)
    assert bt.others_busy(sample(1.0, 0, 0), sample(1.0, 5, 0)) == 0.0   # no time passed


@pytest.mark.parametrize("others, cores, most, expected", [
    (0.0, 2, 2, 2), (0.4, 2, 2, 2), (0.6, 2, 2, 1), (1.0, 2, 2, 1), (2.0, 2, 2, 1),
    (0.0, 8, 8, 8), (3.0, 8, 8, 5), (0.0, 8, 4, 4), (7.9, 8, 8, 1),
])
def test_threads_for(others, cores, most, expected):
    assert bt.threads_for(others, cores, most) == expected


@pytest.mark.parametrize("cpu_max, expected", [
    (None, 4), ("max 100000\n", 4), ("150000 100000\n", 2), ("50000 100000\n", 1),
    ("garbage\n", 4),
])
def test_usable_cores(tmp_path, cpu_max, expected):
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    assert bt.usable_cores({0, 1, 2, 3}, str(path)) == expected


def test_read_cpu_sample(tmp_path):
    path = tmp_path / "stat"
    path.write_text(STAT)
    s = bt.read_cpu_sample({0}, str(path))
    assert s is not None and s.busy == pytest.approx(115 / bt.os.sysconf("SC_CLK_TCK"))
    assert bt.read_cpu_sample({0}, str(tmp_path / "missing")) is None


@pytest.mark.parametrize("spec, env, expected", [
    (None, {}, "auto"),
    (None, {"SCRATCHRNN_THREADS": "3"}, 3),
    (None, {"SCRATCHRNN_THREADS": " Off "}, "off"),
    (None, {"OPENBLAS_NUM_THREADS": "1"}, "off"),            # the user's variable wins
    (None, {"OMP_NUM_THREADS": "2"}, "off"),
    (None, {"OMP_NUM_THREADS": "2", "SCRATCHRNN_THREADS": "auto"}, "auto"),
    ("auto", {"OPENBLAS_NUM_THREADS": "1"}, "auto"),         # an explicit choice wins
    ("2", {}, 2), (1, {}, 1),
])
def test_parse_policy(spec, env, expected):
    assert bt.parse_policy(spec, env) == expected


@pytest.mark.parametrize("spec, env, where", [
    ("0", {}, "threads"), ("many", {}, "threads"), (-1, {}, "threads"), (True, {}, "threads"),
    (None, {"SCRATCHRNN_THREADS": "x"}, "SCRATCHRNN_THREADS"),
])
def test_parse_policy_errors_name_the_setting(spec, env, where):
    with pytest.raises(ValueError, match=f"^{where}: expected 'auto', 'off' or a positive"):
        bt.parse_policy(spec, env)


class FakeMachine:
    """A scripted load: each sample adds one second of wall time."""

    def __init__(self, others_per_s: list[float]) -> None:
        self.others = list(others_per_s)
        self.threads = 2
        self.sets: list[int] = []
        self.t = self.busy = self.own = 0.0

    def sample(self) -> bt.CpuSample:
        if self.t > 0:
            other = self.others.pop(0)
            ours = min(self.threads, 2 - other) if other < 2 else 1.0
            self.busy += other + ours
            self.own += ours
        self.t += 1.0
        return bt.CpuSample(self.t, self.busy, self.own)

    def set(self, n: int) -> None:
        self.sets.append(n)
        self.threads = n


def test_auto_follows_the_load():
    m = FakeMachine([0.0, 1.0, 1.0, 0.9, 0.0, 0.3])
    policy = bt.ThreadPolicy("auto", interval=0.0, sample=m.sample, set_threads=m.set,
                             get_threads=lambda: 2, cores=2)
    got = [policy.tick() for _ in range(7)]
    # a baseline, then: alone -> 2; a core taken -> 1, stays (0.9 of a core is still taken);
    # free again -> 2; a core 30 % taken counts as free
    assert got == [None, 2, 1, None, None, 2, None]
    assert m.sets == [2, 1, 2]
    assert policy.threads == 2 and policy.most == 2


def test_auto_samples_at_most_once_per_interval():
    calls = []
    policy = bt.ThreadPolicy("auto", interval=3600.0,
                             sample=lambda: calls.append(1) or bt.CpuSample(len(calls), 0, 0),
                             set_threads=lambda n: None, get_threads=lambda: 2, cores=2)
    for _ in range(100):
        policy.tick()
    assert len(calls) == 1


def test_auto_without_proc_stat_leaves_blas_alone():
    sets: list[int] = []
    policy = bt.ThreadPolicy("auto", interval=0.0, sample=lambda: None, set_threads=sets.append,
                             get_threads=lambda: 2, cores=2)
    assert [policy.tick() for _ in range(3)] == [None] * 3
    assert policy.policy == "off" and sets == []


def test_auto_gives_up_on_a_blas_it_cannot_steer():
    def cannot(n: int) -> None:
        raise RuntimeError("threads: cannot set")

    m = FakeMachine([1.0, 1.0])
    policy = bt.ThreadPolicy("auto", interval=0.0, sample=m.sample, set_threads=cannot,
                             get_threads=lambda: None, cores=2)
    assert [policy.tick() for _ in range(3)] == [None] * 3      # training goes on
    assert policy.policy == "off"


@pytest.mark.parametrize("policy, sets", [(3, [3]), ("off", [])])
def test_fixed_and_off_set_once_and_never_adapt(policy, sets):
    got: list[int] = []
    p = bt.ThreadPolicy(policy, interval=0.0, sample=lambda: pytest.fail("sampled"),
                        set_threads=got.append, get_threads=lambda: 2, cores=2)
    for _ in range(3):
        assert p.tick() is None
    assert got == sets


@pytest.fixture
def own_threads():
    """BLAS at its own thread count before (an earlier command may have left the
    "auto" policy's count) and after a test that sets one."""
    B.set_thread_policy("off")
    yield
    B.set_thread_policy("off")


@pytest.fixture
def no_threadpoolctl(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)    # import threadpoolctl fails


def test_set_blas_threads_without_threadpoolctl(own_threads, no_threadpoolctl):
    if bt._openblas_api() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    start = B.get_blas_threads()
    B.set_blas_threads(1)
    assert B.get_blas_threads() == 1
    a = np.ones((300, 300), np.float32)
    assert float((a @ a)[0, 0]) == 300.0                      # still computes
    B.set_thread_policy("off")
    assert B.get_blas_threads() == start


def test_set_thread_policy_fixed(own_threads, no_threadpoolctl):
    if bt._openblas_api() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    policy = B.set_thread_policy(1)
    assert policy.policy == 1 and B.get_blas_threads() == 1
    assert B.thread_policy() is policy


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_set_blas_threads_rejects(bad):
    with pytest.raises(ValueError, match="threads: expected a positive integer"):
        B.set_blas_threads(bad)


def test_trainer_step_ticks_the_policy(monkeypatch):
    from scratchrnn.data import Vocab, split_stream
    from scratchrnn.models import LanguageModel
    from scratchrnn.training import Adam
    from scratchrnn.training.tasks import LanguageModelTask
    from scratchrnn.training.trainer import TrainConfig, Trainer

    ticks: list[int] = []
    monkeypatch.setattr(B, "adapt_blas_threads", lambda: ticks.append(1))
    text = "hello world, " * 20
    vocab = Vocab.build_chars(text)
    train, val = split_stream(vocab.encode(text), 0.2)
    model = LanguageModel(len(vocab), 8)
    Trainer(model, Adam(model.named_parameters()), LanguageModelTask(train, val, 2, 8),
            TrainConfig(max_steps=5, progress=False)).fit()
    assert len(ticks) == 5


def test_cli_threads_on_the_plain_install(tmp_path, own_threads, no_threadpoolctl):
    from scratchrnn import cli

    if bt._openblas_api() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 30, encoding="utf-8")
    rc = cli.main(["train", "--text", str(text), "--steps", "2", "--threads", "1", "--quiet",
                   "--hidden", "8", "--seq-len", "8", "--batch-size", "4",
                   "--out", str(tmp_path / "run")])
    assert rc == 0 and B.get_blas_threads() == 1 and B.thread_policy().policy == 1


@pytest.mark.parametrize("value", ["0", "many"])
def test_cli_threads_bad_value(value, capsys):
    from scratchrnn import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--threads", value])
    assert exit_info.value.code == 2
    assert (f"argument --threads: expected auto, off or a positive integer, got {value!r}"
            in capsys.readouterr().err)
