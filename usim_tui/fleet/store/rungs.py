"""What the early-stopping rule reads of an attempt, in the rule's own unit: the points its metric took as the
stage went on, and where the stage ends: what the controller judges (fleet/control/early_stop.py) and what the
report's rungs figure draws."""

from __future__ import annotations

from usim_core.sweep import EarlyStop
from usim_tui.fleet.store.ledger import Ledger


def rule_positions(es: EarlyStop, series: dict[str, list[tuple[int, float]]],
                   plan: dict | None) -> tuple[list[tuple[int, float]], int]:
    """(position, value) of `es.metric` oldest first, in `es.unit` (optimiser steps, the stage's epochs counted
    from 1, or percent of the cell's own epochs of the stage), and the stage's end in that unit; none and 0
    while the stage has not started (`plan`: its `stage_start` event)."""
    if plan is None:
        return [], 0
    epochs = dict(series.get(f"{es.stage}/epoch", []))
    n_epochs, n_steps = int(plan.get("epochs") or 0), int(plan.get("steps") or 0)
    out = []
    for step, value in series.get(es.metric, []):
        epoch = epochs.get(step)
        if es.unit == "steps":
            out.append((step, value))
        elif epoch is not None and es.unit == "epochs":
            out.append((int(epoch) + 1, value))
        elif epoch is not None and n_epochs:
            out.append((int(100 * (int(epoch) + 1) / n_epochs), value))
    return out, {"steps": n_steps, "epochs": n_epochs, "percent": 100}[es.unit]


def attempt_rule_positions(ledger: Ledger, attempt_id: int, es: EarlyStop) -> tuple[list[tuple[int, float]], int]:
    """An attempt's rule_positions from the ledger (a resumed attempt's curve runs on from its source's)."""
    series = ledger.run_on_series([attempt_id], [es.metric, f"{es.stage}/epoch"], max_points=10_000)[attempt_id]
    return rule_positions(es, series, ledger.stage_events(attempt_id, es.stage))


def attempt_rule_points(ledger: Ledger, attempt_id: int, es: EarlyStop) -> list[tuple[int, float]]:
    """An attempt's rule points (rule_positions) from the ledger."""
    return attempt_rule_positions(ledger, attempt_id, es)[0]
