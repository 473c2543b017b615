"""Budget defaults (scratchrnn.training.defaults) and how `scratchrnn train` applies them."""

from __future__ import annotations

import json

import pytest

from scratchrnn import cli
from scratchrnn.training.checkpoint import load_checkpoint
from scratchrnn.training.defaults import budget_defaults, expected_passes

EMBEDDED, SHAKESPEARE = 441_796, 1_059_625     # training characters of the two corpora


def test_expected_passes():
    assert expected_passes(2048, 32, 64, steps=10, minutes=None) == 10
    assert expected_passes(2_400_000, 32, 64, None, 1.0, chars_per_s=40_000) == 1
    assert expected_passes(0, 32, 64, 1, None) == 2048      # no division by zero


@pytest.mark.parametrize("chars, steps, minutes, dropout, schedule", [
    (EMBEDDED, None, 2.0, 0.0, "constant"),         # the default run: about 11 passes
    (EMBEDDED, None, 5.0, 0.2, "cosine"),          # 27 passes
    (SHAKESPEARE, None, 2.0, 0.0, "constant"),      # 4.5 passes
    (SHAKESPEARE, None, 15.0, 0.2, "cosine"),      # 34 passes: it overfitted without
    (SHAKESPEARE, 500, None, 0.0, "constant"),
    (SHAKESPEARE, 5000, None, 0.0, "constant"),     # 9.7 passes
    (SHAKESPEARE, 8000, None, 0.2, "cosine"),      # 15.5 passes
])
def test_budget_defaults(chars, steps, minutes, dropout, schedule):
    got = budget_defaults(chars, 32, 64, steps, minutes)
    assert (got.dropout, got.schedule) == (dropout, schedule)
    assert (got.layers, got.lr) == ((2, 2e-3) if dropout else (1, 3e-3))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("the quick brown fox jumps over the lazy dog.\n" * 30, encoding="utf-8")
    return path


TINY = ["--hidden", "8", "--seq-len", "8", "--batch-size", "4", "--sample-length", "0",
        "--quiet"]


def train(text_file, out, *extra: str) -> int:
    return cli.main(["train", "--text", str(text_file), "--out", str(out), *TINY, *extra])


def test_many_passes_regularise_unless_the_user_chose(tmp_path, text_file, capsys):
    # 40 steps × 32 characters over about 1,300 training characters: about 1 pass
    assert train(text_file, tmp_path / "a", "--steps", "40") == 0
    config = load_checkpoint(tmp_path / "a" / "checkpoint.npz").model_config
    assert (config["dropout"], config["num_layers"]) == (0.0, 1)
    # 800 steps: about 20 passes -> 2 layers, lr 2e-3, dropout 0.2, cosine, and it says so
    assert train(text_file, tmp_path / "b", "--steps", "800", "--eval-every", "200") == 0
    ck = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert (ck.model_config["dropout"], ck.model_config["num_layers"]) == (0.2, 2)
    assert ck.info["run"]["lr"] == 2e-3
    assert ("defaults for 20 passes over the text (800 steps): 2 layers, learning rate 0.002, "
            "dropout 0.2, cosine schedule") in capsys.readouterr().out
    assert train(text_file, tmp_path / "c", "--steps", "800", "--eval-every", "200",
                 "--dropout", "0", "--schedule", "constant", "--layers", "1",
                 "--lr", "0.003") == 0
    ck = load_checkpoint(tmp_path / "c" / "checkpoint.npz")
    assert (ck.model_config["dropout"], ck.model_config["num_layers"]) == (0.0, 1)
    assert "defaults for" not in capsys.readouterr().out


def test_plateau_with_minutes_is_accepted(tmp_path, text_file, monkeypatch):
    """...and keeps its own floor (η/8): the time-budget cosine's floor is the cosine's."""
    from scratchrnn import training

    made = []
    real = training.make_schedule
    monkeypatch.setattr(training, "make_schedule",
                        lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    assert train(text_file, tmp_path / "m", "--minutes", "0.005", "--schedule", "plateau") == 0
    (schedule,) = made
    assert schedule.min_lr == schedule.lr / 8


def test_cosine_with_minutes_anneals_over_the_time(tmp_path, text_file):
    """--schedule cosine under --minutes: the rate falls as the time is spent."""
    assert train(text_file, tmp_path / "c", "--minutes", "0.01", "--schedule", "cosine",
                 "--lr", "0.01") == 0
    lr = json.loads((tmp_path / "c" / "history.json").read_text())["lr"]
    assert len(lr) > 3 and lr[0] > lr[-1] >= 0.01 * 0.05
    assert all(a >= b for a, b in zip(lr, lr[1:]))


def test_plateau_resume_gets_the_same_rates(tmp_path, text_file):
    """The resumed run replays the loaded validation history into the schedule."""
    common = ["--schedule", "plateau", "--eval-every", "1", "--lr", "0.5"]
    assert train(text_file, tmp_path / "full", "--steps", "40", *common) == 0
    assert train(text_file, tmp_path / "half", "--steps", "35", *common) == 0
    assert train(text_file, tmp_path / "half", "--steps", "40", "--resume",
                 str(tmp_path / "half"), *common) == 0
    full = json.loads((tmp_path / "full" / "history.json").read_text())
    resumed = json.loads((tmp_path / "half" / "history.json").read_text())
    assert full["lr"][34] < 0.5      # it cut before the split (else the test shows nothing)
    assert resumed["lr"] == full["lr"]
