"""A run's output folder: metrics.csv streamed, best.npz, history.json and loss.png
refreshed at each evaluation, atomic writes, one file mode, stale temp files, progress."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchrnn import backend as B
from scratchrnn.models import LanguageModel
from scratchrnn.training import Adam, plots
from scratchrnn.training import files as F
from scratchrnn.training.checkpoint import load_checkpoint
from scratchrnn.training.run_files import COLUMNS
from scratchrnn.training.tasks import LanguageModelTask
from scratchrnn.training.trainer import TrainConfig, Trainer

TEXT = [int(c) % 11 for c in "31415926535897932384626433832795028841971693993751" * 4]


def trainer(out=None, **config) -> Trainer:
    gen = B.Generator(0)
    model = LanguageModel(11, 8, 1, "gru", 4, dropout=0.2, generator=gen)
    task = LanguageModelTask(TEXT[:150], TEXT[150:], batch_size=4, seq_len=7)   # 6 windows
    cfg = TrainConfig(**{"progress": False, "eval_every": 2,
                         "out_dir": None if out is None else str(out), **config})
    return Trainer(model, Adam(model.named_parameters(), lr=0.05), task, cfg,
                   generators={"model": gen})


def rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_metrics_csv_is_streamed_row_by_row(tmp_path):
    seen = []
    tr = trainer(tmp_path, max_steps=5)
    tr.on_step = lambda t: seen.append([r["step"] for r in rows(tmp_path / "metrics.csv")])
    tr.fit()
    assert seen == [[], ["1"], ["1", "2"], ["1", "2", "3"], ["1", "2", "3", "4"]]
    table = rows(tmp_path / "metrics.csv")
    assert tuple(table[0]) == COLUMNS
    assert [int(r["step"]) for r in table] == [1, 2, 3, 4, 5]
    assert [float(r["train_loss"]) for r in table] == tr.history.loss
    assert [r["step"] for r in table if r["val_loss"]] == ["2", "4", "5"]
    assert all(float(r["tokens_per_s"]) > 0 and float(r["grad_norm"]) > 0 for r in table)
    elapsed = [float(r["elapsed_s"]) for r in table]
    assert elapsed == sorted(elapsed)


def test_resume_drops_rows_written_after_the_checkpoint(tmp_path):
    tr = trainer(tmp_path, max_steps=6, save_every=3)
    tr.fit()                                 # checkpoint at 3 and 6, rows 1..6
    again = trainer(tmp_path, max_steps=6)
    again.load(tmp_path / "checkpoint.npz")
    again.step = 3                           # as if killed after step 5 with the step-3 file
    again.config.max_steps = 4
    again._files_open()
    again._metrics.close()
    assert [r["step"] for r in rows(tmp_path / "metrics.csv")] == ["1", "2", "3"]


def test_history_plot_and_best_refreshed_at_each_evaluation(tmp_path, monkeypatch):
    labels = []
    real = plots.save_figure

    def spy(fig, path):
        labels.append(fig.axes[0].get_ylabel())
        return real(fig, path)

    monkeypatch.setattr(plots, "save_figure", spy)
    seen = []

    def on_eval(t, metrics):
        h = json.loads((tmp_path / "history.json").read_text())
        best = load_checkpoint(tmp_path / "best.npz")
        seen.append((t.step, [v["step"] for v in h["val"]], best.step,
                     (tmp_path / "loss.png").read_bytes()[:4]))

    tr = trainer(tmp_path, max_steps=6, loss_unit="nats/char")
    tr.on_eval = on_eval
    tr.fit()
    assert [s[:2] for s in seen] == [(2, [2]), (4, [2, 4]), (6, [2, 4, 6])]
    assert all(png == b"\x89PNG" for *_, png in seen)
    assert labels == ["loss (nats/char)"] * 3
    vals = {v["step"]: v["val_loss"] for v in tr.history.val}
    best_step = min(vals, key=vals.get)
    best = load_checkpoint(tmp_path / "best.npz")
    assert best.step == best_step and best.optimizer is None
    assert best.info["best"]["val_loss"] == vals[best_step] == tr.best_val


def test_best_checkpoint_holds_the_best_weights_not_the_last(tmp_path):
    """Make validation get worse after step 2: best.npz keeps the step-2 weights."""
    tr = trainer(tmp_path, max_steps=6)
    kept = {}

    def on_eval(t, metrics):
        if t.step == 2:
            kept.update({n: B.to_numpy(p.data).copy() for n, p in t.model.named_parameters()})
            t.optimizer.lr = 5.0         # ruin the model from here on

    tr.on_eval = on_eval
    tr.fit()
    vals = [v["val_loss"] for v in tr.history.val]
    assert vals[0] == min(vals)
    best = load_checkpoint(tmp_path / "best.npz")
    assert best.step == 2
    assert all(np.array_equal(best.weights[n], kept[n]) for n in kept)


def test_throughput_counts_the_characters_processed(tmp_path):
    tr = trainer(max_steps=7)               # 6 windows: 5 of 7 steps and one of 2 (37 / 4)
    tr.fit()
    windows = [tr.task.train.window(i).y.shape[0] for i in range(6)]
    assert tr.tokens_seen == 4 * (sum(windows) + windows[0])
    assert windows[-1] < 7


@pytest.mark.parametrize("budget,total", [({"max_steps": 5}, "/5"), ({"epochs": 2}, "/12"),
                                          ({"max_seconds": 1.0}, "/1 s")])
def test_progress_bar_has_a_total_and_eta_in_every_budget_mode(budget, total, capsys):
    tr = trainer(**budget, progress=True)
    tr.fit()
    err = capsys.readouterr().err
    assert total in err and "<" in err and "?" not in err.split("<")[-1][:6]


@pytest.mark.parametrize("budget", [{"max_steps": 6}, {"epochs": 1}, {"max_seconds": 0.5}])
def test_progress_lines_when_stdout_is_not_a_terminal(budget, capsys):
    tr = trainer(**budget, progress=None, log_every=2)
    tr.fit()
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step ")]
    steps = [ln.split()[1] for ln in lines]
    if "max_seconds" in budget:
        assert steps[:3] == ["2", "4", "6"]
    else:
        assert steps == ["2/6", "4/6", "6/6"]
    assert all("loss " in ln and "tok/s" in ln and "ETA " in ln for ln in lines)
    quiet = trainer(max_steps=4, progress=False, log_every=1)
    quiet.fit()
    assert capsys.readouterr().out == ""


def test_atomic_writes_replace_a_symlink_instead_of_following_it(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    out = tmp_path / "run"
    out.mkdir()
    for name in ("history.json", "loss.png", "metrics.csv", "best.npz", "checkpoint.npz"):
        (out / name).symlink_to(outside)
    tr = trainer(out, max_steps=2, save_every=2)
    tr.fit()
    assert outside.read_text() == "keep me"
    for name in ("history.json", "loss.png", "metrics.csv", "best.npz", "checkpoint.npz"):
        assert (out / name).is_file() and not (out / name).is_symlink(), name


def test_one_file_mode_for_every_output(tmp_path):
    old = os.umask(0o027)
    try:
        tr = trainer(tmp_path, max_steps=2, save_every=2)
        tr.fit()
        F.atomic_write_text(tmp_path / "sample.txt", "x")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert set(modes) == {"checkpoint.npz", "best.npz", "metrics.csv", "history.json",
                          "loss.png", "sample.txt"}
    assert set(modes.values()) == {0o640}, modes


def test_every_writer_of_the_library_uses_the_same_mode(tmp_path):
    from scratchrnn.backend import serialize

    old = os.umask(0o027)
    try:
        serialize.save_npz_atomic(tmp_path / "a.npz", {"w": np.zeros(2)}, {})
        serialize.save_safetensors_atomic(tmp_path / "b.safetensors", {"w": np.zeros(2)})
        F.atomic_write_text(tmp_path / "c.txt", "x")
    finally:
        os.umask(old)
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o640}


def test_stale_temp_files_of_dead_writers_are_cleaned(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    stale = tmp_path / f"checkpoint.npz.{pid}.abc_12.tmp"
    live = tmp_path / f"checkpoint.npz.{os.getpid()}.xyz.tmp"     # a write in progress
    other = tmp_path / "notes.tmp"
    for p in (stale, live, other):
        p.write_text("x")
    assert F.clean_stale_temps(tmp_path, ["checkpoint.npz"]) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def test_writable_folder_check(tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="--out: .*afile exists and is not a folder"):
        F.check_writable_folder(afile)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(F.tempfile, "mkstemp", refuse)
    with pytest.raises(ValueError, match=r"--out: cannot write in .*ro \(Permission denied\)"):
        F.check_writable_folder(tmp_path / "ro")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ValueError, match="cannot write in"):
            F.check_writable_folder(ro)
    finally:
        ro.chmod(0o755)


def test_a_missing_folder_is_checked_without_being_created(tmp_path):
    out = tmp_path / "a" / "b"
    assert F.check_writable_folder(out, create=False) == out
    assert not (tmp_path / "a").exists()                  # created only when a run starts
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="--out: .*afile exists and is not a folder"):
        F.check_writable_folder(afile / "sub", create=False)


def test_language_model_validation_reports_next_token_accuracy(tmp_path):
    tr = trainer(tmp_path, max_steps=4)
    tr.fit()
    validated = [r for r in rows(tmp_path / "metrics.csv") if r["val_loss"]]
    assert [r["step"] for r in validated] == ["2", "4"]
    assert all(0.0 <= float(r["val_accuracy"]) <= 1.0 for r in validated)
    # the share of validation characters that are the logits' argmax, state carried
    task, model = tr.task, tr.model
    model.eval()
    hits = count = 0
    state = None
    for i in range(len(task.val)):
        w = task.val.window(i)
        logits, state = model(w.x, state)
        hits += int((np.argmax(B.to_numpy(logits), axis=-1) == B.to_numpy(w.y)).sum())
        count += w.y.size
    assert tr.history.val[-1]["val_accuracy"] == pytest.approx(hits / count, abs=0)
    assert float(validated[-1]["val_accuracy"]) == hits / count


def test_evaluations_do_not_pile_up_figures(tmp_path):
    """Each evaluation redraws loss.png on one figure: no figure per evaluation is left
    for the cyclic garbage collector (a run's memory grew with its evaluations)."""
    import gc

    from matplotlib.figure import Figure

    from scratchrnn.training.history import History

    h = History()
    h.step, h.loss = list(range(1, 31)), [2.0 - 0.01 * i for i in range(30)]
    plots.plot_history(h, tmp_path / "loss.png")
    gc.collect()
    gc.disable()                       # count what only the cyclic collector would free
    try:
        for k in range(6):
            h.val.append({"step": k + 1, "val_loss": 1.5})
            plots.plot_history(h, tmp_path / "loss.png", "t", "nats/char")
        # type(o), not isinstance: a dead weak proxy among the objects raises on isinstance
        alive = sum(issubclass(type(o), Figure) for o in gc.get_objects())
    finally:
        gc.enable()
    assert alive <= 1
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
