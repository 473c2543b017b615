"""Learning-rate schedules: values at known steps."""

from __future__ import annotations

import math

import pytest

from scratchrnn.training.schedules import (
    BudgetCosine,
    Constant,
    Cosine,
    LinearWarmup,
    Plateau,
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
    with pytest.raises(ValueError, match="schedule: expected 'constant', 'cosine', 'step' or "
                                         "'plateau', got 'exp'"):
        make_schedule("exp", 1.0, 10)
    with pytest.raises(ValueError, match="total_steps"):
        Cosine(1.0, 0)


def test_plateau_cuts_after_patience_evaluations_without_improvement():
    s = Plateau(1.0, factor=0.5, patience=2)
    for step, loss in [(100, 2.0), (200, 1.5), (300, 1.6), (400, 1.5), (500, 1.4), (600, 1.41),
                       (700, 1.42), (800, 1.43), (900, 1.44), (1000, 1.3)]:
        s.observe(step, loss)
    # 300, 400: no better than 1.5 -> cut after 400; 600, 700 -> cut after 700; 800, 900 -> 900
    assert s.cuts == [400, 700, 900]
    assert [s(t) for t in (0, 399, 400, 699, 700, 900, 5000)] == [1, 1, .5, .5, .25, .125, .125]


def test_plateau_threshold_and_min_lr():
    s = Plateau(1.0, patience=1, threshold=0.01, min_lr=0.3)
    s.observe(1, 1.0)
    s.observe(2, 0.995)           # better, but by less than 1 %: counts as no improvement
    s.observe(3, 0.5)
    s.observe(4, 0.5)
    assert s.cuts == [2, 4] and s(2) == 0.5 and s(4) == 0.3


def test_plateau_replayed_history_gives_the_same_rates():
    """A resumed run feeds the loaded history: its rates equal the uninterrupted run's."""
    history = [(100, 2.0), (200, 2.1), (300, 2.2), (400, 1.9), (500, 1.95), (600, 1.96)]
    full = Plateau(0.01)
    rates = []
    for t in range(700):                      # the trainer: evaluate after step t, then rate t
        if t and t % 100 == 0:
            full.observe(*history[t // 100 - 1])
        rates.append(full(t))
    resumed = make_schedule("plateau", 0.01, 1, warmup_steps=0)
    for step, loss in history[:3]:            # the checkpoint at step 350 held these
        resumed.observe(step, loss)
    for t in range(350, 700):
        if t > 350 and t % 100 == 0:
            resumed.observe(*history[t // 100 - 1])
        assert resumed(t) == rates[t]


def test_warmup_passes_observations_on():
    s = make_schedule("plateau", 1.0, 1, warmup_steps=2)
    for step in (1, 2, 3, 4, 5):
        s.observe(step, 1.0)
    assert s(10) == 0.5 and Constant(1.0).observe(1, 1.0) is None


@pytest.mark.parametrize("kw, message", [
    ({"factor": 1.0}, "factor: expected a number in"), ({"patience": 0}, "patience: expected"),
    ({"lr": 0.0}, "lr: expected a number > 0"),
])
def test_plateau_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        Plateau(**{"lr": 1.0, **kw})


def test_plateau_from_make_schedule_has_a_floor():
    """Evaluation noise may keep cutting; the CLI's plateau stops at η/8 (three cuts)."""
    from scratchrnn.training.schedules import make_schedule

    s = make_schedule("plateau", 2e-3, 1)
    for step in range(0, 400, 10):
        s.observe(step, 1.0)               # never better: a cut every `patience` evaluations
    assert len(s.cuts) > 3
    assert s(10_000) == pytest.approx(2e-3 / 8)


class FakeClock:
    """Seconds trained so far, set by the test (no wall clock)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_budget_cosine_follows_the_time_spent():
    clock = FakeClock()
    s = BudgetCosine(1.0, seconds=100.0, min_lr=0.1, clock=clock)
    rates = []
    for now in (0.0, 25.0, 50.0, 100.0, 250.0):
        clock.now = now
        rates.append(s(step=7))                       # the step number does not matter
    assert rates == pytest.approx([1.0, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)),
                                   0.55, 0.1, 0.1])


def test_budget_cosine_is_cosine_over_the_steps_the_pace_predicts():
    """At a steady 0.25 s a step, a 100 s budget holds 400 steps: the same rates."""
    clock = FakeClock()
    budget, by_steps = BudgetCosine(2e-3, 100.0, 1e-4, clock), Cosine(2e-3, 400, 1e-4)
    for t in range(0, 420, 7):
        clock.now = 0.25 * t
        assert budget(t) == pytest.approx(by_steps(t))


def test_budget_cosine_ends_with_the_time_when_the_pace_changes():
    """Twice as slow after half the budget: fewer steps, and the anneal still ends at the end."""
    clock, rates = FakeClock(), []
    s = BudgetCosine(1.0, 100.0, 0.05, clock)
    t = 0
    while clock.now < 100.0:
        rates.append(s(t))
        clock.now += 0.25 if clock.now < 50.0 else 0.5
        t += 1
    assert t == 300                                   # 200 fast steps + 100 slow ones
    assert rates[200] == pytest.approx(0.525)         # half the time: half way down
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert rates[-1] == pytest.approx(0.05, abs=1e-4)


def test_budget_cosine_before_it_has_a_clock_and_bad_values():
    assert BudgetCosine(0.5, 10.0)(0) == 0.5         # not started: the full rate
    with pytest.raises(ValueError, match="seconds"):
        BudgetCosine(0.5, 0.0)
    with pytest.raises(ValueError, match="lr"):
        BudgetCosine(-1.0, 10.0)


def test_make_schedule_cosine_over_a_time_budget():
    clock = FakeClock()
    s = make_schedule("cosine", 1.0, None, seconds=60.0, min_lr=0.1, clock=clock)
    assert isinstance(s, BudgetCosine)
    clock.now = 30.0
    assert s(3) == pytest.approx(0.55)
    assert isinstance(make_schedule("cosine", 1.0, 100, seconds=60.0), Cosine)  # steps win
    with pytest.raises(ValueError, match="total_steps or seconds"):
        make_schedule("cosine", 1.0, None)


def test_budget_cosine_holds_the_full_rate_first():
    """hold 0.4: the full rate for 40 % of the time, then the cosine over the other 60 %."""
    clock = FakeClock()
    s = BudgetCosine(1.0, 100.0, 0.1, clock, hold=0.4)
    for now, want in ((0.0, 1.0), (39.0, 1.0), (40.0, 1.0), (70.0, 0.55), (100.0, 0.1),
                      (130.0, 0.1)):
        clock.now = now
        assert s(0) == pytest.approx(want), now
    with pytest.raises(ValueError, match="hold"):
        BudgetCosine(1.0, 100.0, hold=1.0)
    assert make_schedule("cosine", 1.0, None, seconds=100.0, clock=clock, hold=0.4).hold == 0.4
