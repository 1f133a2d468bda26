"""The ledger: one SQLite file (WAL) per sweep, the single source of truth for the fleet.

Every provider side effect is written as an intent before the call and completed with its outcome after it,
so a controller killed at any point can be restarted over the same file and repair what it finds (by label).
Safe to open from several processes (the controller, the app, `usim-tui status`). Never stores a secret:
only configs, labels, provider ids, prices, states, events and metrics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from usim_core.config import STAGES, ConfigError
from usim_core.sweep import Sweep, SweepSpec
from usim_tui.fleet.store.budget import budget_view
from usim_tui.fleet.store.command_table import check_command
from usim_tui.fleet.store.resumes import downsample, run_on
from usim_tui.fleet.store.rows import AttemptRow, CellRow, CommandRow, IntentRow, RungRow, SweepRow, columns
from usim_tui.fleet.store.snapshot import AttemptView, CellView, EventView, QueuedView, SweepSnapshot
from usim_tui.fleet.store.states import GONE, MACHINE_REASONS, AttemptState, CellState

MIGRATIONS: list[str] = [
    # v1
    """
    CREATE TABLE sweeps (
        name TEXT PRIMARY KEY, provider TEXT NOT NULL, path TEXT NOT NULL, spec_json TEXT NOT NULL,
        budget REAL NOT NULL, paused INTEGER NOT NULL DEFAULT 0, auto INTEGER NOT NULL DEFAULT 1,
        crash_loop TEXT, crash_loop_cleared_at REAL NOT NULL DEFAULT 0, budget_stop INTEGER NOT NULL DEFAULT 0,
        provider_status TEXT NOT NULL DEFAULT 'ok', controller_seen_at REAL, created_at REAL NOT NULL
    );
    CREATE TABLE cells (
        sweep TEXT NOT NULL, name TEXT NOT NULL, round TEXT NOT NULL, tags_json TEXT NOT NULL,
        overrides_json TEXT NOT NULL, config_json TEXT NOT NULL, config_hash TEXT NOT NULL,
        duplicate_of TEXT, run_id TEXT NOT NULL, ord INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending', reason TEXT, metrics_json TEXT NOT NULL DEFAULT '{}',
        not_before REAL NOT NULL DEFAULT 0, counted_from INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (sweep, name)
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT, sweep TEXT NOT NULL, cell TEXT NOT NULL, attempt INTEGER NOT NULL,
        label TEXT NOT NULL UNIQUE, state TEXT NOT NULL, reason TEXT, message TEXT,
        provider_id TEXT, machine_id TEXT, gpu TEXT, price_per_hour REAL NOT NULL DEFAULT 0,
        storage_per_hour REAL NOT NULL DEFAULT 0, status_msg TEXT, exit_code INTEGER, run_dir TEXT,
        created_at REAL, started_at REAL, ended_at REAL, started_event INTEGER NOT NULL DEFAULT 0,
        done_event INTEGER NOT NULL DEFAULT 0, error_event TEXT,
        stage TEXT, epoch INTEGER, step INTEGER, last_loss REAL,
        spent REAL NOT NULL DEFAULT 0, billed_until REAL, provider_cost REAL, destroy_failures INTEGER NOT NULL DEFAULT 0,
        UNIQUE (sweep, cell, attempt)
    );
    CREATE INDEX attempts_cell ON attempts (sweep, cell);
    CREATE VIEW instances AS
        SELECT id AS attempt_id, sweep, cell, attempt, provider_id, label, machine_id, gpu, price_per_hour,
               storage_per_hour, state, reason, created_at, started_at, ended_at, spent FROM attempts
        WHERE provider_id IS NOT NULL;
    CREATE TABLE intents (
        id INTEGER PRIMARY KEY AUTOINCREMENT, sweep TEXT NOT NULL, attempt_id INTEGER, action TEXT NOT NULL,
        label TEXT, provider_id TEXT, t REAL NOT NULL, outcome TEXT, outcome_t REAL, detail TEXT
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, sweep TEXT NOT NULL, attempt_id INTEGER, cell TEXT, t REAL NOT NULL,
        kind TEXT NOT NULL, message TEXT NOT NULL, data_json TEXT, digest TEXT UNIQUE
    );
    CREATE INDEX events_attempt ON events (attempt_id, id);
    CREATE TABLE metrics (
        attempt_id INTEGER NOT NULL, step INTEGER NOT NULL, key TEXT NOT NULL, value REAL NOT NULL, t REAL
    );
    CREATE INDEX metrics_attempt ON metrics (attempt_id, key, step);
    CREATE TABLE spend_samples (
        sweep TEXT NOT NULL, t REAL NOT NULL, spent REAL NOT NULL, committed REAL NOT NULL,
        burn_per_hour REAL NOT NULL, provider_reported REAL
    );
    CREATE TABLE commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT, sweep TEXT NOT NULL, command TEXT NOT NULL, args_json TEXT NOT NULL,
        created_at REAL NOT NULL, taken_at REAL, result TEXT
    );
    CREATE TABLE excluded_machines (
        sweep TEXT NOT NULL, machine_id TEXT NOT NULL, reason TEXT, t REAL, PRIMARY KEY (sweep, machine_id)
    );
    CREATE TABLE preflight (
        sweep TEXT NOT NULL, fingerprint TEXT NOT NULL, ok INTEGER NOT NULL, message TEXT, t REAL,
        PRIMARY KEY (sweep, fingerprint)
    );
    """,
    # v2: the provider's own account credit (Vast /users/current), read every few minutes by the controller
    """
    ALTER TABLE sweeps ADD COLUMN credit_start REAL;
    ALTER TABLE sweeps ADD COLUMN credit_now REAL;
    ALTER TABLE sweeps ADD COLUMN credit_at REAL
    """,
    # v3: small and full eval metrics in their own columns (v2 kept both in metrics_json, full marked `_full`)
    """
    ALTER TABLE cells ADD COLUMN small_metrics_json TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE cells ADD COLUMN full_metrics_json TEXT NOT NULL DEFAULT '{}';
    UPDATE cells SET full_metrics_json = json_remove(metrics_json, '$._full')
        WHERE json_extract(metrics_json, '$._full') IS NOT NULL;
    UPDATE cells SET small_metrics_json = metrics_json WHERE json_extract(metrics_json, '$._full') IS NULL;
    ALTER TABLE cells DROP COLUMN metrics_json
    """,
    # v4: the controller process that holds the ledger (heartbeat: controller_seen_at), when each attempt
    # entered its current state (grace periods, the app's per-phase timers), SSH hosts (the wheel, bring-up,
    # what was pulled back)
    """
    ALTER TABLE sweeps ADD COLUMN controller_pid INTEGER;
    ALTER TABLE sweeps ADD COLUMN controller_host TEXT;
    ALTER TABLE sweeps ADD COLUMN controller_started_at REAL;
    ALTER TABLE sweeps ADD COLUMN controller_state TEXT;
    ALTER TABLE sweeps ADD COLUMN runs_root TEXT;
    ALTER TABLE sweeps ADD COLUMN controller_poll REAL;
    ALTER TABLE sweeps ADD COLUMN wheel_sha256 TEXT;
    ALTER TABLE attempts ADD COLUMN host_started_at REAL;
    ALTER TABLE attempts ADD COLUMN results TEXT;
    ALTER TABLE attempts ADD COLUMN state_since REAL
    """,
    # v5: the GPUs of each cell's host (a round's num_gpus) and of each attempt's, which its price is for
    """
    ALTER TABLE cells ADD COLUMN num_gpus INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE attempts ADD COLUMN num_gpus INTEGER NOT NULL DEFAULT 1
    """,
    # v6: early stopping (fleet/stopping/): each cell's judgement at each rung, in the order judged; a person's
    # keep; whether a stopped cell was launched again to the full length
    """
    CREATE TABLE rungs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, sweep TEXT NOT NULL, cell TEXT NOT NULL, attempt_id INTEGER,
        rung INTEGER NOT NULL, position INTEGER NOT NULL, value REAL NOT NULL, compared INTEGER NOT NULL,
        cutoff REAL NOT NULL, stop INTEGER NOT NULL, keep INTEGER NOT NULL, why TEXT NOT NULL, t REAL NOT NULL,
        UNIQUE (sweep, cell, rung)
    );
    ALTER TABLE cells ADD COLUMN keep INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE cells ADD COLUMN continued INTEGER NOT NULL DEFAULT 0
    """,
    # v7: interruptible instances (docs/fleet.md "Interruptible"): the bid an attempt was rented at and what its
    # host costs on demand; the resume point last pulled from it during training; the attempt of its cell it
    # resumed from, and at which stage and step; the training it lost when its host was (outbid, or lost)
    """
    ALTER TABLE attempts ADD COLUMN bid REAL;
    ALTER TABLE attempts ADD COLUMN on_demand_per_hour REAL;
    ALTER TABLE attempts ADD COLUMN checkpoint TEXT;
    ALTER TABLE attempts ADD COLUMN checkpoint_at REAL;
    ALTER TABLE attempts ADD COLUMN resumed_from INTEGER;
    ALTER TABLE attempts ADD COLUMN resumed_stage TEXT;
    ALTER TABLE attempts ADD COLUMN resumed_step INTEGER;
    ALTER TABLE attempts ADD COLUMN lost_s REAL NOT NULL DEFAULT 0
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _j(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


class Ledger:
    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        """The ledger at `path`, created (and migrated) when it is not there. `read_only`: an existing ledger,
        never written (its directory may be read-only); ":memory:" for one that lives in this process only."""
        self.path = Path(path)
        self.read_only = read_only
        try:
            self.db = self._connect()
            self.db.execute("PRAGMA busy_timeout=30000")
            if not read_only:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(self._why(exc)) from None
        self.db.row_factory = sqlite3.Row
        if read_only:
            self._check_version()
        else:
            self._migrate()

    def _connect(self) -> sqlite3.Connection:
        args: dict[str, Any] = {"timeout": 30, "isolation_level": None, "check_same_thread": False}
        if str(self.path) == ":memory:":
            return sqlite3.connect(":memory:", **args)
        if not self.read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise sqlite3.OperationalError(str(exc)) from None
            return sqlite3.connect(str(self.path), **args)
        if not self.path.is_file():
            raise sqlite3.OperationalError("no such file")
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, **args)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:   # a WAL ledger in a read-only directory: no -shm file can be made
            db.close()
            return sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, **args)

    def _why(self, exc: sqlite3.DatabaseError) -> str:
        if isinstance(exc, sqlite3.OperationalError):
            if self.read_only:
                return f"ledger {self.path}: cannot open it read-only ({exc})"
            return (f"ledger {self.path}: cannot open it ({exc}); its directory must exist or be creatable, and be "
                    "writable (SQLite writes a journal beside it); --read-only views a ledger without writing")
        return (f"{self.path}: not a usim ledger (SQLite: {exc}); a ledger is runs/<sweep>/ledger.sqlite, a sweep "
                "file goes first: usim-tui SWEEP")

    def _check_version(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise ConfigError(f"ledger {self.path}: schema v{version}, this usim reads v{SCHEMA_VERSION}; open it "
                              "once without --read-only to migrate it" if version < SCHEMA_VERSION else
                              f"ledger {self.path}: schema v{version} is newer than this usim (v{SCHEMA_VERSION})")

    def _migrate(self) -> None:
        try:
            self._migrations()
        except sqlite3.DatabaseError as exc:   # e.g. a YAML given as the ledger: "file is not a database"
            raise ConfigError(self._why(exc)) from None

    def _migrations(self) -> None:
        with self.tx():
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: ledger schema v{version} is newer than this usim (v{SCHEMA_VERSION})")
            for v in range(version, SCHEMA_VERSION):
                for stmt in MIGRATIONS[v].split(";\n"):
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute(f"PRAGMA user_version={v + 1}")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def data_version(self) -> int:
        """Moves when another connection commits to the ledger (a reader's cheap "anything new?")."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def q(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self.db.execute(sql, args).fetchall()

    def q1(self, sql: str, *args: Any) -> sqlite3.Row | None:
        return self.db.execute(sql, args).fetchone()

    def _update(self, table: str, where: str, fields: dict[str, Any], *key: Any) -> None:
        cols = ", ".join(f"{k}=?" for k in fields)
        self.db.execute(f"UPDATE {table} SET {cols} WHERE {where}", (*fields.values(), *key))

    # ---- sweeps and cells -------------------------------------------------------------------------------
    def ensure_sweep(self, sweep: Sweep) -> None:
        spec = sweep.spec
        with self.tx() as db:
            db.execute(
                "INSERT INTO sweeps (name, provider, path, spec_json, budget, created_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET provider=excluded.provider, path=excluded.path, "
                "spec_json=excluded.spec_json, budget=excluded.budget",
                (spec.name, spec.provider.kind, str(sweep.path), _j(spec.model_dump(by_alias=True)), spec.budget,
                 time.time()))
            for i, c in enumerate(sweep.cells):
                db.execute(
                    "INSERT INTO cells (sweep, name, round, tags_json, overrides_json, config_json, config_hash, "
                    "duplicate_of, run_id, ord, state, num_gpus) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(sweep, "
                    "name) DO UPDATE SET round=excluded.round, tags_json=excluded.tags_json, "
                    "overrides_json=excluded.overrides_json, config_json=excluded.config_json, "
                    "config_hash=excluded.config_hash, duplicate_of=excluded.duplicate_of, run_id=excluded.run_id, "
                    "ord=excluded.ord, num_gpus=excluded.num_gpus",
                    (spec.name, c.name, c.round, _j(c.tags), _j(c.overrides), _j(c.config), c.config_hash,
                     c.duplicate_of, c.run_id, i, CellState.DUPLICATE if c.duplicate_of else CellState.PENDING,
                     c.num_gpus))

    def sweeps(self) -> list[str]:
        return [r[0] for r in self.q("SELECT name FROM sweeps ORDER BY created_at")]

    def _sweep_name(self, sweep: str | None) -> str:
        if sweep:
            return sweep
        names = self.sweeps()
        if not names:
            raise LookupError(f"{self.path}: the ledger has no sweep yet")
        return names[-1]

    def sweep_row(self, sweep: str | None = None) -> SweepRow:
        name = self._sweep_name(sweep)
        row = self.q1(f"SELECT {columns(SweepRow)} FROM sweeps WHERE name=?", name)
        if row is None:
            raise LookupError(f"{self.path}: no sweep {name!r}; sweeps here: {', '.join(self.sweeps()) or 'none'}")
        return SweepRow._make(row)

    def load_sweep(self, sweep: str | None = None) -> Sweep:
        """Rebuild the Sweep (spec + resolved cells) as recorded, without the sweep file."""
        row = self.sweep_row(sweep)
        spec = SweepSpec.model_validate(json.loads(row.spec_json))
        return Sweep(spec=spec, path=Path(row.path), cells=[c.cell for c in self.cells(row.name)])

    def set_sweep(self, sweep: str, **fields: Any) -> None:
        self._update("sweeps", "name=?", fields, sweep)

    def cells(self, sweep: str) -> list[CellRow]:
        return [CellRow.from_row(r) for r in self.q("SELECT * FROM cells WHERE sweep=? ORDER BY ord", sweep)]

    def cell(self, sweep: str, name: str) -> CellRow:
        row = self.q1("SELECT * FROM cells WHERE sweep=? AND name=?", sweep, name)
        if row is None:
            raise KeyError(f"sweep {sweep} has no cell {name!r}")
        return CellRow.from_row(row)

    def set_cell(self, sweep: str, cell: str, **fields: Any) -> None:
        for split in ("small_metrics", "full_metrics"):
            if split in fields:
                fields[f"{split}_json"] = _j(fields.pop(split))
        self._update("cells", "sweep=? AND name=?", fields, sweep, cell)

    # ---- attempts and intents ----------------------------------------------------------------------------
    def attempts(self, sweep: str, cell: str | None = None) -> list[AttemptRow]:
        if cell is None:
            rows = self.q(f"SELECT {columns(AttemptRow)} FROM attempts WHERE sweep=? ORDER BY id", sweep)
        else:
            rows = self.q(f"SELECT {columns(AttemptRow)} FROM attempts WHERE sweep=? AND cell=? ORDER BY attempt", sweep, cell)
        return [AttemptRow.from_row(r) for r in rows]

    def attempt(self, attempt_id: int) -> AttemptRow | None:
        row = self.q1(f"SELECT {columns(AttemptRow)} FROM attempts WHERE id=?", attempt_id)
        return None if row is None else AttemptRow.from_row(row)

    def attempt_of(self, sweep: str, cell: str, attempt: int | None) -> AttemptRow | None:
        """A cell's attempt by its number (a resumed attempt's `resumed_from`), or None."""
        row = self.q1(f"SELECT {columns(AttemptRow)} FROM attempts WHERE sweep=? AND cell=? AND attempt=?",
                      sweep, cell, attempt)
        return None if row is None else AttemptRow.from_row(row)

    def live_attempts(self, sweep: str) -> list[AttemptRow]:
        marks = ",".join("?" * len(GONE))
        rows = self.q(f"SELECT {columns(AttemptRow)} FROM attempts WHERE sweep=? AND state NOT IN ({marks}) ORDER BY id", sweep, *GONE)
        return [AttemptRow.from_row(r) for r in rows]

    def new_attempt(self, sweep: str, cell: str, attempt: int, label: str, run_dir: str, t: float,
                    num_gpus: int = 1) -> int:
        """Insert an attempt in state `launching` (on a host of `num_gpus` GPUs) together with its create intent
        (one transaction)."""
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO attempts (sweep, cell, attempt, label, state, run_dir, created_at, billed_until, "
                "state_since, num_gpus) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (sweep, cell, attempt, label, AttemptState.LAUNCHING, run_dir, t, t, t, num_gpus))
            aid = int(cur.lastrowid or 0)
            db.execute("INSERT INTO intents (sweep, attempt_id, action, label, t) VALUES (?,?,?,?,?)",
                       (sweep, aid, "create", label, t))
        return aid

    def set_attempt(self, attempt_id: int, at: float | None = None, **fields: Any) -> None:
        """Update an attempt; a new `state` also records when it was entered (`at`, default now)."""
        if "state" not in fields:
            self._update("attempts", "id=?", fields, attempt_id)
            return
        cols = ", ".join(f"{k}=?" for k in fields)
        since = time.time() if at is None else at
        self.db.execute(f"UPDATE attempts SET {cols}, state_since=CASE WHEN state=? AND state_since IS NOT NULL "
                        "THEN state_since ELSE ? END WHERE id=?", (*fields.values(), fields["state"], since, attempt_id))

    def intent(self, sweep: str, action: str, t: float, attempt_id: int | None = None, label: str | None = None,
               provider_id: str | None = None) -> int:
        cur = self.db.execute(
            "INSERT INTO intents (sweep, attempt_id, action, label, provider_id, t) VALUES (?,?,?,?,?,?)",
            (sweep, attempt_id, action, label, provider_id, t))
        return int(cur.lastrowid or 0)

    def outcome(self, intent_id: int, outcome: str, t: float, detail: str = "") -> None:
        self.db.execute("UPDATE intents SET outcome=?, outcome_t=?, detail=? WHERE id=?",
                        (outcome, t, detail[:2000], intent_id))

    def close_create_intent(self, attempt_id: int, outcome: str, t: float, detail: str = "") -> None:
        self.db.execute("UPDATE intents SET outcome=?, outcome_t=?, detail=? WHERE attempt_id=? AND action='create' "
                        "AND outcome IS NULL", (outcome, t, detail[:2000], attempt_id))

    def intents(self, sweep: str) -> list[IntentRow]:
        return [IntentRow._make(r) for r in self.q(f"SELECT {columns(IntentRow)} FROM intents WHERE sweep=? ORDER BY id", sweep)]

    def open_destroy_intents(self, sweep: str) -> list[IntentRow]:
        """Destroy calls whose outcome was never recorded (the controller died during the call)."""
        return [IntentRow._make(r) for r in self.q(
            f"SELECT {columns(IntentRow)} FROM intents WHERE sweep=? AND action='destroy' AND outcome IS NULL ORDER BY id", sweep)]

    # ---- events and metrics ------------------------------------------------------------------------------
    def add_event(self, sweep: str, t: float, kind: str, message: str, attempt_id: int | None = None,
                  cell: str | None = None, data: dict[str, Any] | None = None, digest: str | None = None) -> bool:
        """Record one event; with a digest, a duplicate (the same log line read twice) is ignored."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO events (sweep, attempt_id, cell, t, kind, message, data_json, digest) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (sweep, attempt_id, cell, t, kind, message[:2000], _j(data) if data is not None else None, digest))
        return cur.rowcount > 0

    def add_metrics(self, attempt_id: int, step: int, values: dict[str, float], t: float | None) -> None:
        self.db.executemany("INSERT INTO metrics (attempt_id, step, key, value, t) VALUES (?,?,?,?,?)",
                            [(attempt_id, step, k, v, t) for k, v in values.items()])

    def metric_series(self, attempt_ids: list[int], keys: list[str] | None = None,
                      max_points: int = 500) -> dict[int, dict[str, list[tuple[int, float]]]]:
        """attempt id -> metric key -> [(step, value)], evenly downsampled to at most max_points per series."""
        out: dict[int, dict[str, list[tuple[int, float]]]] = {a: {} for a in attempt_ids}
        if not attempt_ids:
            return out
        sql = f"SELECT attempt_id, key, step, value FROM metrics WHERE attempt_id IN ({','.join('?' * len(attempt_ids))})"
        args: list[Any] = list(attempt_ids)
        if keys:
            sql += f" AND key IN ({','.join('?' * len(keys))})"
            args += keys
        for r in self.db.execute(sql + " ORDER BY attempt_id, key, rowid", args):
            out[r["attempt_id"]].setdefault(r["key"], []).append((r["step"], r["value"]))
        return {aid: downsample(series, max_points) for aid, series in out.items()}

    def run_on_series(self, attempt_ids: list[int], keys: list[str] | None = None,
                      max_points: int = 500) -> dict[int, dict[str, list[tuple[int, float]]]]:
        """metric_series with each attempt's curves running on from the attempts it resumed from (store/resumes.py):
        what they trained up to its resume point, then its own; an epoch trained again counts once, the last time."""
        out = {}
        for aid in attempt_ids:
            chain = self._resume_chain(aid)
            raw = self.metric_series([a.id for a in chain], keys, max_points=1 << 30)
            out[aid] = downsample(run_on([(a, raw[a.id]) for a in chain]), max_points)
        return out

    def trained_at(self, attempt_id: int, stage: str | None, step: int | None) -> tuple[float | None, float | None]:
        """(when the attempt's run reached this stage and step, when it last trained anything): metric times. Step
        0 of a stage is where the stage before it ended (its last epoch's metric)."""
        last = self.q1("SELECT max(t) AS t FROM metrics WHERE attempt_id=?", attempt_id)
        if stage not in STAGES or step is None:
            return None, (last["t"] if last is not None else None)
        if step > 0:
            at = self.q1("SELECT max(t) AS t FROM metrics WHERE attempt_id=? AND key=? AND step=?", attempt_id,
                         f"train/{stage}/loss", step)
        else:
            before = [f"train/{s}/loss" for s in STAGES[:STAGES.index(stage)]] or [""]
            at = self.q1(f"SELECT max(t) AS t FROM metrics WHERE attempt_id=? AND key IN ({','.join('?' * len(before))})",
                         attempt_id, *before)
        return (at["t"] if at is not None else None), (last["t"] if last is not None else None)

    def _resume_chain(self, attempt_id: int) -> list[AttemptRow]:
        """The attempt and those it resumed from, oldest first."""
        row = self.attempt(attempt_id)
        chain = [row] if row is not None else []
        while row is not None and row.resumed_from is not None and row.resumed_from != row.attempt \
                and len(chain) < 1000:
            row = self.attempt_of(row.sweep, row.cell, row.resumed_from)
            if row is not None:
                chain.insert(0, row)
        return chain

    def stage_events(self, attempt_id: int, stage: str) -> dict[str, Any] | None:
        """The attempt's latest `stage_start` event for a stage (its epochs, steps per epoch), or None."""
        r = self.q1("SELECT data_json FROM events WHERE attempt_id=? AND kind='stage_start' AND "
                    "json_extract(data_json, '$.stage')=? ORDER BY id DESC LIMIT 1", attempt_id, stage)
        return json.loads(r["data_json"]) if r is not None and r["data_json"] else None

    # ---- early stopping (fleet/stopping/) ------------------------------------------------------------------
    def add_rung(self, sweep: str, cell: str, attempt_id: int | None, rung: int, position: int, value: float,
                 compared: int, cutoff: float, stop: bool, keep: bool, why: str, t: float) -> None:
        self.db.execute("INSERT INTO rungs (sweep, cell, attempt_id, rung, position, value, compared, cutoff, stop, "
                        "keep, why, t) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (sweep, cell, attempt_id, rung, position, value, compared, cutoff, int(stop), int(keep),
                         why, t))

    def rungs(self, sweep: str) -> list[RungRow]:
        """Every judgement of the sweep, in the order the rule made them."""
        return [RungRow._make(r) for r in self.q(f"SELECT {columns(RungRow)} FROM rungs WHERE sweep=? ORDER BY id",
                                                 sweep)]

    def journal_after(self, sweep: str, after_id: int = 0) -> list[tuple[int, EventView]]:
        """The controller's own events (not the trainers') after an event id, oldest first: for following."""
        rows = self.q("SELECT * FROM events WHERE sweep=? AND id>? AND digest IS NULL ORDER BY id", sweep, after_id)
        return [(r["id"], _event_view(r)) for r in rows]

    def has_event(self, kind: str, attempt_ids: list[int]) -> bool:
        """Whether an event of this kind was recorded for any of these attempts."""
        marks = ",".join("?" * len(attempt_ids))
        return bool(attempt_ids) and bool(self.q(f"SELECT 1 FROM events WHERE kind=? AND attempt_id IN ({marks}) "
                                                 "LIMIT 1", kind, *attempt_ids))

    def attempt_events(self, attempt_id: int, limit: int = 200) -> list[EventView]:
        rows = self.q("SELECT * FROM events WHERE attempt_id=? ORDER BY id DESC LIMIT ?", attempt_id, limit)
        return [_event_view(r) for r in reversed(rows)]

    # ---- commands, exclusions, preflight, spend ----------------------------------------------------------
    def enqueue(self, sweep: str, command: str, **args: Any) -> int:
        check_command(command, args)
        cur = self.db.execute("INSERT INTO commands (sweep, command, args_json, created_at) VALUES (?,?,?,?)",
                              (sweep, command, _j(args), time.time()))
        return int(cur.lastrowid or 0)

    def take_commands(self, sweep: str, t: float) -> list[CommandRow]:
        with self.tx() as db:
            rows = db.execute("SELECT * FROM commands WHERE sweep=? AND taken_at IS NULL ORDER BY id", (sweep,)).fetchall()
            db.execute("UPDATE commands SET taken_at=? WHERE sweep=? AND taken_at IS NULL", (t, sweep))
        return [CommandRow.from_row(r) for r in rows]

    def finish_command(self, command_id: int, result: str) -> None:
        self.db.execute("UPDATE commands SET result=? WHERE id=?", (result, command_id))

    def command(self, command_id: int) -> CommandRow | None:
        row = self.q1("SELECT * FROM commands WHERE id=?", command_id)
        return None if row is None else CommandRow.from_row(row)

    def exclude_machine(self, sweep: str, machine_id: str, reason: str, t: float) -> None:
        self.db.execute("INSERT OR IGNORE INTO excluded_machines VALUES (?,?,?,?)", (sweep, machine_id, reason, t))

    def excluded_machines(self, sweep: str) -> frozenset[str]:
        return frozenset(r[0] for r in self.q("SELECT machine_id FROM excluded_machines WHERE sweep=?", sweep))

    def preflight_result(self, sweep: str, fingerprint: str) -> tuple[bool, str] | None:
        r = self.q1("SELECT ok, message FROM preflight WHERE sweep=? AND fingerprint=?", sweep, fingerprint)
        return None if r is None else (bool(r["ok"]), r["message"] or "")

    def set_preflight(self, sweep: str, fingerprint: str, ok: bool, message: str, t: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO preflight VALUES (?,?,?,?,?)", (sweep, fingerprint, int(ok), message, t))

    def forget_failed_preflight(self, sweep: str, fingerprint: str) -> None:
        """A person's relaunch tries the architecture's preflight again."""
        self.db.execute("DELETE FROM preflight WHERE sweep=? AND fingerprint=? AND ok=0", (sweep, fingerprint))

    def add_spend_sample(self, sweep: str, t: float, spent: float, committed: float, burn: float,
                         provider_reported: float | None = None) -> None:
        self.db.execute("INSERT INTO spend_samples VALUES (?,?,?,?,?,?)", (sweep, t, spent, committed, burn,
                                                                          provider_reported))

    # ---- the read model ----------------------------------------------------------------------------------
    def snapshot(self, sweep: str | None = None, now: float | None = None) -> SweepSnapshot:
        srow = self.sweep_row(sweep)
        name = srow.name
        now = time.time() if now is None else now
        spec = SweepSpec.model_validate(json.loads(srow.spec_json))
        arows = self.attempts(name)
        losses = self._loss_histories([r.id for r in arows])
        attempts = tuple(_attempt_view(r, losses.get(r.id, ())) for r in arows)
        by_cell: dict[str, list[AttemptRow]] = {}
        for r in arows:
            by_cell.setdefault(r.cell, []).append(r)
        cells = tuple(_cell_view(c, by_cell.get(c.name, [])) for c in self.cells(name))
        events = tuple(_event_view(r) for r in reversed(
            self.q("SELECT * FROM events WHERE sweep=? AND kind NOT IN ('metric') ORDER BY id DESC LIMIT 200", name)))
        pending = [c.num_gpus for c in cells if c.state == CellState.PENDING]   # not running: each at its host's price
        bview = budget_view(spec, arows, now, remaining_gpus=pending)
        bview = dataclasses.replace(bview, provider_reported=self.provider_reported(name, arows))
        return SweepSnapshot(
            sweep=name, provider=srow.provider, now=now, paused=bool(srow.paused), auto=bool(srow.auto),
            cells=cells, attempts=attempts, events=events, budget=bview,
            provider_status=srow.provider_status, crash_loop=srow.crash_loop, controller_pid=srow.controller_pid,
            controller_seen_at=srow.controller_seen_at, controller_state=srow.controller_state,
            controller_poll=srow.controller_poll, budget_stop=bool(srow.budget_stop),
            queued=tuple(QueuedView(r["command"], json.loads(r["args_json"]), r["created_at"]) for r in self.q(
                "SELECT command, args_json, created_at FROM commands WHERE sweep=? AND taken_at IS NULL ORDER BY id",
                name)))

    def provider_reported(self, sweep: str, attempts: list[AttemptRow] | None = None) -> float | None:
        """Spend as the provider reports it: the account credit used since the sweep's first reading (Vast), else
        the sum of per-instance costs where the provider gives them, else None."""
        row = self.sweep_row(sweep)
        if row.credit_start is not None and row.credit_now is not None:
            return round(row.credit_start - row.credit_now, 6)
        costs = [a.provider_cost for a in (attempts if attempts is not None else self.attempts(sweep))
                 if a.provider_cost is not None]
        return round(sum(costs), 6) if costs else None

    def _loss_histories(self, attempt_ids: list[int], points: int = 60) -> dict[int, tuple[float, ...]]:
        if not attempt_ids:
            return {}
        rows = self.q(f"SELECT attempt_id, value FROM metrics WHERE attempt_id IN ({','.join('?' * len(attempt_ids))}) "
                      "AND (key='loss' OR key LIKE '%/loss') AND key NOT LIKE 'val/%' AND key NOT LIKE '%/val_loss' "
                      "ORDER BY attempt_id, rowid", *attempt_ids)
        series: dict[int, list[float]] = {}
        for r in rows:
            series.setdefault(r["attempt_id"], []).append(r["value"])
        out = {}
        for aid, vals in series.items():
            if len(vals) > points:
                stride = len(vals) / points
                vals = [vals[int(i * stride)] for i in range(points - 1)] + [vals[-1]]
            out[aid] = tuple(vals)
        return out


def event_digest(attempt_id: int, event: dict[str, Any]) -> str:
    """De-duplication key of a protocol event read from a log tail (the same line is read on every poll)."""
    return hashlib.sha1(f"{attempt_id}|{_j(event)}".encode()).hexdigest()


def _event_view(r: sqlite3.Row) -> EventView:
    return EventView(t=r["t"], attempt_id=r["attempt_id"], cell=r["cell"], kind=r["kind"], message=r["message"],
                     data=json.loads(r["data_json"]) if r["data_json"] else None)


def _attempt_view(r: AttemptRow, loss_history: tuple[float, ...]) -> AttemptView:
    return AttemptView(
        attempt_id=r.id, cell=r.cell, attempt=r.attempt, state=r.state, reason=r.reason,
        provider_id=r.provider_id, label=r.label, gpu=r.gpu, machine_id=r.machine_id,
        price_per_hour=r.price_per_hour, created_at=r.created_at, started_at=r.started_at,
        ended_at=r.ended_at, stage=r.stage, epoch=r.epoch, step=r.step, last_loss=r.last_loss,
        loss_history=loss_history, spent=r.spent, message=r.message, num_gpus=r.num_gpus, bid=r.bid,
        on_demand_per_hour=r.on_demand_per_hour, resumed_from=r.resumed_from, resumed_step=r.resumed_step,
        resumed_stage=r.resumed_stage, checkpoint=r.checkpoint, lost_s=r.lost_s)


def _cell_view(c: CellRow, attempts: list[AttemptRow]) -> CellView:
    state = c.state
    if state == CellState.PENDING:
        live = [a for a in attempts if a.live]
        if any(a.state == AttemptState.RUNNING for a in live):
            state = CellState.RUNNING
        elif live:
            state = CellState.LAUNCHING
    last_reason = next((a.reason for a in reversed(attempts) if a.reason), None)
    return CellView(
        name=c.name, round=c.cell.round, tags=tuple(c.cell.tags), overrides=c.cell.overrides, state=state, attempts=len(attempts),
        duplicate_of=c.duplicate_of, metrics=c.metrics, small_metrics=c.small_metrics, full_metrics=c.full_metrics,
        cost=round(sum(a.spent for a in attempts), 6),
        reason=c.reason or (last_reason if state == CellState.FAILED else None), num_gpus=c.num_gpus,
        keep=bool(c.keep), continued=bool(c.continued),
        # a person's relaunch (or launch) taken by the controller: every attempt so far set aside, none new yet
        relaunch_waiting=state == CellState.PENDING and c.counted_from > 0
        and c.counted_from >= max((a.attempt for a in attempts), default=0),
        lost_s=sum(a.lost_s for a in attempts),
        interrupted=tuple(str(a.reason) for a in attempts if a.started_event and a.reason in MACHINE_REASONS))
