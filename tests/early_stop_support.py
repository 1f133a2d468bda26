"""A sweep with an early_stop rule for the tests of the fleet, the app and the report: 9 cells (3 learning rates x
3 warm-ups) on the tiny config, and curves the simulated provider's runs print (sim.py `Script(curve=...)`)."""

from __future__ import annotations

from pathlib import Path

from usim_core.sweep import Sweep, expand

BASE = Path(__file__).resolve().parents[1] / "configs/runs/burgers_tiny.yaml"
N_EPOCHS = 10


def es_sweep(tmp_path: Path, *, concurrency: int = 9, budget: float = 5.0, grace: int = 20, eta: int = 3,
             min_compared: int = 3, continue_best: int = 0) -> Sweep:
    """Rungs at 20% and 60% of the operator's epochs by default."""
    (tmp_path / "sweeps").mkdir(exist_ok=True)
    path = tmp_path / "sweeps" / "es.yaml"
    path.write_text(f"""
name: es
base: {BASE}
budget: {budget}
concurrency: {concurrency}
planning: {{price_per_hour: 0.4, hours_per_cell: 0.1}}
early_stop: {{metric: val/operator/loss, unit: percent, grace: {grace}, eta: {eta}, min_compared: {min_compared},
             continue_best: {continue_best}}}
rounds:
  - name: a
    grid:
      - {{key: stages.operator.lr, name: lr, values: [1.0e-4, 3.0e-4, 1.0e-3], format: sci}}
      - {{key: stages.operator.warmup, name: warmup, short: w, values: [0.0, 0.05, 0.1], format: pct}}
""")
    return expand(path)


def ranked_curve(rank: int) -> tuple[float, ...]:
    """Cell `rank` (0 best) ends at 0.1 x (1 + rank); every cell starts at 1 and approaches its end."""
    end = 0.1 * (1 + rank)
    return tuple(end + (1 - end) * 0.6 ** (e + 1) for e in range(N_EPOCHS))
