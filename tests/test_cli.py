"""The command line: train, resume, sample, gradcheck, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scratchrnn import cli
from scratchrnn.training.checkpoint import load_checkpoint

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
])
def test_bad_arguments_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv,message", [
    (["train", "--text", "/no/such/file.txt"], "--text: no file at /no/such/file.txt"),
    (["train", "--schedule", "cosine"], "--schedule cosine: needs --steps"),
    (["train", "--device", "tpu"], "device: expected one of"),
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
