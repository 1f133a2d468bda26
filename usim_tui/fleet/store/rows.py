"""Typed rows: what the ledger returns. One small immutable type per table, built from SQLite rows in one
place (`from_row`), so no other module indexes a raw row or knows a column's JSON encoding.

The controller reads every attempt several times a poll (1000s at scale), so the hot rows are NamedTuples
(ten times cheaper to build than frozen dataclasses). Change a row by asking the ledger
(`set_attempt(id, **fields)`), then read it again; `row._replace(...)` makes a modified copy for a decision
that must not be written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from usim_core.sweep import Cell
from usim_tui.fleet.store.states import GONE, LIVE, AttemptState, CellState


def columns(row_type: type[tuple]) -> str:
    """The SELECT list for a NamedTuple row type: its fields are columns of one table, in its order."""
    return ", ".join(row_type._fields)  # type: ignore[attr-defined]


class SweepRow(NamedTuple):
    name: str
    provider: str
    path: str
    spec_json: str
    budget: float
    paused: int = 0
    auto: int = 1
    crash_loop: str | None = None          # the shared error when launching was paused for a crash loop
    crash_loop_cleared_at: float = 0.0     # failures before this time (a person's resume) are forgiven
    budget_stop: int = 0                   # 1 once the cap was reached: nothing launches until a relaunch
    provider_status: str = "ok"
    controller_seen_at: float | None = None
    created_at: float = 0.0
    credit_start: float | None = None      # provider account credit at the sweep's first reading (Vast)
    credit_now: float | None = None
    credit_at: float | None = None
    controller_pid: int | None = None          # the controller process holding the ledger (daemon.py)
    controller_host: str | None = None
    controller_started_at: float | None = None
    controller_state: str | None = None        # running | stopping | stopped | crashed
    runs_root: str | None = None               # where its local run directories are (the controller's)
    controller_poll: float | None = None       # its poll interval: a heartbeat older than a few is stale
    wheel_sha256: str | None = None            # the wheel pushed to hosts (built from the sweep's checkout)


@dataclass(frozen=True)
class CellRow:
    """A cell's ledger state. What is stored as JSON (its definition, its eval metrics) is decoded on first use:
    the controller reads every cell several times a poll and rarely needs them."""

    sweep: str
    name: str
    duplicate_of: str | None
    ord: int
    state: CellState
    reason: str | None
    not_before: float                      # back-off: not launched before this time
    counted_from: int                      # attempts up to this number no longer count against the limits
    num_gpus: int = 1                      # GPUs of its host: it trains data-parallel over all of them
    keep: int = 0                          # a person keeps it running: the stopping rule never stops it
    continued: int = 0                     # stopped early, then launched again to the full length
    stored: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the raw row

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CellRow:
        return cls(sweep=row["sweep"], name=row["name"], duplicate_of=row["duplicate_of"], ord=row["ord"],
                   state=CellState(row["state"]), reason=row["reason"], not_before=row["not_before"],
                   counted_from=row["counted_from"], num_gpus=row["num_gpus"], keep=row["keep"],
                   continued=row["continued"], stored=row)

    @cached_property
    def cell(self) -> Cell:
        """The cell as the sweep file defined it (name, resolved config, tags, ...)."""
        r = self.stored
        return Cell(name=r["name"], round=r["round"], tags=json.loads(r["tags_json"]),
                    overrides=json.loads(r["overrides_json"]), config=json.loads(r["config_json"]),
                    config_hash=r["config_hash"], duplicate_of=r["duplicate_of"], run_id=r["run_id"],
                    num_gpus=r["num_gpus"])

    @cached_property
    def small_metrics(self) -> dict[str, float]:
        """The last `eval` event named small (the val subset)."""
        return json.loads(self.stored["small_metrics_json"]) if self.stored else {}

    @cached_property
    def full_metrics(self) -> dict[str, float]:
        """The last `eval` event named full (the test split)."""
        return json.loads(self.stored["full_metrics_json"]) if self.stored else {}

    @property
    def metrics(self) -> dict[str, float]:
        """The cell's result: the full (test) eval where there is one, else the small one."""
        return self.full_metrics or self.small_metrics


class AttemptRow(NamedTuple):
    id: int
    sweep: str
    cell: str
    attempt: int
    label: str                             # usim:<sweep>:<cell>:<attempt>, the key that repairs a crash
    state: AttemptState
    reason: str | None = None              # an EndReason once it ended (or is ending)
    message: str | None = None             # why it ended, in one line
    provider_id: str | None = None
    machine_id: str | None = None
    gpu: str | None = None
    price_per_hour: float = 0.0
    storage_per_hour: float = 0.0
    status_msg: str | None = None
    exit_code: int | None = None
    run_dir: str | None = None
    created_at: float | None = None
    started_at: float | None = None        # the provider first listed it running
    ended_at: float | None = None
    started_event: int = 0                 # the trainer's `started` event was read
    done_event: int = 0                    # its `done` event was read: the run finished
    error_event: str | None = None         # its `error` event's reason
    stage: str | None = None
    epoch: int | None = None
    step: int | None = None
    last_loss: float | None = None
    spent: float = 0.0                     # billed so far, by our accrual (reconciled up to provider_cost)
    billed_until: float | None = None
    provider_cost: float | None = None
    destroy_failures: int = 0
    state_since: float | None = None       # when it entered its current state
    host_started_at: float | None = None   # SSH hosts: when the run was brought up on the instance
    results: str | None = None             # SSH hosts: what came back before destroy, or "results lost: why"
    num_gpus: int = 1                      # GPUs of the host it was launched for (its price is that host's)
    bid: float | None = None               # interruptible: the bid in force ($/h of its GPUs); None on demand
    on_demand_per_hour: float | None = None  # interruptible: what its host costs on demand (what a bid saves)
    checkpoint: str | None = None          # the resume point last pulled from its host during training
    checkpoint_at: float | None = None     # when that pull finished
    resumed_from: int | None = None        # the attempt number of its cell whose resume point it started from
    resumed_stage: str | None = None       # the stage and step it last resumed at (its trainer's stage_start
    resumed_step: int | None = None        # says; a comeback of its own instance resumes in place from its disk)
    lost_s: float = 0.0                    # training its host lost: trained past the point the cell resumed from

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> AttemptRow:
        """From `SELECT {columns(AttemptRow)}`: the state as an AttemptState."""
        return cls(*row[:5], AttemptState(row[5]), *row[6:])

    @property
    def live(self) -> bool:
        return self.state in LIVE

    @property
    def gone(self) -> bool:
        return self.state in GONE


class IntentRow(NamedTuple):
    id: int
    sweep: str
    attempt_id: int | None
    action: str                            # create | destroy
    label: str | None
    provider_id: str | None
    t: float
    outcome: str | None = None             # None: the call's outcome was never recorded (a crash in between)
    outcome_t: float | None = None
    detail: str | None = None


class RungRow(NamedTuple):
    """One cell judged at one rung by the stopping rule (fleet/stopping/)."""

    id: int
    sweep: str
    cell: str
    attempt_id: int | None
    rung: int
    position: int
    value: float
    compared: int
    cutoff: float
    stop: int
    keep: int
    why: str
    t: float


@dataclass(frozen=True)
class CommandRow:
    id: int
    sweep: str
    command: str
    args: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    taken_at: float | None = None
    result: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CommandRow:
        return cls(id=row["id"], sweep=row["sweep"], command=row["command"], args=json.loads(row["args_json"]),
                   created_at=row["created_at"], taken_at=row["taken_at"], result=row["result"])
