"""Every example in examples/ runs end to end (``--quick``) and prints what it must.

The sentence-completion toy runs in full (seconds) and must complete "good"
to "good i am fine". The examples run as scripts in a subprocess, with the
data directory from the ``data_dir`` fixture and a headless matplotlib.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, data: Path | None, out: Path, *args: str,
                timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg", SCRATCHRNN_CACHE=str(out / "cache"))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")   # tiny matrices: threads only spin on a busy CPU
    env.pop("SCRATCHRNN_DATA", None)
    if data is not None:
        env["SCRATCHRNN_DATA"] = str(data)
    return subprocess.run([sys.executable, str(EXAMPLES / name), "--out", str(out), *args],
                          env=env, capture_output=True, text=True, timeout=timeout)


def check(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for needle in needles:
        assert needle in proc.stdout, f"{needle!r} missing from:\n{proc.stdout[-3000:]}"
    return proc.stdout


def test_complete_sentence_full_run_completes_good(tmp_path):
    out = check(run_example("complete_sentence.py", None, tmp_path),
                "epoch   10/100", "epoch  100/100", "summary:")
    assert "'good i am fine '" in out
    losses = [float(line.split("loss")[1]) for line in out.splitlines()
              if line.startswith("epoch")]
    assert len(losses) == 10 and losses[-1] < 0.5 * losses[0]


def test_char_shakespeare_quick(data_dir, tmp_path):
    out = check(run_example("char_shakespeare.py", data_dir, tmp_path, "--quick"),
                "step     3", "val loss", "sample from 'to' at temperature 0.1",
                "sample from 'to' at temperature 1.0", "summary: 3 steps")
    samples = [ast.literal_eval(line.strip()) for line in out.splitlines()
               if line.startswith(("    'thy", '    "thy'))]
    assert len(samples) == 3 and all(len(s) == 103 for s in samples)
    assert (tmp_path / "char_shakespeare_loss.png").stat().st_size > 0


def test_word_lm_quick(data_dir, tmp_path):
    out = check(run_example("word_lm.py", data_dir, tmp_path, "--quick"),
                "step     5", "summary: 5 steps", "perplexity")
    line = next(s for s in out.splitlines() if s.startswith("I can "))
    assert len(line.split()) == 2 + 25
    assert (tmp_path / "word_lm_loss.png").stat().st_size > 0


def test_word_lm_reads_any_text_file(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("I can see the sea . you can see me .\n" * 300, encoding="utf-8")
    out = check(run_example("word_lm.py", None, tmp_path, "--quick", "--text", str(text)),
                "vocabulary of 9", "summary: 5 steps")
    assert "Tiny Shakespeare" not in out


def test_news_classifier_quick(data_dir, tmp_path):
    out = check(run_example("news_classifier.py", data_dir, tmp_path, "--quick"),
                "(a) RNN, mean of the valid steps", "(b) LSTM, last padded step",
                "(c) LSTM with lengths (packed)", "validation headlines", "summary:")
    assert out.count(" predicted ") == 6
    assert (tmp_path / "news_classifier.png").stat().st_size > 0


def test_news_classifier_without_data_says_how_to_get_it(tmp_path):
    proc = run_example("news_classifier.py", tmp_path / "empty", tmp_path, "--quick")
    assert proc.returncode != 0
    assert "ag_news" in proc.stderr and "SCRATCHRNN_DATA" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_surname_classifier_quick(data_dir, tmp_path):
    out = check(run_example("surname_classifier.py", data_dir, tmp_path, "--quick",
                            "--noise", "3", "--lstm"),
                "RNN: held-out accuracy", "GRU + attention: held-out accuracy",
                "LSTM: held-out accuracy", "attention weights", "summary:")
    # four names, one line of "letter:weight" pairs each, weights summing to 1
    rows = [line.split() for line in out.splitlines() if line.startswith("    ")]
    assert len(rows) == 4
    for row in rows:
        assert abs(sum(float(pair.rsplit(":", 1)[1]) for pair in row) - 1.0) < 0.02
    assert (tmp_path / "surname_losses.png").stat().st_size > 0
    assert (tmp_path / "surname_confusion.png").stat().st_size > 0


def test_vanishing_gradients_quick(tmp_path):
    out = check(run_example("vanishing_gradients.py", None, tmp_path, "--quick"),
                "vanilla RNN", "GRU", "LSTM", "validation MSE", "summary:", "T =   10:")
    assert (tmp_path / "vanishing_gradients.png").stat().st_size > 0
    # at initialisation the gradient reaching step 1 is far smaller than at step T
    ratios = [float(line.split("at init")[1].split()[0]) for line in out.splitlines()
              if "at init" in line]
    assert len(ratios) == 3 and all(r < 0.5 for r in ratios)


@pytest.mark.parametrize("name", ["char_shakespeare.py", "word_lm.py", "news_classifier.py",
                                  "surname_classifier.py", "vanishing_gradients.py",
                                  "complete_sentence.py"])
def test_example_has_the_common_flags(name, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))        # for examples/_common.py, as a script has
    spec = importlib.util.spec_from_file_location(name[:-3], EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)                   # defines main() and parse_args()
    args = module.parse_args(["--quick", "--seed", "3", "--out", "x", "--device", "cpu"])
    assert (args.quick, args.seed, args.out, args.device) == (True, 3, "x", "cpu")
    assert module.parse_args([]).quick is False
    with pytest.raises(SystemExit):
        module.parse_args(["--device", "tpu"])
