"""Typed rows: what the ledger returns. Small frozen dataclasses, one per table, built from SQLite rows in
one place (`from_row`), so no other module indexes a raw row or knows a column's JSON encoding.

Change a row by asking the ledger (`set_attempt(id, **fields)`), then read it again; `dataclasses.replace`
makes a modified copy for a decision that must not be written.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, fields
from typing import Any, Self

from usim_core.sweep import Cell
from usim_tui.fleet.states import GONE, LIVE, AttemptState, CellState


class _Row:
    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Self:
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row.keys()})  # type: ignore[call-arg,arg-type]


@dataclass(frozen=True)
class SweepRow(_Row):
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


@dataclass(frozen=True)
class CellRow:
    sweep: str
    cell: Cell                             # the cell as the sweep file defined it (name, resolved config, ...)
    ord: int
    state: CellState
    reason: str | None
    small_metrics: dict[str, float]        # the last `eval` event named small (val subset)
    full_metrics: dict[str, float]         # the last `eval` event named full (test split)
    not_before: float                      # back-off: not launched before this time
    counted_from: int                      # attempts up to this number no longer count against the limits

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CellRow:
        cell = Cell(name=row["name"], round=row["round"], tags=json.loads(row["tags_json"]),
                    overrides=json.loads(row["overrides_json"]), config=json.loads(row["config_json"]),
                    config_hash=row["config_hash"], duplicate_of=row["duplicate_of"], run_id=row["run_id"])
        return cls(
            sweep=row["sweep"], cell=cell, ord=row["ord"], state=CellState(row["state"]), reason=row["reason"], small_metrics=json.loads(row["small_metrics_json"]),
            full_metrics=json.loads(row["full_metrics_json"]), not_before=row["not_before"],
            counted_from=row["counted_from"])

    @property
    def name(self) -> str:
        return self.cell.name

    @property
    def duplicate_of(self) -> str | None:
        return self.cell.duplicate_of

    @property
    def metrics(self) -> dict[str, float]:
        """The cell's result: the full (test) eval where there is one, else the small one."""
        return self.full_metrics or self.small_metrics


@dataclass(frozen=True)
class AttemptRow(_Row):
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", AttemptState(self.state))

    @property
    def live(self) -> bool:
        return self.state in LIVE

    @property
    def gone(self) -> bool:
        return self.state in GONE


@dataclass(frozen=True)
class IntentRow(_Row):
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


@dataclass(frozen=True)
class CommandRow(_Row):
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
