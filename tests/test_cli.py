"""The command line: train, resume, sample, gradcheck, and one-line errors."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from scratchrnn import cli
from scratchrnn.training import files as F
from scratchrnn.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "12", "--seq-len", "8", "--batch-size", "4", "--eval-every", "3",
        "--sample-length", "20"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("the quick brown fox jumps over the lazy dog.\n" * 30, encoding="utf-8")
    return path


def test_train_writes_everything_and_says_where(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    rc = cli.main(["train", "--text", str(text_file), "--steps", "5", "--out", str(out),
                   "--quiet", *TINY])
    assert rc == 0
    stdout = capsys.readouterr().out
    for name in ("checkpoint.npz", "loss.png", "sample.txt", "history.json"):
        assert (out / name).stat().st_size > 0
        assert str(out / name) in stdout or name == "history.json"
    assert "validation loss" in stdout and "tokens/s" in stdout
    ck = load_checkpoint(out / "checkpoint.npz")
    assert ck.step == 5 and ck.model_config["hidden_size"] == 12
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"

    rc = cli.main(["train", "--text", str(text_file), "--steps", "8", "--out", str(out),
                   "--resume", str(out), "--quiet", *TINY])
    assert rc == 0 and load_checkpoint(out / "checkpoint.npz").step == 8

    capsys.readouterr()
    rc = cli.main(["sample", str(out / "checkpoint.npz"), "--prompt", "the ", "--length",
                   "15", "--top-k", "3", "--top-p", "0.9", "--seed", "1"])
    printed = capsys.readouterr().out
    assert rc == 0 and printed.startswith("the ") and len(printed.rstrip("\n")) >= 19


def test_progress_and_samples_when_not_quiet(tmp_path, text_file, capsys):
    rc = cli.main(["train", "--text", str(text_file), "--steps", "3", "--out",
                   str(tmp_path / "r"), "--cell", "gru", "--layers", "2", "--dropout", "0.1",
                   "--optimizer", "sgd", "--lr", "0.5", "--schedule", "cosine", *TINY])
    captured = capsys.readouterr()
    assert rc == 0 and "---- sample ----" in captured.err + captured.out


@pytest.mark.parametrize("argv,message", [
    (["train", "--hidden", "0"], "argument --hidden: expected a positive integer, got '0'"),
    (["train", "--optimizer", "lion"], "argument --optimizer: invalid choice"),
    (["train", "--steps", "5", "--minutes", "1"], "not allowed with argument"),
    (["train", "--dropout", "1.0"], "expected a number in [0.0, 1.0)"),
    (["train", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["sample"], "the following arguments are required: checkpoint"),
    (["sample", "x.npz", "--top-p", "0"], "expected a number in (0.0, 1.0]"),
    ([], "the following arguments are required"),
    (["train", "--device", "tpu"], "argument --device: expected cpu, cuda[:N], auto or strict, "
     "got 'tpu'"),
    (["sample", "x.npz", "--device", "cuda:x"], "argument --device: expected cpu"),
    (["gradcheck", "--device", "bogus"], "argument --device: expected cpu, cuda[:N], auto or "
     "strict, got 'bogus'"),
    (["gradcheck", "--eps", "0"], "argument --eps: expected a number in (0.0, inf), got '0'"),
    (["gradcheck", "--eps", "nan"], "argument --eps: expected a number in (0.0, inf)"),
    (["gradcheck", "--eps", "inf"], "argument --eps: expected a number in (0.0, inf)"),
    (["gradcheck", "--eps=-1e-4"], "argument --eps: expected a number in (0.0, inf)"),
    (["gradcheck", "--cell", "tpu"], "argument --cell: invalid choice"),
])
def test_bad_arguments_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv,message", [
    (["train", "--text", "/no/such/file.txt"], "--text: no file at /no/such/file.txt"),
    (["train", "--schedule", "step"], "--schedule step: needs --steps"),
    (["sample", "/no/such.npz"], "no file at /no/such.npz"),
])
def test_runtime_errors_one_line(argv, message, capsys):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_gradcheck_subcommand_delegates(monkeypatch):
    import scratchrnn.gradcheck

    seen = []
    monkeypatch.setattr(scratchrnn.gradcheck, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["gradcheck", "--cell", "gru"]) == 0
    assert seen == [["--cell", "gru"]]


def test_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "scratchrnn", "train", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--seq-len" in done.stdout and "--resume" in done.stdout


# ---- issue 11: Ctrl-C, resume, --out, files ----------------------------------------- #
def _run(argv, capsys):
    rc = cli.main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _weights(path):
    return load_checkpoint(path).weights


def test_ctrl_c_writes_everything_exits_130_and_resumes_exactly(tmp_path, text_file, capsys,
                                                                  monkeypatch):
    from scratchrnn.training.tasks import LanguageModelTask

    base = ["train", "--text", str(text_file), "--quiet", "--dropout", "0.2", *TINY]
    rc, _, _ = _run([*base, "--steps", "7", "--out", str(tmp_path / "full")], capsys)
    assert rc == 0

    real = LanguageModelTask.train_step
    calls = []

    def interrupted(self, model, batch):
        result = real(self, model, batch)          # forward and backward done, then Ctrl-C
        calls.append(batch)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(LanguageModelTask, "train_step", interrupted)
    out = tmp_path / "cut"
    rc, _, err = _run([*base, "--steps", "7", "--out", str(out)], capsys)
    assert rc == 130 and "interrupted after step 4" in err and "Traceback" not in err
    for name in ("checkpoint.npz", "history.json", "loss.png", "metrics.csv", "best.npz"):
        assert (out / name).stat().st_size > 0, name
    assert load_checkpoint(out / "checkpoint.npz").step == 4
    assert [r["step"] for r in _csv(out / "metrics.csv")] == ["1", "2", "3", "4"]
    monkeypatch.setattr(LanguageModelTask, "train_step", real)

    rc, stdout, _ = _run([*base, "--steps", "7", "--out", str(out), "--resume", str(out)],
                         capsys)
    assert rc == 0 and "resumed from" in stdout      # shown even with --quiet
    a, b = _weights(tmp_path / "full" / "checkpoint.npz"), _weights(out / "checkpoint.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in _csv(out / "metrics.csv")] == [str(i) for i in range(1, 8)]


def _csv(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_ctrl_c_in_gradcheck_exits_130_without_traceback(monkeypatch, capsys):
    import scratchrnn.gradcheck

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(scratchrnn.gradcheck, "main", interrupted)
    rc, _, err = _run(["gradcheck"], capsys)
    assert rc == 130 and "interrupted" in err and "Traceback" not in err


@pytest.mark.parametrize("module", ["numpy", "matplotlib"])
def test_ctrl_c_while_importing_exits_130_without_traceback(tmp_path, module, text_file):
    """A real SIGINT while the package imports numpy / while the run imports matplotlib."""
    (tmp_path / "sitecustomize.py").write_text(
        "import builtins, os, signal\n"
        "_real, _done = builtins.__import__, []\n"
        "def _imp(name, *a, **k):\n"
        "    if name == os.environ['INTERRUPT_AT_IMPORT'] and not _done:\n"
        "        _done.append(1)\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return _real(name, *a, **k)\n"
        "builtins.__import__ = _imp\n")
    env = {**os.environ, "INTERRUPT_AT_IMPORT": module, "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run([sys.executable, "-m", "scratchrnn", "train", "--text",
                           str(text_file), "--steps", "2", "--out", str(tmp_path / "o"),
                           "--quiet", *TINY], capture_output=True, text=True, timeout=120,
                          env=env, cwd=tmp_path)
    assert done.returncode == 130, done.stderr
    assert "interrupted" in done.stderr and "Traceback" not in done.stderr


def test_resume_refuses_conflicting_options_only_when_given(tmp_path, text_file, capsys,
                                                            monkeypatch):
    out = tmp_path / "r"
    base = ["train", "--text", str(text_file), "--quiet", "--out", str(out), "--seq-len", "8",
            "--batch-size", "4", "--eval-every", "3", "--sample-length", "0"]
    assert _run([*base, "--steps", "3", "--hidden", "12"], capsys)[0] == 0
    rc, _, err = _run([*base, "--steps", "5", "--resume", str(out), "--hidden", "512",
                       "--cell", "gru", "--lr", "0.1"], capsys)
    assert rc == 1 and err.count("\n") == 1
    assert "conflicting options" in err and "--hidden 512 (the checkpoint has 12)" in err
    assert "--cell gru (the checkpoint has lstm)" in err and "--lr 0.1" in err
    rc, _, err = _run(["train", *base[3:], "--steps", "5", "--resume", str(out), "--data",
                       "default"], capsys)
    assert rc == 1 and "--data default (the checkpoint was trained on --text " in err
    assert load_checkpoint(out / "checkpoint.npz").step == 3          # nothing trained
    # the same values given again, or nothing given (defaults differ: 256), resume fine
    rc, stdout, err = _run([*base, "--steps", "5", "--resume", str(out), "--hidden", "12",
                            "--cell", "lstm"], capsys)
    assert rc == 0 and load_checkpoint(out / "checkpoint.npz").step == 5
    rc, stdout, err = _run([*base, "--steps", "6", "--resume", str(out), "--seed", "4"], capsys)
    assert rc == 0 and "--seed is ignored with --resume" in err
    assert "resumed from" in stdout
    # without --text the run's own text is used (from another folder too)
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    rc, stdout, err = _run(["train", "--quiet", "--out", str(out), "--steps", "7",
                            "--resume", str(out)], capsys)
    assert rc == 0 and f"on {text_file}" in stdout


def test_resume_summary_reports_the_whole_run(tmp_path, text_file, capsys, monkeypatch):
    from scratchrnn.training.trainer import Trainer

    out = tmp_path / "r"
    base = ["train", "--text", str(text_file), "--quiet", "--out", str(out), *TINY]
    assert _run([*base, "--steps", "3"], capsys)[0] == 0
    ck = load_checkpoint(out / "checkpoint.npz")
    first = ck.info["trainer"]["elapsed"]
    assert first > 0
    real_load = Trainer.load

    def load_long_run(self, path):
        ck = real_load(self, path)
        self.elapsed = 5000.0                # as if the first part had taken 5000 s
        return ck

    monkeypatch.setattr(Trainer, "load", load_long_run)
    rc, stdout, _ = _run([*base, "--steps", "5", "--resume", str(out)], capsys)
    assert rc == 0
    assert "finished 5 steps in 50" in stdout and "(2 steps, " in stdout
    assert load_checkpoint(out / "checkpoint.npz").info["trainer"]["elapsed"] >= 5000


def test_unusable_out_is_refused_before_training(tmp_path, text_file, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    rc, stdout, err = _run(["train", "--text", str(text_file), "--steps", "2", "--out",
                            str(afile), "--quiet", *TINY], capsys)
    assert rc == 1 and "--out: " in err and "exists and is not a folder" in err
    assert "training a" not in stdout


def test_cli_outputs_are_atomic_and_do_not_follow_symlinks(tmp_path, text_file, capsys):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    out = tmp_path / "run"
    out.mkdir()
    names = ("sample.txt", "history.json", "loss.png", "metrics.csv", "checkpoint.npz")
    for name in names:
        (out / name).symlink_to(outside)
    stale = out / "checkpoint.npz.999999999.abc.tmp"        # left by a killed run
    stale.write_text("x")
    rc, _, _ = _run(["train", "--text", str(text_file), "--steps", "2", "--out", str(out),
                     "--quiet", *TINY], capsys)
    assert rc == 0 and outside.read_text() == "keep me" and not stale.exists()
    for name in names:
        assert (out / name).is_file() and not (out / name).is_symlink(), name
    modes = {p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert len(modes) == 1


def test_diverged_run_keeps_no_poisoned_checkpoint(tmp_path, text_file, capsys):
    out = tmp_path / "r"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rc, _, err = _run(["train", "--text", str(text_file), "--hidden", "8", "--steps", "30",
                           "--eval-every", "1", "--seq-len", "8", "--batch-size", "2",
                           "--lr", "1e39", "--clip", "0", "--out", str(out), "--quiet"], capsys)
    assert rc == 1 and "training diverged" in err and "non-finite" in err
    assert err.count("\n") == 1
    assert not (out / "checkpoint.npz").exists()
    assert (out / "history.json").exists() and (out / "loss.png").exists()
    rc, _, err = _run(["train", "--text", str(text_file), "--hidden", "8", "--steps", "30",
                       "--seq-len", "8", "--batch-size", "2", "--lr", "1e30", "--optimizer",
                       "sgd", "--clip", "0", "--out", str(tmp_path / "s"), "--quiet"], capsys)
    assert rc == 1 and "exploded" in err


# ---- issue 12: best.npz, help, warnings, errors ---------------------------------------- #
def test_sample_takes_checkpoint_or_best(tmp_path, text_file, capsys):
    out = tmp_path / "r"
    assert _run(["train", "--text", str(text_file), "--steps", "6", "--out", str(out),
                 "--quiet", *TINY], capsys)[0] == 0
    for argv in ([str(out)], [str(out), "--best"], [str(out / "best.npz")]):
        rc, printed, _ = _run(["sample", *argv, "--prompt", "the ", "--length", "10",
                               "--seed", "1"], capsys)
        assert rc == 0 and printed.startswith("the ")
    best = load_checkpoint(out / "best.npz")
    val = {v["step"]: v["val_loss"] for v in load_checkpoint(out / "checkpoint.npz")
           .info["history"]["val"]}
    assert best.step == min(val, key=val.get)


def test_every_option_shows_its_default_and_version(capsys):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("train", "sample"):
        text = sub.choices[name].format_help().split("\noptions:\n", 1)[1]
        entries = {e.split()[0].rstrip(","): " ".join(e.split())
                   for e in ("\n" + text).split("\n  -")[1:]}
        for action in sub.choices[name]._actions:
            if not action.option_strings or action.help in (argparse.SUPPRESS, None) \
                    or "-h" in action.option_strings:
                continue
            entry = entries[action.option_strings[0][1:]]      # "--hidden" -> "-hidden"
            assert "(default: " in entry, (name, entry)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("scratchrnn 0.")


def test_checkpoint_every_is_a_deprecated_alias(tmp_path, text_file, capsys):
    rc, _, err = _run(["train", "--text", str(text_file), "--steps", "3", "--checkpoint-every",
                       "2", "--out", str(tmp_path / "r"), "--quiet", *TINY], capsys)
    assert rc == 0 and "--checkpoint-every is deprecated; use --save-every" in err


def test_warnings_for_long_window_small_validation_and_ignored_options(tmp_path, capsys):
    small = tmp_path / "small.txt"
    small.write_text("abcdefghijklmnopqrstuvwxyz")                       # 26 bytes
    rc, stdout, err = _run(["train", "--text", str(small), "--steps", "2", "--batch-size",
                            "1", "--seq-len", "1000000", "--hidden", "4", "--out",
                            str(tmp_path / "r"), "--quiet", "--sample-length", "0",
                            "--threads", "1", "--device", "strict"], capsys)
    assert rc == 0
    assert "warning: --seq-len 1000000 is longer than each of the 1 training streams" in err
    assert "warning: no validation: the validation split has 1 characters" in err
    assert "warning: --threads is ignored on --device strict" in err
    assert "validation loss n/a" in stdout and "nan" not in stdout
    rc, _, err = _run(["sample", str(tmp_path / "r"), "--temperature", "0", "--top-k", "3",
                       "--seed", "2", "--length", "3"], capsys)
    assert rc == 0 and "--top-k is ignored with --temperature 0" in err
    assert "--seed is ignored with --temperature 0" in err and "--top-p" not in err


@pytest.mark.parametrize("content,message", [
    (None, "is a folder, expected a UTF-8 text file"),
    (b"", "the file is empty"),
    (b"PK\x03\x04\x00\x00binary", "not a text file (a NUL byte at offset 4"),
    (b"caf\xe9 latin-1", "not UTF-8 text (byte 0xe9 at offset 3)"),
])
def test_text_errors_name_the_option_and_the_file(tmp_path, content, message, capsys):
    path = tmp_path / "input"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    rc, _, err = _run(["train", "--text", str(path), "--steps", "1", "--out",
                       str(tmp_path / "r")], capsys)
    assert rc == 1 and f"--text {path}" in err.replace(f"--text: {path}", f"--text {path}")
    assert message in err and err.count("\n") == 1


def test_device_cuda_without_gpu_says_why(monkeypatch, capsys, tmp_path, text_file):
    from scratchrnn import backend as B

    base = ["train", "--text", str(text_file), "--steps", "1", "--device", "cuda", "--out",
            str(tmp_path / "r")]
    monkeypatch.setattr(B, "cuda_problem", lambda: ("missing", "CuPy is not installed"))
    rc, _, err = _run(base, capsys)
    assert rc == 1 and "--device cuda: no usable GPU: CuPy is not installed" in err
    assert "pip install 'scratchrnn[cuda12]'" in err
    monkeypatch.setattr(B, "cuda_problem",
                        lambda: ("unusable", "CuPy is installed but sees no CUDA device"))
    rc, _, err = _run(base, capsys)
    assert rc == 1 and "sees no CUDA device" in err and "pip install" not in err


def test_a_late_ctrl_c_cannot_turn_the_commands_exit_into_a_traceback(monkeypatch, capsys):
    """As the command, main() ignores SIGINT once its work is over (interpreter exit);
    called from a program, it leaves the handler alone."""
    import signal

    import scratchrnn.gradcheck

    monkeypatch.setattr(scratchrnn.gradcheck, "main", lambda argv: 0)
    before = signal.getsignal(signal.SIGINT)
    try:
        assert cli.main(["gradcheck"]) == 0
        assert signal.getsignal(signal.SIGINT) is before
        monkeypatch.setattr(sys, "argv", ["/usr/bin/scratchrnn", "gradcheck"])
        assert cli.main(["gradcheck"]) == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


# --------------------------------------------------------------------------- #
# Cell names: those of scratchrnn.cells, "rnn" an alias of "rnn_tanh" (issue 10, item 6)
# --------------------------------------------------------------------------- #
def test_cell_names_and_the_rnn_alias(tmp_path, text_file, capsys):
    from scratchrnn.backend import serialize

    base = ["train", "--text", str(text_file), "--quiet", "--steps", "3", *TINY]
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    helptext = capsys.readouterr().out
    assert "{rnn_tanh,rnn_relu,gru,lstm}" in helptext and "'rnn' is an alias of rnn_tanh" in \
        " ".join(helptext.split())
    for given, stored in (("rnn", "rnn_tanh"), ("rnn_tanh", "rnn_tanh"),
                          ("rnn_relu", "rnn_relu")):
        out = tmp_path / given
        assert _run([*base, "--out", str(out), "--cell", given], capsys)[0] == 0
        assert serialize.read_npz_index(out / "checkpoint.npz")[1]["model_config"]["cell"] \
            == stored
        rc, printed, _ = _run(["sample", str(out), "--prompt", "the ", "--length", "10",
                               "--seed", "0"], capsys)
        assert rc == 0 and printed.startswith("the ")
    # a resumed run: the alias and the name are the same cell, another cell conflicts
    resume = ["train", "--text", str(text_file), "--quiet", *TINY, "--out", str(tmp_path / "rnn"),
              "--resume", str(tmp_path / "rnn")]
    assert _run([*resume, "--steps", "5", "--cell", "rnn_tanh"], capsys)[0] == 0
    rc, _, err = _run([*resume, "--steps", "6", "--cell", "gru"], capsys)
    assert rc == 1 and "--cell gru (the checkpoint has rnn_tanh)" in err
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*base, "--out", str(tmp_path / "x"), "--cell", "lstm_proj"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'lstm_proj' (choose from 'rnn_tanh', 'rnn_relu', 'gru', 'lstm')" \
        in capsys.readouterr().err


def test_resuming_a_checkpoint_that_stores_the_old_name_rnn(tmp_path, text_file, capsys):
    from scratchrnn.backend import serialize

    out = tmp_path / "old"
    base = ["train", "--text", str(text_file), "--quiet", *TINY, "--out", str(out)]
    assert _run([*base, "--steps", "3", "--cell", "rnn_tanh"], capsys)[0] == 0
    path = out / "checkpoint.npz"
    index, meta = serialize.read_npz_index(path)        # as an older scratchrnn wrote it
    meta["model_config"]["cell"] = "rnn"
    serialize.save_npz_atomic(path, serialize.read_npz_arrays(path), meta)
    for cell, steps in (("rnn", "4"), ("rnn_tanh", "5")):
        rc, _, err = _run([*base, "--steps", steps, "--resume", str(out), "--cell", cell],
                          capsys)
        assert rc == 0, err
    assert load_checkpoint(path).step == 5
    assert serialize.read_npz_index(path)[1]["model_config"]["cell"] == "rnn_tanh"


def test_resume_names_the_file_and_field_of_a_bad_trainer_entry(tmp_path, text_file, capsys):
    from scratchrnn.backend import serialize

    out = tmp_path / "run"
    base = ["train", "--text", str(text_file), "--quiet", *TINY, "--out", str(out)]
    assert _run([*base, "--steps", "3"], capsys)[0] == 0
    path = out / "checkpoint.npz"
    _, meta = serialize.read_npz_index(path)
    meta["info"]["trainer"]["epoch"] = "x"
    serialize.save_npz_atomic(path, serialize.read_npz_arrays(path), meta)
    rc, _, err = _run([*base, "--steps", "5", "--resume", str(out)], capsys)
    errors = [line for line in err.splitlines() if ": warning: " not in line]
    assert rc == 1 and len(errors) == 1 and "Traceback" not in err
    assert f"checkpoint {path}: info.trainer.epoch: expected an int >= 0, got 'x'" in err


def test_gradcheck_takes_the_cell_names_and_the_alias(monkeypatch, capsys):
    import scratchrnn.gradcheck as G

    tiny = dict(T=2, batch=2, input_size=2, hidden_size=2)
    monkeypatch.setattr(G, "all_layer_cases", lambda: [G.LayerCase("rnn_tanh", **tiny),
                                                       G.LayerCase("gru", **tiny)])
    for cell in ("rnn", "rnn_tanh"):
        assert cli.main(["gradcheck", "--cell", cell]) == 0
        rows = [ln for ln in capsys.readouterr().out.splitlines() if "L=1" in ln]
        assert len(rows) == 1 and rows[0].startswith("rnn_tanh ")
    assert set(G.CELL_NAMES) == {"rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_proj"}


# --------------------------------------------------------------------------- #
# gradcheck: the commands' exits; a NaN error is a failure
# --------------------------------------------------------------------------- #
def _tiny_gradcheck(monkeypatch):
    import scratchrnn.gradcheck as G

    tiny = dict(T=2, batch=2, input_size=2, hidden_size=2)
    monkeypatch.setattr(G, "all_layer_cases", lambda: [G.LayerCase("rnn_tanh", **tiny),
                                                       G.LayerCase("gru", **tiny)])
    return G


@pytest.mark.parametrize("variable, value", [("SCRATCHRNN_ENGINE", "bogus"),
                                             ("SCRATCHRNN_BACKEND", "tpu")])
def test_gradcheck_environment_errors_one_line_exit_1(monkeypatch, capsys, variable, value):
    G = _tiny_gradcheck(monkeypatch)
    monkeypatch.setenv(variable, value)
    for run in (lambda: cli.main(["gradcheck"]), lambda: G.main([])):
        rc, out, err = _run_call(run, capsys)
        assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"scratchrnn gradcheck: error: {variable}: expected one of")
        assert out == ""                              # refused before the table starts


def test_gradcheck_without_a_gpu_one_line_exit_1(monkeypatch, capsys):
    from scratchrnn import backend as B

    _tiny_gradcheck(monkeypatch)
    monkeypatch.setattr(B, "cuda_problem", lambda: ("missing", "CuPy is not installed"))
    rc, out, err = _run(["gradcheck", "--device", "cuda"], capsys)
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "--device cuda: no usable GPU: CuPy is not installed" in err


def test_gradcheck_module_follows_the_same_rule():
    for argv, status in ((["--eps", "0"], 2), (["--device", "bogus"], 2)):
        done = subprocess.run([sys.executable, "-m", "scratchrnn.gradcheck", *argv],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == status, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_gradcheck_a_nan_error_fails(monkeypatch, capsys):
    G = _tiny_gradcheck(monkeypatch)
    results = iter([{"weight_ih_l0": 1e-10, "input": 2e-11},
                    {"weight_ih_l0": float("nan"), "input": 1e-9}])
    monkeypatch.setattr(G, "check_layer", lambda case, backend=None, seed=0, eps=G.EPS:
                        next(results))
    rc, out, _ = _run(["gradcheck"], capsys)
    rows = [ln for ln in out.splitlines() if "L=1" in ln]
    assert rc == 1
    assert rows[0].endswith("1.00e-10") and rows[1].endswith("nan  FAIL")
    assert "weight_ih_l0" in rows[1]                   # the NaN entry is the worst one
    summary = out.strip().splitlines()[-1]
    assert "nan" in summary and "FAILED (1 of 2 configurations)" in summary
    assert "ok" not in summary


def _run_call(run, capsys):
    rc = run()
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


# --------------------------------------------------------------------------- #
# The output folder: a resumed run continues in its own; failed runs leave none
# --------------------------------------------------------------------------- #
def _refuse(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


def test_resume_without_out_continues_in_the_runs_folder(tmp_path, text_file, capsys,
                                                         monkeypatch):
    src = tmp_path / "src-run"
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    base = ["train", "--text", str(text_file), "--quiet", *TINY]
    assert _run([*base, "--steps", "3", "--out", str(src)], capsys)[0] == 0
    rc, stdout, err = _run([*base, "--steps", "5", "--resume", str(src)], capsys)
    assert rc == 0, err
    assert not (here / cli.DEFAULT_OUT).exists() and list(here.iterdir()) == []
    assert [r["step"] for r in _csv(src / "metrics.csv")] == ["1", "2", "3", "4", "5"]
    assert load_checkpoint(src / "checkpoint.npz").step == 5
    assert "continuing in" not in stdout
    # a folder it cannot write in is refused, saying where --out would help
    monkeypatch.setattr(F.tempfile, "mkstemp", _refuse)
    rc, _, err = _run([*base, "--steps", "6", "--resume", str(src)], capsys)
    assert rc == 1 and f"--resume (the run continues in its folder; --out DIR writes " \
        f"elsewhere): cannot write in {src}" in err
    monkeypatch.undo()
    monkeypatch.chdir(here)
    # --resume FILE: the folder that holds the file
    rc, _, err = _run([*base, "--steps", "6", "--resume", str(src / "checkpoint.npz")], capsys)
    assert rc == 0 and load_checkpoint(src / "checkpoint.npz").step == 6


def test_resume_into_another_out_copies_the_runs_record(tmp_path, text_file, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    base = ["train", "--text", str(text_file), "--quiet", *TINY]
    assert _run([*base, "--steps", "3", "--out", str(src)], capsys)[0] == 0
    before = (src / "metrics.csv").read_text()
    rc, stdout, err = _run([*base, "--steps", "5", "--resume", str(src), "--out", str(dst)],
                           capsys)
    assert rc == 0, err
    assert f"continuing in {dst} (metrics.csv and best.npz copied there)" in stdout
    assert [r["step"] for r in _csv(dst / "metrics.csv")] == ["1", "2", "3", "4", "5"]
    assert (src / "metrics.csv").read_text() == before            # the source is untouched
    assert load_checkpoint(src / "checkpoint.npz").step == 3
    assert load_checkpoint(dst / "checkpoint.npz").step == 5 and (dst / "best.npz").is_file()


def test_failed_runs_leave_no_output_folder(tmp_path, text_file, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default = tmp_path / cli.DEFAULT_OUT
    base = ["train", "--quiet", *TINY]
    assert _run([*base, "--text", str(tmp_path / "missing.txt")], capsys)[0] == 1
    assert _run([*base, "--resume", str(tmp_path / "no-such-run")], capsys)[0] == 1
    assert not default.exists()
    from scratchrnn.data import datasets  # a failed download

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", offline)
    monkeypatch.setenv("SCRATCHRNN_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("SCRATCHRNN_CACHE", str(tmp_path / "cache"))
    rc, _, err = _run([*base, "--data", "tinyshakespeare"], capsys)
    assert rc == 1 and "network is unreachable" in err and not default.exists()
    src = tmp_path / "src"
    assert _run([*base, "--text", str(text_file), "--steps", "3", "--out", str(src)],
                capsys)[0] == 0
    rc, _, err = _run([*base, "--steps", "2", "--resume", str(src), "--out",
                       str(tmp_path / "new")], capsys)            # refused: already at step 3
    assert rc == 1 and "already at step 3" in err
    assert not (tmp_path / "new").exists() and not default.exists()
    # a folder that cannot be made is still refused before anything is trained
    (tmp_path / "afile").write_text("x")
    rc, stdout, err = _run([*base, "--text", str(text_file), "--steps", "2", "--out",
                            str(tmp_path / "afile" / "run")], capsys)
    assert rc == 1 and "exists and is not a folder" in err and "training" not in stdout


def test_gitignore_ignores_the_default_output_folder():
    lines = (ROOT / ".gitignore").read_text().split()
    assert f"{cli.DEFAULT_OUT}/" in lines


# --------------------------------------------------------------------------- #
# Messages: the cell's display name with its article; the passes behind the defaults
# --------------------------------------------------------------------------- #
def test_cell_display_names_and_articles():
    from scratchrnn.cells import CELLS, display_name

    assert {c: display_name(c, article=True) for c in CELLS} == {
        "rnn_tanh": "an RNN (tanh)", "rnn_relu": "an RNN (ReLU)", "gru": "a GRU",
        "lstm": "an LSTM", "lstm_proj": "an LSTM (projected)"}
    assert display_name("rnn") == "RNN (tanh)" and display_name("gru") == "GRU"


@pytest.mark.parametrize("cell, said", [("lstm", "training an LSTM language model"),
                                        ("rnn_relu", "training an RNN (ReLU) language model"),
                                        ("gru", "training a GRU language model")])
def test_training_line_names_the_cell(tmp_path, text_file, capsys, cell, said):
    rc, stdout, _ = _run(["train", "--text", str(text_file), "--quiet", "--steps", "1",
                          "--cell", cell, "--out", str(tmp_path / "r"), *TINY], capsys)
    assert rc == 0 and said in stdout
    assert "passes over the training text" in stdout          # what the run really made


def test_defaults_line_says_whether_the_passes_are_estimated():
    args = cli.build_parser().parse_args(["train"])
    line = cli._fill_budget_defaults(args, 465_000, None, 2.0)
    assert line.startswith("defaults for an estimated 11 passes over the text (2 minutes at "
                           "an assumed 40,000 characters/s")
    args = cli.build_parser().parse_args(["train"])
    line = cli._fill_budget_defaults(args, 465_000, 100, None)
    assert line.startswith("defaults for 0.5 passes over the text (100 steps)")
    assert "estimated" not in line


def test_language_model_metrics_have_validation_accuracy(tmp_path, text_file, capsys):
    out = tmp_path / "r"
    assert _run(["train", "--text", str(text_file), "--quiet", "--steps", "6", "--out",
                 str(out), *TINY], capsys)[0] == 0
    validated = [r for r in _csv(out / "metrics.csv") if r["val_loss"]]
    assert [r["step"] for r in validated] == ["3", "6"]
    assert all(0.0 <= float(r["val_accuracy"]) <= 1.0 for r in validated)
