"""Gathering: the ledger (snapshot, attempts, events, metric series) and the eval JSONs of each cell's run
directory, read into plain ReportData. Reads files, never runs a model (no torch)."""

from __future__ import annotations

import json
import math
import netrc
import os
from pathlib import Path
from typing import Any

from usim_core.sweep import Sweep
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.rows import AttemptRow
from usim_tui.fleet.store.rungs import attempt_rule_points
from usim_tui.fleet.store.snapshot import AttemptView, EventView, SweepSnapshot
from usim_tui.fleet.store.states import GONE, EndReason
from usim_tui.report.model import (
    AttemptRecord,
    CellRecord,
    EarlyStopRecord,
    EvalRecord,
    Phase,
    ReportData,
    RungRecord,
)


def _numbers(d: dict[str, Any] | None) -> dict[str, float]:
    """The finite numeric entries of a metrics dict (null = a diverged rollout, left out)."""
    out = {}
    for k, v in (d or {}).items():
        if not k.startswith("_") and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out[k] = float(v)
    return out


def read_eval(path: Path) -> EvalRecord | None:
    """One eval JSON (usim_core/eval/schema.py) as an EvalRecord; None when absent or unreadable."""
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(d, dict) or not isinstance(d.get("metrics"), dict):
        return None
    base = {}
    for name, b in (d.get("baselines") or {}).items():
        if isinstance(b, dict) and isinstance(b.get("metrics"), dict):
            base[name] = _numbers(b["metrics"])
        elif name == "coarse_solver" and isinstance(b, dict):  # the solver at the model's CPU cost (eval schema v2)
            base[name] = _numbers({k: b.get(k) for k in ("nrmse_rollout", "nrmse_frame", "cpu_s_per_traj", "nx")})
    ttc = d.get("ttc") or {}
    gain = ttc.get("gain") if ttc.get("enabled", True) else None
    metrics = _numbers({**d["metrics"], "model_cpu_s_per_traj": d.get("model_cpu_s_per_traj")})
    return EvalRecord(split=path.stem, metrics=metrics, baselines=base,
                      ttc_gain=float(gain) if isinstance(gain, int | float) else None, source=str(path),
                      data_split=str(d.get("split") or ""))


def _run_dir(row: AttemptRow, roots: list[Path]) -> Path | None:
    rd = row.run_dir
    if not rd:
        return None
    p = Path(rd)
    if p.is_absolute():
        return p
    return next((r / p for r in roots if (r / p).exists()), p)


def _phases(a: AttemptView, exit_t: float | None, now: float) -> list[Phase]:
    """loading (created -> started), running (started -> exit), exited (exit -> destroyed), destroyed (marker)."""
    if a.created_at is None:
        return []
    end = a.ended_at or now
    out = []
    started = a.started_at if a.started_at is not None and a.started_at <= end else None
    out.append(Phase("loading", a.created_at, started if started is not None else end))
    if started is not None:
        stop = min(max(exit_t, started), end) if exit_t is not None else end
        out.append(Phase("running", started, stop))
        if stop < end:
            out.append(Phase("exited", stop, end))
    if a.ended_at is not None and a.state in GONE:
        out.append(Phase("destroyed", a.ended_at, a.ended_at))
    return [p for p in out if p.end >= p.start]


def _phases_from_events(a: AttemptView, events: list[EventView], now: float) -> list[Phase] | None:
    """Phases from the controller's state changes (any event whose data has "from" and "to": `state`, `leaked`,
    ...; the end is the destroyed marker); None when it wrote none."""
    found = sorted((e.t, e.data["from"], e.data["to"]) for e in events
                   if e.data and "from" in e.data and "to" in e.data and e.data["to"] not in GONE)
    if not found or a.created_at is None:
        return None
    end = a.ended_at or now
    # the attempt was in the first transition's "from" state since its creation (local instances start running)
    points = [(a.created_at, found[0][1]), *((t, to) for t, _, to in found)]
    out = [Phase(state, max(t, a.created_at), min(nxt, end))
           for (t, state), (nxt, _) in zip(points, [*points[1:], (end, "")], strict=True)]
    if a.ended_at is not None and a.state in GONE:
        out.append(Phase("destroyed", a.ended_at, a.ended_at))
    return [p for p in out if p.end >= p.start]


def _reason(e: EventView) -> str:
    """An error event's one-line reason, as the trainer wrote it (the event's message is a summary of fields)."""
    reason = (e.data or {}).get("reason")
    return str(reason) if reason else e.message


def _wandb(cell_config: dict[str, Any], run_id: str) -> tuple[str | None, str | None]:
    """(url, None) for an online W&B run with a key available, else (None, why not). Never reads the key out."""
    wb = (cell_config.get("tracking") or {}).get("wandb") or {}
    if wb.get("mode") != "online":
        return None, "No W&B links: tracking.wandb.mode is not `online` in the sweep's configs."
    if not _has_wandb_key():
        return None, "No W&B links: tracking.wandb.mode is online but no W&B key is set (WANDB_API_KEY or ~/.netrc)."
    entity = wb.get("entity") or os.environ.get("WANDB_ENTITY")
    if not entity:
        return None, "No W&B links: tracking.wandb.entity (or WANDB_ENTITY) is not set, so run URLs are unknown."
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").rstrip("/").replace("://api.", "://")
    return f"{host}/{entity}/{wb.get('project', 'usim')}/runs/{wb.get('run_id') or run_id}", None


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return any(h for h in netrc.netrc().hosts if "wandb" in h)
    except (OSError, netrc.NetrcParseError):
        return False


def _params(config: dict[str, Any]) -> dict[str, Any]:
    model = config.get("model") or {}
    return {"hidden_dim": (model.get("operator") or {}).get("hidden_dim"),
            "latent_tokens": (model.get("codec") or {}).get("latent_tokens"), "seed": config.get("seed")}


def _train_seconds(events: list[Any], a: AttemptView, exit_t: float | None) -> float | None:
    starts = [e.t for e in events if e.kind == "stage_start"]
    ends = [e.t for e in events if e.kind == "stage_end"]
    if starts and ends and max(ends) >= min(starts):
        return max(ends) - min(starts)
    if a.started_at is not None and exit_t is not None:
        return max(exit_t - a.started_at, 0.0)
    return None


def gather(ledger: Ledger, sweep: str | None = None, *, now: float | None = None,
           runs_roots: list[Path] | None = None) -> ReportData:
    """Everything the report needs, from one ledger (and the run directories it names)."""
    snap: SweepSnapshot = ledger.snapshot(sweep, now=now)
    spec_sweep: Sweep = ledger.load_sweep(snap.sweep)
    roots = [Path.cwd(), *(runs_roots or []), ledger.path.parent.parent, ledger.path.parent.parent.parent]
    rows = {r.id: r for r in ledger.attempts(snap.sweep)}
    cells_cfg = {c.name: c for c in spec_sweep.cells}

    attempts: list[AttemptRecord] = []
    exit_times: dict[int, float | None] = {}
    events_by: dict[int, list[Any]] = {}
    for a in snap.attempts:
        events = ledger.attempt_events(a.attempt_id, limit=1000)
        events_by[a.attempt_id] = events
        ends = [e for e in events if e.kind in ("done", "error")]
        exit_t = ends[-1].t if ends else None
        exit_times[a.attempt_id] = exit_t
        err = next((_reason(e) for e in reversed(events) if e.kind == "error"), None)
        row = rows.get(a.attempt_id)
        err = err or (row.error_event if row is not None else None)
        # an ending that is no error: a finish, a person's stop, the budget, the stopping rule (its reason is
        # the cell's, shown in the early-stopping section)
        if not err and a.reason not in (None, EndReason.FINISHED, EndReason.USER, EndReason.BUDGET,
                                        EndReason.STOPPED_EARLY):
            err = a.message
        attempts.append(AttemptRecord(
            attempt_id=a.attempt_id, cell=a.cell, attempt=a.attempt, state=a.state, reason=a.reason,
            price_per_hour=a.price_per_hour, created_at=a.created_at, started_at=a.started_at, ended_at=a.ended_at,
            spent=a.spent, gpu=a.gpu, machine_id=a.machine_id, error=err,
            results=row.results if row is not None else None, bid=a.bid, saved=a.saved, resumed_from=a.resumed_from,
            lost_s=a.lost_s,
            phases=_phases_from_events(a, events, snap.now) or _phases(a, exit_t, snap.now)))

    finishing = {}  # cell -> the attempt whose results count: the finished one, else the latest
    for a in snap.attempts:
        if a.reason == EndReason.FINISHED or finishing.get(a.cell) is None \
                or finishing[a.cell].reason != EndReason.FINISHED:
            finishing[a.cell] = a
    series = ledger.run_on_series([a.attempt_id for a in finishing.values()])   # across the attempts it resumed

    note = None
    cells = []
    for cv in snap.cells:
        cfg = cells_cfg.get(cv.name)
        rec = CellRecord(name=cv.name, round=cv.round, state=cv.state, tags=list(cv.tags),
                         overrides=dict(cv.overrides), attempts=cv.attempts, duplicate_of=cv.duplicate_of,
                         reason=cv.reason or (finishing[cv.name].reason if cv.name in finishing else None),
                         cost=cv.cost, config_hash=cfg.config_hash if cfg else "",
                         params=_params(cfg.config) if cfg else {}, keep=cv.keep, continued=cv.continued)
        a = finishing.get(cv.name)
        if a is not None:
            rd = _run_dir(rows[a.attempt_id], roots) if a.attempt_id in rows else None
            if rd is not None:
                rec.evals = [e for e in (read_eval(rd / "eval" / f"{s}.json") for s in ("full", "small")) if e]
            if not rec.evals:  # the eval events as the ledger recorded them (run dirs not on this machine)
                rec.evals = [EvalRecord(split=name, metrics=_numbers(m), source="ledger")
                             for name, m in (("full", cv.full_metrics), ("small", cv.small_metrics)) if m]
            rec.curves = series.get(a.attempt_id, {})
            rec.train_seconds = _train_seconds(events_by[a.attempt_id], a, exit_times[a.attempt_id])
        if cfg is not None:
            rec.wandb_url, why = _wandb(cfg.config, cfg.run_id)
            note = note or why
        cells.append(rec)

    spec = spec_sweep.spec
    return ReportData(
        sweep=snap.sweep, provider=snap.provider, now=snap.now, budget=snap.budget.budget, spent=snap.budget.spent,
        planned_cost_per_cell=spec.planned_cost_per_cell, cells=cells, attempts=attempts,
        crash_loop=snap.crash_loop, paused=snap.paused, startup_deadline_s=spec.provider.startup_deadline_s, wandb_note=note,
        early_stop=_early_stop(ledger, spec_sweep, [a.attempt_id for a in snap.attempts]))


def _early_stop(ledger: Ledger, sweep: Sweep, attempt_ids: list[int]) -> EarlyStopRecord | None:
    """The sweep's stopping rule, its judgements (the ledger's rungs), and each attempt's metric as it read it."""
    es = sweep.spec.early_stop
    if es is None:
        return None
    rungs = [RungRecord(cell=r.cell, attempt_id=r.attempt_id, rung=r.rung, position=r.position, value=r.value,
                        compared=r.compared, cutoff=r.cutoff, stop=bool(r.stop), keep=bool(r.keep), why=r.why)
             for r in ledger.rungs(sweep.name)]
    points = {i: pts for i in attempt_ids if (pts := attempt_rule_points(ledger, i, es))}
    return EarlyStopRecord(metric=es.metric, stage=es.stage, unit=es.unit, grace=es.grace, eta=es.eta,
                           min_compared=es.min_compared, continue_best=es.continue_best, rungs=rungs, points=points)
