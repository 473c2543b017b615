"""Learning-rate schedules: values at known steps."""

from __future__ import annotations

import math

import pytest

from scratchrnn.training.schedules import (
    Constant,
    Cosine,
    LinearWarmup,
    StepDecay,
    make_schedule,
)


def test_step_decay():
    s = StepDecay(1.0, step_size=10, gamma=0.5)
    assert [s(t) for t in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]


def test_cosine():
    s = Cosine(1.0, total_steps=100, min_lr=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.55)
    assert s(100) == pytest.approx(0.1)
    assert s(500) == pytest.approx(0.1)
    assert s(25) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_warmup():
    s = LinearWarmup(Constant(0.4), warmup_steps=4)
    assert [s(t) for t in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])


def test_make_schedule():
    s = make_schedule("cosine", 2.0, total_steps=10, warmup_steps=2)
    assert isinstance(s, LinearWarmup) and s(0) == pytest.approx(1.0)
    assert make_schedule("step", 1.0, 30)(10) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="schedule: expected 'constant', 'cosine' or 'step', "
                                         "got 'exp'"):
        make_schedule("exp", 1.0, 10)
    with pytest.raises(ValueError, match="total_steps"):
        Cosine(1.0, 0)
