"""Defaults that depend on the corpus and the budget: regularise only when the run will
see the text many times.

A run that passes over its text a few times does not overfit, and dropout only
slows it down; one that passes over it dozens of times does. Measured with the
main job's model (LSTM-256, batch 32 × 64, Adam 3e-3): on the embedded corpus
(442,000 training characters, 2 minutes, about 11 passes) the validation loss
still falls at the end without dropout (1.11-1.13 nats/char); on Tiny
Shakespeare (1.06 M characters, 15 minutes, about 34 passes) it was best after
3.5 minutes (1.599, about 8 passes) and rose to 1.681 by the end. So with more
than ``MANY_PASSES`` expected passes the defaults become two layers, dropout
``DROPOUT``, Adam at ``LR`` and the ``cosine`` schedule over the budget (over
the steps, or under ``--minutes`` over the time: the full rate for
``COSINE_HOLD`` of it, then down to ``COSINE_FLOOR`` of itself as the time
runs out), otherwise one layer,
dropout 0 and a constant 3e-3, as before. On Tiny Shakespeare, 15 minutes on a
shared 2-core machine (about a third of it each): one layer with dropout
0.2-0.25 levelled off at 1.584-1.585 (5,300-5,500 steps); two layers reached
1.555 in 3,100 steps and were still improving (benchmarks/RESULTS.md). The
hold: the best plateau-schedule run kept the full rate for about 40 % of its
steps; a cosine from the start, on a machine whose first minutes were slow,
had annealed to a third of the rate before most of its steps were taken and
ended at 1.569 (benchmarks/RESULTS.md).

Expected passes = characters the budget will process / training characters;
under ``--minutes`` the characters are estimated at ``REFERENCE_CHARS_PER_S``,
the main job's speed on the 2-core machine its figures come from. An option
the user sets is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass

REFERENCE_CHARS_PER_S = 40_000   # the main job's median training step, 2 Zen 5 cores
MANY_PASSES = 12.0               # above this many passes, regularise
SCHEDULE = "cosine"              # and anneal the rate over the budget
COSINE_FLOOR = 0.05              # a time-budget cosine ends at this fraction of the rate
COSINE_HOLD = 0.4                # after holding the full rate for this fraction of the time
DROPOUT = 0.2                    # dropout then (on the recurrent output, between layers)
LAYERS = 2                       # and a second layer, with a lower rate
LR = 2e-3


@dataclass(frozen=True)
class BudgetDefaults:
    """The options a long budget changes, and the passes they were chosen for."""
    dropout: float      # --dropout
    schedule: str       # --schedule
    layers: int         # --layers
    lr: float           # --lr
    passes: float       # the expected passes over the training text they were chosen for


def expected_passes(train_chars: int, batch_size: int, seq_len: int, steps: int | None,
                    minutes: float | None,
                    chars_per_s: float = REFERENCE_CHARS_PER_S) -> float:
    """How many times the run is expected to pass over its ``train_chars`` characters."""
    if steps is not None:
        seen = steps * batch_size * seq_len
    else:
        seen = (minutes or 0.0) * 60.0 * chars_per_s
    return seen / max(train_chars, 1)


def budget_defaults(train_chars: int, batch_size: int, seq_len: int, steps: int | None,
                    minutes: float | None) -> BudgetDefaults:
    """Dropout and schedule for a run of this size (see the module docstring)."""
    passes = expected_passes(train_chars, batch_size, seq_len, steps, minutes)
    if passes > MANY_PASSES:
        return BudgetDefaults(DROPOUT, SCHEDULE, LAYERS, LR, passes)
    return BudgetDefaults(0.0, "constant", 1, 3e-3, passes)
