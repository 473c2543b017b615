"""The trainer under Ctrl-C and divergence: exact resume, finite checkpoints, no warnings."""

from __future__ import annotations

import os
import signal
import warnings

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.models import LanguageModel
from scratchrnn.training import SGD, Adam, make_schedule
from scratchrnn.training.checkpoint import load_checkpoint
from scratchrnn.training.tasks import LanguageModelTask
from scratchrnn.training.trainer import TrainConfig, Trainer, TrainingDiverged

TEXT = [int(c) % 11 for c in "31415926535897932384626433832795028841971693993751" * 4]


def lm_trainer(seed: int, **config) -> Trainer:
    """LSTM with dropout (draws from a generator every step), 6 windows per epoch."""
    gen = B.Generator(seed)
    model = LanguageModel(11, 8, 2, "lstm", 4, dropout=0.3, generator=gen)
    opt = Adam(model.named_parameters(), lr=0.01)
    task = LanguageModelTask(TEXT[:150], TEXT[150:], batch_size=4, seq_len=7)
    cfg = TrainConfig(**{"progress": False, "clip": 1.0, "eval_every": 5, **config})
    sched = make_schedule("cosine", 0.01, 16, warmup_steps=3)
    return Trainer(model, opt, task, cfg, sched, generators={"model": gen})


def weights(trainer: Trainer) -> dict[str, np.ndarray]:
    return {n: B.to_numpy(p.data).copy() for n, p in trainer.model.named_parameters()}


def assert_same_run(a: Trainer, b: Trainer) -> None:
    wa, wb = weights(a), weights(b)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert a.history.loss == b.history.loss


def resume(path, **config) -> Trainer:
    again = lm_trainer(99, **config)        # other init and dropout stream: all from the file
    again.load(path)
    again.fit()
    return again


@pytest.fixture
def full():
    tr = lm_trainer(0, max_steps=16)
    tr.fit()
    return tr


def test_interrupt_inside_a_step_resumes_bit_identically(tmp_path, full):
    """Ctrl-C after forward+backward of step 8: the new TBPTT state and the dropout
    draws of that step must not count."""
    class Interrupted(LanguageModelTask):
        def train_step(self, model, batch):
            result = super().train_step(model, batch)
            if self.calls == 7:
                raise KeyboardInterrupt
            self.calls += 1
            return result

    tr = lm_trainer(0, max_steps=16)
    tr.task.__class__ = Interrupted
    tr.task.calls = 0
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    assert tr.step == 7 and (tr.epoch, tr.position) == (1, 1)
    resumed = resume(tr.save(tmp_path / "ck.npz"), max_steps=16)
    assert_same_run(full, resumed)


def test_interrupt_during_the_update_is_held_until_the_step_is_done(tmp_path, full):
    """A real SIGINT half-way through the optimizer step: the step completes, then stops."""
    tr = lm_trainer(0, max_steps=16)
    real_step = tr.optimizer.step

    def step():
        if tr.step == 6:
            os.kill(os.getpid(), signal.SIGINT)
        real_step()

    tr.optimizer.step = step
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    assert tr.step == 7
    resumed = resume(tr.save(tmp_path / "ck.npz"), max_steps=16)
    assert_same_run(full, resumed)


def test_interrupt_during_validation_drops_that_entry(tmp_path, full):
    class Interrupted(LanguageModelTask):
        def evaluate(self, model):
            if self.fire:
                self.fire = False
                raise KeyboardInterrupt
            return super().evaluate(model)

    tr = lm_trainer(0, max_steps=16)
    tr.task.__class__ = Interrupted
    tr.task.fire = True
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    assert tr.step == 5 and tr.history.val == []
    path = tr.save(tmp_path / "ck.npz")
    assert load_checkpoint(path).info["history"]["val"] == []
    resumed = resume(path, max_steps=16)
    assert_same_run(full, resumed)
    assert [v["step"] for v in resumed.history.val] == [10, 15, 16]


def test_checkpoint_never_holds_nonfinite_weights(tmp_path):
    """An update that overflows (lr 1e38, no clipping) stops the run at once; the
    checkpoint on disk stays the last good one and save() refuses the bad state."""
    tr = lm_trainer(0, max_steps=20, save_every=2, checkpoint_path=str(tmp_path / "ck.npz"),
                    clip=None)
    tr.schedule = None

    def blow_up(t):
        if t.step == 3:
            t.optimizer.lr = 1e39

    tr.on_step = blow_up
    with pytest.raises(TrainingDiverged, match=r"step 4: its update made .* non-finite.*"
                                               r"kept at .*ck.npz"):
        tr.fit()
    assert load_checkpoint(tmp_path / "ck.npz").step == 2
    before = (tmp_path / "ck.npz").read_bytes()
    with pytest.raises(TrainingDiverged, match="not written.*NaN/Inf"):
        tr.save(tmp_path / "ck.npz")
    assert (tmp_path / "ck.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]


def test_nonfinite_optimizer_state_is_not_saved(tmp_path):
    tr = lm_trainer(0, max_steps=2)
    tr.fit()
    first = next(iter(tr.optimizer.state))
    slots = tr.optimizer.state[first]
    slots["exp_avg_sq"] = np.full_like(slots["exp_avg_sq"], np.inf)
    with pytest.raises(TrainingDiverged, match=f"optim/{first}/exp_avg_sq"):
        tr.save(tmp_path / "ck.npz")
    assert not (tmp_path / "ck.npz").exists()


def test_exploding_loss_stops_like_nan():
    """SGD at lr 1e30 keeps everything finite but the loss explodes."""
    gen = B.Generator(0)
    model = LanguageModel(11, 8, 1, "lstm", None, generator=gen)
    tr = Trainer(model, SGD(model.named_parameters(), lr=1e30),
                 LanguageModelTask(TEXT[:150], TEXT[150:], 4, 7),
                 TrainConfig(max_steps=30, clip=None, progress=False))
    with pytest.raises(TrainingDiverged, match=r"the loss .* exploded \(more than 1000x the "
                                               r"first step's"):
        tr.fit()
    assert tr.step < 30
    ok = lm_trainer(0, max_steps=3, explode_factor=None)
    ok.fit()
    with pytest.raises(ValueError, match="explode_factor"):
        TrainConfig(max_steps=1, explode_factor=0.5)


def test_divergence_raises_no_numpy_warnings():
    gen = B.Generator(0)
    model = LanguageModel(11, 8, 1, "lstm", None, generator=gen)
    tr = Trainer(model, Adam(model.named_parameters(), lr=1e38),
                 LanguageModelTask(TEXT[:150], TEXT[150:], 4, 7),
                 TrainConfig(max_steps=30, clip=None, eval_every=1, progress=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TrainingDiverged):
            tr.fit()


def test_save_every_and_its_deprecated_name(tmp_path):
    seen = []
    tr = lm_trainer(0, max_steps=5, save_every=2, checkpoint_path=str(tmp_path / "ck.npz"))
    tr.on_step = lambda t: seen.append(load_checkpoint(t.last_checkpoint).step
                                       if t.last_checkpoint else None)
    tr.fit()
    assert seen == [None, None, 2, 2, 4]
    with pytest.warns(DeprecationWarning, match="use save_every"):
        cfg = TrainConfig(max_steps=1, checkpoint_every=3)
    assert cfg.save_every == 3 and cfg.checkpoint_every is None


# ---- Trainer.load: all or nothing ------------------------------------------- #
def snapshot(tr: Trainer) -> dict:
    """Everything Trainer.load restores, as plain comparable values."""
    opt = tr.optimizer.state_dict()
    state = tr.task.state if isinstance(tr.task.state, tuple) else (tr.task.state,)
    return {"weights": weights(tr),
            "optim": {n: {k: B.to_numpy(v).copy() for k, v in slots.items()}
                      for n, slots in opt["state"].items()},
            "optim_scalars": (opt["lr"], opt["steps"], dict(opt["hyper"])),
            "rng": {k: repr(g.get_state()) for k, g in tr._rngs().items()},
            "counters": (tr.step, tr.epoch, tr.position, tr.elapsed, tr.tokens_seen,
                         tr.best_val, tr.last_checkpoint),
            "history": tr.history.to_dict(),
            "carried": [None if s is None else B.to_numpy(s).copy() for s in state]}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key in ("weights", "optim"):
            assert a[key].keys() == b[key].keys()
            for n in a[key]:
                x, y = a[key][n], b[key][n]
                same = all(np.array_equal(x[k], y[k]) for k in x) if isinstance(x, dict) \
                    else np.array_equal(x, y)
                assert same, (key, n)
        elif key == "carried":
            assert all((x is None and y is None) or np.array_equal(x, y)
                       for x, y in zip(a[key], b[key]))
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("field, change, text", [
    ("epoch", lambda m: m["info"]["trainer"].update(epoch="x"),
     r"info.trainer.epoch: expected an int >= 0, got 'x'"),
    ("position", lambda m: m["info"]["trainer"].update(position=-2),
     r"info.trainer.position: expected an int >= 0, got -2"),
    ("elapsed", lambda m: m["info"]["trainer"].update(elapsed="soon"),
     r"info.trainer.elapsed: expected a finite number >= 0, got 'soon'"),
    ("best_val", lambda m: m["info"]["trainer"].update(best_val=[1]),
     r"info.trainer.best_val: expected a finite number, got \[1\]"),
    ("trainer", lambda m: m["info"].update(trainer=3), "info.trainer: expected a JSON object"),
    ("history", lambda m: m["info"]["history"].update(loss="abc"),
     "info.history.loss: expected a list of numbers, got 'abc'"),
    ("optimizer", lambda m: m["optimizer"].update(type="SGD"),
     "does not fit this model/optimizer .*expected type Adam, got 'SGD'"),
])
def test_a_refused_load_changes_nothing(tmp_path, field, change, text):
    """Every field is checked before the first one is restored: weights, optimizer
    state, random states, counters, history and carried state stay as they were."""
    from scratchrnn.backend import serialize

    source = lm_trainer(0, max_steps=6)
    source.fit()
    good = source.save(tmp_path / "ck.npz")
    _, meta = serialize.read_npz_index(good)
    change(meta)
    bad = serialize.save_npz_atomic(tmp_path / "bad.npz", serialize.read_npz_arrays(good), meta)

    target = lm_trainer(5, max_steps=3)
    target.fit()                                  # its own non-trivial state
    before = snapshot(target)
    with pytest.raises(ValueError, match=r"checkpoint .*bad.npz: " + text):
        target.load(bad)
    assert_same(before, snapshot(target))
    target.load(good)                             # and the good file still loads
    assert target.step == 6
