"""Plain records the report is built from: gathered from the ledger and eval JSONs by `data.py`,
or built by hand in tests. No I/O, no Textual, no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from usim_core.eval.schema import PRIMARY_METRIC

PRIMARY = PRIMARY_METRIC  # per-frame nRMSE: what the report ranks by


@dataclass
class Phase:
    """One span of an instance's life on the timeline."""

    state: str          # pending, loading, running, exited, destroyed
    start: float
    end: float


@dataclass
class AttemptRecord:
    attempt_id: int
    cell: str
    attempt: int
    state: str                      # provider state or "destroyed"
    reason: str | None              # taxonomy of usim_tui.fleet (finished, startup_timeout, ...)
    price_per_hour: float
    created_at: float | None
    started_at: float | None
    ended_at: float | None
    spent: float = 0.0
    gpu: str | None = None
    machine_id: str | None = None
    error: str | None = None        # message of the run's `error` event, or the provider's status
    phases: list[Phase] = field(default_factory=list)
    results: str | None = None      # SSH hosts: what was pulled back before destroy, or "results lost: why"
    bid: float | None = None        # interruptible: the bid in force (None: on demand)
    saved: float = 0.0              # about what the bid saved against its host's on-demand price
    resumed_from: int | None = None  # the attempt whose resume point it started from
    lost_s: float = 0.0             # training its host lost to an interruption

    @property
    def label(self) -> str:
        return f"{self.cell}#{self.attempt}"


@dataclass
class EvalRecord:
    """One eval JSON (small or full) of a cell's finishing attempt."""

    split: str                                  # the eval's name: "full" (test) or "small" (val)
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)   # persistence, fno
    ttc_gain: float | None = None
    source: str = ""                            # the file it came from (or "ledger")
    data_split: str = ""                        # the JSON's own split (val, test); "" when unknown (ledger)


@dataclass
class CellRecord:
    name: str
    round: str
    state: str                                  # pending, launching, running, finished, failed, stopped_early,
                                                # duplicate
    tags: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    duplicate_of: str | None = None
    reason: str | None = None
    cost: float = 0.0
    config_hash: str = ""
    params: dict[str, Any] = field(default_factory=dict)   # capacity etc. from the resolved config
    evals: list[EvalRecord] = field(default_factory=list)  # full first when present
    train_seconds: float | None = None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)   # metric key -> (step, value)
    wandb_url: str | None = None
    keep: bool = False                          # a person keeps it from the stopping rule
    continued: bool = False                     # stopped early, then trained again to the full length

    @property
    def eval(self) -> EvalRecord | None:
        return self.evals[0] if self.evals else None

    @property
    def metrics(self) -> dict[str, float]:
        return self.eval.metrics if self.eval else {}

    @property
    def val(self) -> EvalRecord | None:
        """The eval on val (by the JSON's own split; the one named small when that is unknown): what ranks cells
        and chooses the champion, as `usim-core leaderboard` does; test numbers never do."""
        return next((e for e in self.evals if e.data_split == "val"
                     or (not e.data_split and e.split == "small")), None)

    def val_score(self, metric: str) -> float | None:
        v = self.val.metrics.get(metric) if self.val else None
        return v if v is not None and math.isfinite(v) else None

    def axis_values(self) -> dict[str, str]:
        """Grid axes from tags: `lr=1e-3` -> {"lr": "1e-3"}."""
        return dict(t.split("=", 1) for t in self.tags if "=" in t)


@dataclass
class RungRecord:
    """One judgement of the stopping rule: a cell's metric at a rung against the cut-off of those compared."""

    cell: str
    attempt_id: int | None
    rung: int
    position: int            # where in the stage the value was read, in the rule's unit
    value: float
    compared: int
    cutoff: float
    stop: bool
    keep: bool
    why: str


@dataclass
class EarlyStopRecord:
    """The sweep's `early_stop:` block, what the rule judged, and what it read: each attempt's metric by position."""

    metric: str
    stage: str
    unit: str                # epochs, steps or percent (of the cell's own epochs of the stage)
    grace: int
    eta: int
    min_compared: int
    continue_best: int
    rungs: list[RungRecord] = field(default_factory=list)    # in the order judged
    points: dict[int, list[tuple[int, float]]] = field(default_factory=dict)   # attempt id -> (position, value)

    def rung_position(self, rung: int) -> int:
        return self.grace * self.eta ** rung


@dataclass
class ReportData:
    sweep: str
    provider: str
    now: float
    budget: float
    spent: float
    planned_cost_per_cell: float
    cells: list[CellRecord]
    attempts: list[AttemptRecord]
    crash_loop: str | None = None
    paused: bool = False                # launching paused (by the user or a crash loop)
    startup_deadline_s: float | None = None
    wandb_note: str | None = None       # why there are no W&B links, when there are none
    early_stop: EarlyStopRecord | None = None   # the sweep's stopping rule and its judgements; None without one

    def cell(self, name: str) -> CellRecord:
        for c in self.cells:
            if c.name == name:
                return c
        raise KeyError(name)
