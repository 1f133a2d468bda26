"""Read-only views of the ledger that the app and the report render (no Textual, no torch).

`Ledger.snapshot(sweep)` builds one SweepSnapshot; the app owns no state the ledger does not have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from usim_core.eval.schema import PRIMARY_METRIC
from usim_tui.fleet.store.states import AttemptState, CellState

# Eval metrics shown first in one-line summaries (the rest follow in the ledger's order).
HEADLINE_METRICS = (PRIMARY_METRIC, "nrmse_rollout", "nrmse_1step", "mass_drift", "energy_violation")


def headline(metrics: dict[str, float], n: int = 3) -> str:
    keys = [k for k in HEADLINE_METRICS if k in metrics] + [k for k in metrics if k not in HEADLINE_METRICS]
    return ", ".join(f"{k}={metrics[k]:.4g}" for k in keys[:n])


@dataclass(frozen=True)
class AttemptView:
    attempt_id: int                  # ledger primary key; the app's row key
    cell: str
    attempt: int
    state: AttemptState
    reason: str | None               # taxonomy: no_capacity, startup_timeout, container_error, exited_error,
                                     # offline, outbid, budget, user, finished
    provider_id: str | None
    label: str
    gpu: str | None
    machine_id: str | None
    price_per_hour: float
    created_at: float | None
    started_at: float | None
    ended_at: float | None
    stage: str | None                # current training stage from the events
    epoch: int | None
    step: int | None
    last_loss: float | None
    loss_history: tuple[float, ...] = ()   # downsampled train loss, for sparklines
    spent: float = 0.0
    message: str | None = None       # why it ended (error line, status_msg, exit code), when it did
    num_gpus: int = 1                # GPUs of its host (its price is that host's)
    bid: float | None = None         # interruptible: the bid in force; None on demand
    on_demand_per_hour: float | None = None   # interruptible: its host's on-demand price
    resumed_from: int | None = None  # the attempt whose resume point it started from
    resumed_step: int | None = None  # where it last resumed (and in which stage)
    resumed_stage: str | None = None
    checkpoint: str | None = None    # the resume point last pulled from it
    lost_s: float = 0.0              # training its host lost to an interruption

    @property
    def saved(self) -> float:
        """About what renting at a bid saved against its host's on-demand price (its spend scaled by the
        ratio of the prices; storage bills the same either way, so this slightly overstates)."""
        if self.bid is None or not self.on_demand_per_hour or self.price_per_hour <= 0:
            return 0.0
        return max(0.0, self.spent * (self.on_demand_per_hour / self.price_per_hour - 1))


@dataclass(frozen=True)
class CellView:
    name: str
    round: str
    tags: tuple[str, ...]
    overrides: dict[str, Any]
    state: CellState
    attempts: int
    duplicate_of: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)   # the result: full (test) eval, else small (val)
    small_metrics: dict[str, float] = field(default_factory=dict)   # the `eval` event named small
    full_metrics: dict[str, float] = field(default_factory=dict)    # the `eval` event named full
    cost: float = 0.0
    reason: str | None = None        # why it failed or was stopped early, when it was
    num_gpus: int = 1                # GPUs of its host: it trains data-parallel over all of them
    relaunch_waiting: bool = False   # a relaunch the controller took, waiting for its attempt to start
    lost_s: float = 0.0              # training its attempts' hosts lost to interruptions (outbid, lost hosts)
    interrupted: tuple[str, ...] = ()   # why each attempt that lost its host after its run started lost it
    keep: bool = False               # a person keeps it: the stopping rule never stops it (fleet/stopping/)
    continued: bool = False          # stopped early, then launched again to the full length


@dataclass(frozen=True)
class BudgetView:
    budget: float
    spent: float
    committed: float                 # remaining expected cost of live attempts
    burn_per_hour: float             # $/h of everything live now
    storage_per_hour: float          # $/h of stopped instances (the money people forget)
    projected_total: float
    projected_finish: float | None   # unix time
    provider_reported: float | None = None   # spend by the provider's own figures (Vast: account credit used
                                             # since the sweep began), None where it reports none
    attempt_price: float = 0.0               # $/h a new attempt is planned at (on provider.num_gpus GPUs)
    attempt_cost: float = 0.0                # its expected cost (planning hours per cell x that price)


@dataclass(frozen=True)
class EventView:
    t: float
    attempt_id: int | None
    cell: str | None
    kind: str
    message: str
    data: dict[str, Any] | None = None   # the structured event: a trainer event as read, or the controller's
                                         # own fields (a state change: {"from": ..., "to": ...})


@dataclass(frozen=True)
class QueuedView:
    command: str
    args: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class SweepSnapshot:
    sweep: str
    provider: str
    now: float
    paused: bool
    auto: bool
    cells: tuple[CellView, ...]
    attempts: tuple[AttemptView, ...]
    budget: BudgetView
    events: tuple[EventView, ...] = ()
    provider_status: str = "ok"      # "ok" or a one-line description of the last failing poll
    crash_loop: str | None = None    # the shared error when launching was paused for a crash loop
    controller_pid: int | None = None         # the controller process that holds the ledger (daemon.py)
    controller_seen_at: float | None = None   # its last tick (unix time): the heartbeat
    controller_state: str | None = None       # running | stopped | crashed
    controller_poll: float | None = None      # its poll interval (seconds)
    budget_stop: bool = False                 # the budget cap was reached: everything destroyed, nothing launches
    queued: tuple[QueuedView, ...] = ()       # commands sent to the controller that it has not taken yet
    controller_held: bool | None = None       # a live process holds the ledger's controller lock (the app probes
                                              # it: the heartbeat stops during a long tick); None: not probed


def summary_line(snap: SweepSnapshot) -> str:
    """One line for the end of a run: cells per state, spend and burn, the crash loop if any."""
    counts: dict[str, int] = {}
    for c in snap.cells:
        counts[c.state] = counts.get(c.state, 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in counts.items())
    extra = f" | {snap.crash_loop}" if snap.crash_loop else ""
    return (f"{snap.sweep}: {parts} | spent ${snap.budget.spent:.4f} of ${snap.budget.budget:.2f}, "
            f"burn ${snap.budget.burn_per_hour:.2f}/h{extra}")
