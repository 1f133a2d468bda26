"""The stopping rule: successive halving across a sweep's cells, decided by Optuna's `SuccessiveHalvingPruner`
through ask-and-tell (one trial per cell, its values reported at the rungs), not rewritten here.

What usim adds around it: a cell's verdict counts only once `min_compared` cells have reached the rung (Optuna
judges the second trial against the first alone), a cell a person keeps is reported but never stopped, and the
whole study is rebuilt from the ledger's rung rows on a restart (`replay`), in the order they were judged, so a
restarted controller decides as the first one did. No torch; Optuna is imported here only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
from optuna.pruners import SuccessiveHalvingPruner
from optuna.trial import Trial

from usim_core.sweep import EarlyStop

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Judgement:
    """One cell at one rung: what it scored, against what, and whether it is stopped there."""

    cell: str
    rung: int            # 0, 1, 2, ... (rung k lies at grace x eta^k)
    position: int        # where in the stage the value was read (in the rule's unit)
    value: float
    compared: int        # cells with a value at this rung, this one included
    cutoff: float        # the worst value that goes on (the best 1 in eta of those compared)
    stop: bool           # the verdict carried out: Optuna rejects it, enough were compared, nobody keeps it
    why: str             # one line for the journal and the cell's reason

    def reason(self, es: EarlyStop) -> str:
        return (f"stopped early at rung {self.rung} ({self.position} {es.unit}): {es.metric} {self.value:.4g}, "
                f"cut-off {self.cutoff:.4g} ({self.compared} cells compared)")


class Rule:
    def __init__(self, es: EarlyStop) -> None:
        self.es = es
        self.study = optuna.create_study(
            direction="minimize", storage=optuna.storages.InMemoryStorage(),
            pruner=SuccessiveHalvingPruner(min_resource=es.grace, reduction_factor=es.eta,
                                           min_early_stopping_rate=0, bootstrap_count=0))
        self.trials: dict[str, Trial] = {}
        self.values: dict[int, dict[str, float]] = {}    # rung -> cell -> its value there

    def judged(self, cell: str) -> int:
        """How many rungs the cell has been judged at."""
        return sum(1 for v in self.values.values() if cell in v)

    def judge(self, cell: str, rung: int, position: int, value: float, keep: bool = False) -> Judgement:
        """The cell's value read at `position` (>= the rung's): told to Optuna, its verdict taken where it counts.
        Rungs are judged in order, once per cell."""
        if rung != self.judged(cell):
            raise ValueError(f"{cell}: rung {rung} judged out of order (next is {self.judged(cell)})")
        if position < self.es.rung_position(rung):
            raise ValueError(f"{cell}: position {position} is before rung {rung} ({self.es.rung_position(rung)})")
        trial = self.trials.get(cell) or self.trials.setdefault(cell, self.study.ask())
        value = float(value) if math.isfinite(value) else math.inf   # a diverged run is the worst, not unjudged
        trial.report(value, position)
        rejected = trial.should_prune()
        here = self.values.setdefault(rung, {})
        here[cell] = value
        compared = sorted(here.values())
        cutoff = compared[max(len(compared) // self.es.eta - 1, 0)]
        if len(compared) < self.es.min_compared:
            why = f"goes on: only {len(compared)} of the {self.es.min_compared} cells needed to compare have got here"
        elif not rejected:
            why = f"goes on: in the best 1 in {self.es.eta} of {len(compared)}"
        elif keep:
            why = "kept by a person: the rule would stop it"
        else:
            why = "stopped"
        stop = rejected and not keep and len(compared) >= self.es.min_compared
        return Judgement(cell, rung, position, value, len(compared), cutoff, stop, why)

    def replay(self, rows: list[tuple[str, int, int, float, bool]]) -> int:
        """Rebuild the study from the ledger's rung rows (cell, rung, position, value, keep), in judged order;
        returns how many did not fit this rule (a sweep file whose early_stop: changed since) and were left out."""
        misfits = 0
        for cell, rung, position, value, keep in rows:
            try:
                self.judge(cell, rung, position, value, keep)
            except ValueError:
                misfits += 1
        return misfits
