"""The trainer: bit-identical resume, divergence stops, budgets, TBPTT resets, all tasks."""

from __future__ import annotations

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.models import LanguageModel, SequenceClassifier, SequenceRegressor
from scratchrnn.training import SGD, Adam, make_schedule
from scratchrnn.training.tasks import ClassificationTask, LanguageModelTask, RegressionTask
from scratchrnn.training.trainer import TrainConfig, Trainer, TrainingDiverged

TEXT = [int(c) % 11 for c in "31415926535897932384626433832795028841971693993751" * 4]


def lm_trainer(seed: int, tmp_path=None, **config):
    gen = B.Generator(seed)
    model = LanguageModel(11, 8, 2, "lstm", 4, dropout=0.3, generator=gen)
    opt = Adam(model.named_parameters(), lr=0.01)
    task = LanguageModelTask(TEXT[:150], TEXT[150:], batch_size=4, seq_len=7)   # 6 windows
    cfg = TrainConfig(progress=False, clip=1.0, eval_every=5,
                      checkpoint_path=None if tmp_path is None else str(tmp_path / "ck.npz"),
                      **config)
    sched = make_schedule("cosine", 0.01, 16, warmup_steps=3)
    return Trainer(model, opt, task, cfg, sched, generators={"model": gen})


def weights(trainer):
    return {n: B.to_numpy(p.data).copy() for n, p in trainer.model.named_parameters()}


def test_resume_is_bit_identical(tmp_path):
    full = lm_trainer(0, max_steps=16)
    full.fit()
    part = lm_trainer(0, tmp_path, max_steps=9)           # stops mid-epoch 1, state carried
    part.fit()
    assert part.task.state is not None
    path = part.save(tmp_path / "ck.npz")
    resumed = lm_trainer(123, max_steps=16)               # other init, other dropout stream
    resumed.load(path)
    assert resumed.step == 9 and (resumed.epoch, resumed.position) == (1, 3)
    resumed.fit()
    a, b = weights(full), weights(resumed)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert resumed.history.loss == full.history.loss
    # the interrupted run also validated when it stopped (step 9); no RNG draw is involved
    assert [v["step"] for v in resumed.history.val] == [5, 9, 10, 15, 16]


def test_state_reset_each_epoch_and_carried_within():
    seen = []

    class Recording(LanguageModelTask):
        def train_step(self, model, batch):
            seen.append((batch, self.state is None))
            return super().train_step(model, batch)

    tr = lm_trainer(0, epochs=2)
    tr.task.__class__ = Recording
    tr.fit()
    assert tr.step == 12 and tr.epoch == 2
    assert seen == [(i, i == 0) for i in range(6)] * 2


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path):
    tr = lm_trainer(0, tmp_path, max_steps=20)
    tr.config.save_every = 3

    def poison(t):
        if t.step == 4:
            t.model.head.bias.data = t.model.head.bias.data * float("nan")

    tr.on_step = poison
    with pytest.raises(TrainingDiverged, match=r"step 5: the loss is nan.*kept at .*ck.npz"):
        tr.fit()
    again = lm_trainer(1, max_steps=1)
    again.load(tmp_path / "ck.npz")
    assert again.step == 3
    assert all(np.all(np.isfinite(w)) for w in weights(again).values())


def test_nonfinite_gradient_stops_before_the_update():
    class Exploding(LanguageModelTask):
        def train_step(self, model, batch):
            result = super().train_step(model, batch)
            if self.calls == 2:
                model.head.weight.grad = model.head.weight.grad * float("inf")
            self.calls += 1
            return result

    tr = lm_trainer(0, max_steps=10)
    tr.task.__class__ = Exploding
    tr.task.calls = 0
    tr.on_step = lambda t: setattr(t, "snapshot", weights(t))
    with pytest.raises(TrainingDiverged, match="step 3: the gradient norm is (inf|nan)"):
        tr.fit()
    assert tr.step == 2
    now = weights(tr)
    assert all(np.array_equal(now[k], tr.snapshot[k]) for k in now)


def test_schedule_and_history():
    tr = lm_trainer(0, max_steps=6)
    h = tr.fit()
    assert h.step == [1, 2, 3, 4, 5, 6]
    assert h.lr == pytest.approx([tr.schedule(t) for t in range(6)])
    assert h.lr[0] == pytest.approx(0.01 / 3)
    assert all(g > 0 for g in h.grad_norm) and all(r > 0 for r in h.tokens_per_s)
    assert [v["step"] for v in h.val] == [5, 6] and "val_loss" in h.val[0]


def test_progress_bar_shown_or_quiet(capsys):
    lm_trainer(0, max_steps=2).fit()
    assert capsys.readouterr().err == ""
    tr = lm_trainer(0, max_steps=2)
    tr.config.progress = True
    tr.fit()
    err = capsys.readouterr().err
    assert "loss=" in err and "lr=" in err and "gnorm=" in err and "tok_s=" in err


def test_classification_task_learns_and_reports_accuracy():
    rng = np.random.default_rng(0)
    data = []
    for _ in range(96):       # label: does token 1 occur?
        seq = [int(t) for t in rng.integers(2, 6, size=rng.integers(2, 7))]
        label = int(rng.integers(0, 2))
        if label:
            seq[int(rng.integers(0, len(seq)))] = 1
        data.append((seq, label))
    model = SequenceClassifier(2, vocab_size=6, hidden_size=12, cell="gru", embedding_dim=6,
                               pooling="mean", generator=B.Generator(0))
    task = ClassificationTask(data[:64], data[64:], batch_size=16, seed=0)
    tr = Trainer(model, Adam(model.named_parameters(), lr=0.03), task,
                 TrainConfig(epochs=25, progress=False))
    h = tr.fit()
    assert tr.step == 100
    assert h.val[-1]["val_accuracy"] >= 0.85
    assert np.mean(h.loss[-8:]) < 0.5 * np.mean(h.loss[:4])


def test_regression_task_learns():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(6, 64, 1))
    y = x.sum(axis=0) / 3.0                                      # (N, 1)
    model = SequenceRegressor(1, 1, 16, cell="gru", dtype="float64", generator=B.Generator(0))
    task = RegressionTask(x, y, x[:, :16], y[:16], batch_size=16)
    tr = Trainer(model, Adam(model.named_parameters(), lr=0.02), task,
                 TrainConfig(max_steps=120, progress=False))
    h = tr.fit()
    assert h.val[-1]["val_loss"] < 0.1 * float(np.mean(y[:16] ** 2))


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="expected at least one budget"):
        TrainConfig()
    with pytest.raises(ValueError, match="max_steps: expected a positive int, got 0"):
        TrainConfig(max_steps=0)
    with pytest.raises(ValueError, match="clip"):
        TrainConfig(max_steps=1, clip=-1.0)
    tr = lm_trainer(0, max_steps=1)
    other = LanguageModel(11, 9, 1, "gru", generator=B.Generator(0))
    tr2 = Trainer(other, SGD(other.named_parameters()), tr.task,
                  TrainConfig(max_steps=1, progress=False))
    path = tr.save(tmp_path / "ck.npz")
    with pytest.raises(ValueError, match="ck.npz: does not fit this model/optimizer"):
        tr2.load(path)


def test_runs_on_every_backend(backend_name, tmp_path):
    be = B.get_backend(backend_name)
    gen = B.Generator(0)
    model = LanguageModel(11, 6, 1, "gru", None, dropout=0.2, device=be, generator=gen)
    task = LanguageModelTask(TEXT[:150], TEXT[150:], 4, 7, backend=be)
    tr = Trainer(model, Adam(model.named_parameters(), lr=0.01), task,
                 TrainConfig(max_steps=3, progress=False), generators={"model": gen})
    tr.fit()
    path = tr.save(tmp_path / "ck.npz")
    again = Trainer(model, Adam(model.named_parameters(), lr=0.01), task,
                    TrainConfig(max_steps=4, progress=False), generators={"model": gen})
    again.load(path)
    again.fit()
    assert again.step == 4 and B.backend_of(task.state).name == be.name
    assert all(B.backend_of(v).name == be.name
               for s in again.optimizer.state.values() for v in s.values())


def test_load_refuses_a_carried_state_of_another_batch_size(tmp_path):
    """Library use: a task with another batch size than the saved carried state's is
    refused at load, naming both sizes, before anything is restored."""
    part = lm_trainer(0, tmp_path, max_steps=3)
    part.fit()
    path = part.save(tmp_path / "ck.npz")
    other = lm_trainer(5, max_steps=6)
    other.task = LanguageModelTask(TEXT[:150], TEXT[150:], batch_size=3, seq_len=7)
    before = weights(other)
    with pytest.raises(ValueError, match=r"ck.npz: the carried TBPTT state \(state0, shape "
                                         r"\(2, 4, 8\)\) was saved with batch size 4, the "
                                         r"task's batch size is 3"):
        other.load(path)
    assert other.step == 0 and all(np.array_equal(before[k], v)
                                   for k, v in weights(other).items())
    same = lm_trainer(5, max_steps=6)                       # batch size 4: loads and trains
    same.load(path)
    same.fit()
    assert same.step == 6
