"""Pure analysis of a ReportData: summary, coverage, leaderboard, group comparisons, noise, failures,
next steps. No I/O; every function is unit-tested on hand-built records."""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from usim_core.eval.gates import passes_gates
from usim_core.eval.leaderboard import val_first
from usim_tui.fleet.store.states import CELL_ACTIVE, CellState, EndReason
from usim_tui.report.model import PRIMARY, AttemptRecord, CellRecord, ReportData, RungRecord


def axis_number(text: str) -> float | None:
    """'1e-3' -> 0.001, '10%' -> 0.1, 'cap64' -> None."""
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        return None


def _sort_key(text: str) -> tuple[int, float, str]:
    n = axis_number(text)
    return (0, n, "") if n is not None else (1, 0.0, text)


# ---------------------------------------------------------------- summary
@dataclass
class Summary:
    total: int                       # cells to run (duplicates excluded)
    finished: int
    running: int
    failed: int
    not_started: int                 # never attempted
    retrying: int                    # attempted, failed, waiting for a relaunch (backoff or paused)
    duplicates: int
    spent: float
    budget: float
    cost_per_finished: float | None
    planned_cost_per_cell: float
    wall_clock_s: float | None
    complete: bool
    missing: list[CellRecord] = field(default_factory=list)   # cells without a result, in sweep order (those
                                                              # stopped early are decided: not missing)
    ended: bool = False              # nothing runs or waits to: every cell finished, failed or stopped early
    stopped_early: int = 0           # cells the stopping rule (or a person) ended early
    stopped_cost: float = 0.0        # what they cost, every attempt of them


# An attempt that ended for one of these did not fail: finished, stopped by a person, stopped by the early-stopping
# rule (a decision: the early-stopping section reports it)
NOT_FAILURES = frozenset({EndReason.FINISHED, EndReason.USER, EndReason.STOPPED_EARLY})


def summarize(data: ReportData) -> Summary:
    cells = [c for c in data.cells if c.state != CellState.DUPLICATE]
    by = Counter(c.state for c in cells)
    finished = by[CellState.FINISHED]
    starts = [a.created_at for a in data.attempts if a.created_at is not None]
    ends = [a.ended_at or data.now for a in data.attempts if a.created_at is not None]
    live = any(a.ended_at is None for a in data.attempts)
    wall = ((data.now if live else max(ends)) - min(starts)) if starts else None
    return Summary(
        total=len(cells), finished=finished, running=sum(by[s] for s in CELL_ACTIVE), failed=by[CellState.FAILED],
        not_started=sum(1 for c in cells if c.state == CellState.PENDING and not c.attempts),
        retrying=sum(1 for c in cells if c.state == CellState.PENDING and c.attempts), duplicates=len(data.cells) - len(cells),
        spent=data.spent, budget=data.budget,
        cost_per_finished=data.spent / finished if finished else None,
        planned_cost_per_cell=data.planned_cost_per_cell, wall_clock_s=wall,
        complete=finished + by[CellState.STOPPED_EARLY] == len(cells),
        missing=[c for c in cells if c.state not in (CellState.FINISHED, CellState.STOPPED_EARLY)],
        ended=not live and all(c.state in (CellState.FINISHED, CellState.FAILED, CellState.STOPPED_EARLY)
                               for c in cells),
        stopped_early=by[CellState.STOPPED_EARLY],
        stopped_cost=sum(c.cost for c in cells if c.state == CellState.STOPPED_EARLY),
    )


# ---------------------------------------------------------------- coverage
@dataclass
class RoundCoverage:
    round: str
    axes: list[str]                              # grid axis names (tags name=value); [] for list rounds
    rows: list[str] = field(default_factory=list)     # values of axes[0]
    cols: list[str] = field(default_factory=list)     # values of axes[1] ("" when one axis)
    grid: dict[tuple[str, str], CellRecord] = field(default_factory=dict)
    cells: list[CellRecord] = field(default_factory=list)


def coverage(data: ReportData) -> list[RoundCoverage]:
    rounds: dict[str, list[CellRecord]] = defaultdict(list)
    for c in data.cells:
        rounds[c.round].append(c)
    out = []
    for name, cells in rounds.items():
        axes = list(cells[0].axis_values())
        cov = RoundCoverage(round=name, axes=axes if all(list(c.axis_values()) == axes for c in cells) else [],
                            cells=cells)
        if 1 <= len(cov.axes) <= 2:
            a0, a1 = cov.axes[0], (cov.axes[1] if len(cov.axes) == 2 else None)
            cov.rows = sorted({c.axis_values()[a0] for c in cells}, key=_sort_key)
            cov.cols = sorted({c.axis_values()[a1] for c in cells}, key=_sort_key) if a1 else [""]
            for c in cells:
                v = c.axis_values()
                cov.grid[(v[a0], v[a1] if a1 else "")] = c
        else:
            cov.axes = []
        out.append(cov)
    return out


# ---------------------------------------------------------------- leaderboard
def leaderboard(data: ReportData, metric: str = PRIMARY) -> list[CellRecord]:
    """Cells with a result, best on VAL first (lower is better); cells without a val eval after them."""
    ranked = [c for c in data.cells if metric in c.metrics and math.isfinite(c.metrics[metric])]
    return sorted(ranked, key=lambda c: val_first(c.val_score(metric), c.metrics[metric]))


def champion(data: ReportData, metric: str = PRIMARY) -> CellRecord | None:
    """The finished cell best on val that passes the physics gates (the best on val if none does); None when
    no cell has a val eval: a champion is never chosen on test."""
    board = [c for c in leaderboard(data, metric) if c.state == CellState.FINISHED and c.val_score(metric) is not None]
    gated = [c for c in board if passes_gates(c.metrics) is not False]
    return (gated or board or [None])[0]


def baselines(data: ReportData) -> dict[str, dict[str, float]]:
    """Baseline metrics (persistence, fno) from the champion's eval, else from any eval that has them."""
    champ = champion(data)
    cells = ([champ] if champ else []) + [c for c in data.cells if c is not champ]
    out: dict[str, dict[str, float]] = {}
    for c in cells:
        if c.eval:
            for name, m in c.eval.baselines.items():
                out.setdefault(name, m)
    return out


# ---------------------------------------------------------------- group comparisons and noise
@dataclass
class GroupStat:
    value: str
    cells: list[str]
    n: int
    mean: float
    std: float | None          # sample std; None for a single cell
    lo: float
    hi: float
    val_mean: float | None = None   # mean of the cells' val scores; None unless every cell has one


def best_group(groups: list[GroupStat]) -> GroupStat | None:
    """The group best on val (lowest mean val score); None when a group lacks val scores: never chosen on test."""
    if not groups or any(g.val_mean is None for g in groups):
        return None
    return min(groups, key=lambda g: g.val_mean or 0.0)


def group_stats(data: ReportData, axis: str, metric: str = PRIMARY) -> list[GroupStat]:
    """Finished cells grouped by the value of one axis tag: mean and spread of `metric` per group."""
    groups: dict[str, list[CellRecord]] = defaultdict(list)
    for c in data.cells:
        v = c.axis_values().get(axis)
        if v is not None and c.state == CellState.FINISHED and metric in c.metrics:
            groups[v].append(c)
    out = []
    for value in sorted(groups, key=_sort_key):
        xs = [c.metrics[metric] for c in groups[value]]
        vals = [v for v in (c.val_score(metric) for c in groups[value]) if v is not None]
        out.append(GroupStat(value=value, cells=[c.name for c in groups[value]], n=len(xs),
                             mean=statistics.fmean(xs), std=statistics.stdev(xs) if len(xs) > 1 else None,
                             lo=min(xs), hi=max(xs), val_mean=statistics.fmean(vals) if len(vals) == len(xs) else None))
    return out


def axes(data: ReportData) -> list[str]:
    """Every axis name that appears in tags, in first-seen order."""
    seen: dict[str, None] = {}
    for c in data.cells:
        for k in c.axis_values():
            seen.setdefault(k, None)
    return list(seen)


def _repeat_key(c: CellRecord) -> str:
    """Cells with the same key are the same experiment up to the seed."""
    return repr(sorted((k, repr(v)) for k, v in c.overrides.items() if k != "seed"))


@dataclass
class Noise:
    groups: list[list[str]]          # cells that are the same experiment (up to the seed)
    std: float | None                # pooled run-to-run std of the metric; None without repeats
    dof: int


def run_noise(data: ReportData, metric: str = PRIMARY) -> Noise:
    """Run-to-run noise from repeats: finished cells whose configs match apart from the seed."""
    groups: dict[str, list[CellRecord]] = defaultdict(list)
    for c in data.cells:
        if c.state == CellState.FINISHED and metric in c.metrics:
            groups[_repeat_key(c)].append(c)
    reps = [g for g in groups.values() if len(g) > 1]
    dof = sum(len(g) - 1 for g in reps)
    if not dof:
        return Noise(groups=[], std=None, dof=0)
    ss = sum((len(g) - 1) * statistics.variance([c.metrics[metric] for c in g]) for g in reps)
    return Noise(groups=[[c.name for c in g] for g in reps], std=math.sqrt(ss / dof), dof=dof)


def exceeds_noise(stats: list[GroupStat], noise: Noise, k: float = 2.0) -> bool | None:
    """Does the spread of group means exceed k × the standard error of a difference of two means?
    None when it cannot be told (fewer than two groups, or no repeats)."""
    if len(stats) < 2 or noise.std is None:
        return None
    best, worst = min(stats, key=lambda s: s.mean), max(stats, key=lambda s: s.mean)
    se = noise.std * math.sqrt(1 / best.n + 1 / worst.n)
    return (worst.mean - best.mean) > k * se


def capacity_rows(data: ReportData, metric: str = PRIMARY) -> list[CellRecord]:
    """Finished cells with a capacity figure (operator hidden size), by capacity."""
    rows = [c for c in data.cells if c.state == CellState.FINISHED and "hidden_dim" in c.params and metric in c.metrics]
    return sorted(rows, key=lambda c: (c.params["hidden_dim"], c.params.get("latent_tokens", 0)))


# ---------------------------------------------------------------- failures
@dataclass
class Stuck:
    attempt: AttemptRecord
    seconds: float
    cost: float


def failures_by_reason(data: ReportData) -> dict[str, tuple[int, float]]:
    """reason -> (attempts, dollars) for attempts that ended for any reason but a clean finish, the user or the
    stopping rule."""
    out: dict[str, tuple[int, float]] = {}
    for a in data.attempts:
        if a.reason and a.reason not in NOT_FAILURES:
            n, cost = out.get(a.reason, (0, 0.0))
            out[a.reason] = (n + 1, cost + a.spent)
    return dict(sorted(out.items(), key=lambda kv: -kv[1][0]))


def first_line(text: str) -> str:
    line = next((x for x in text.strip().splitlines() if x.strip()), "")
    return line.strip()[:240]


def shared_errors(data: ReportData, min_count: int = 2) -> list[tuple[str, list[str]]]:
    """Error messages shared by several attempts (a crash loop), with the attempts, most common first."""
    by: dict[str, list[str]] = defaultdict(list)
    for a in data.attempts:
        if a.error and a.reason not in (EndReason.FINISHED, EndReason.STOPPED_EARLY):
            by[first_line(a.error)].append(a.label)
    return sorted(((e, ls) for e, ls in by.items() if len(ls) >= min_count), key=lambda x: -len(x[1]))


def stuck_attempts(data: ReportData) -> list[Stuck]:
    """Attempts that never started running: killed at the startup deadline, or still waiting past it."""
    out = []
    for a in data.attempts:
        if a.created_at is None:
            continue
        waited = (a.ended_at or data.now) - a.created_at
        timed_out = a.reason == EndReason.STARTUP_TIMEOUT
        overdue = (a.started_at is None and a.ended_at is None and data.startup_deadline_s is not None
                   and waited > data.startup_deadline_s)
        if timed_out or overdue:
            out.append(Stuck(attempt=a, seconds=waited, cost=a.spent))
    return out


# ---------------------------------------------------------------- early stopping
@dataclass
class Stopped:
    """A cell ended early: by the rule at a rung (`rung`: its stopping judgement), or by a person (None)."""

    cell: CellRecord
    rung: RungRecord | None
    cost: float


@dataclass
class EarlyStopping:
    stopped: list[Stopped]               # cells whose state is stopped_early, in sweep order
    continued: list[CellRecord]          # stopped, then trained again to the full length
    kept: list[CellRecord]               # a person keeps them from the rule
    cutoffs: dict[int, RungRecord]       # rung -> its last judgement (the most cells compared): the cut-off
    judged: dict[int, int]               # rung -> cells judged there
    stops: dict[int, int]                # rung -> cells stopped there
    stopped_cost: float                  # every attempt the rule (or a person) ended early, continued cells' too
    finished_mean_cost: float | None     # what a finished cell cost on average, to compare


def early_stopping(data: ReportData) -> EarlyStopping:
    rungs = data.early_stop.rungs if data.early_stop else []
    stop_rows = {r.attempt_id: r for r in rungs if r.stop}
    by_cell = {a.cell: a for a in data.attempts if a.reason == EndReason.STOPPED_EARLY}   # the latest stopped
    stopped = [Stopped(c, stop_rows.get(by_cell[c.name].attempt_id) if c.name in by_cell else None, c.cost)
               for c in data.cells if c.state == CellState.STOPPED_EARLY]
    finished = [c.cost for c in data.cells if c.state == CellState.FINISHED]
    judged: Counter[int] = Counter(r.rung for r in rungs)
    stops: Counter[int] = Counter(r.rung for r in rungs if r.stop)
    return EarlyStopping(
        stopped=stopped, continued=[c for c in data.cells if c.continued],
        kept=[c for c in data.cells if c.keep and not c.continued], cutoffs={r.rung: r for r in rungs},
        judged=dict(sorted(judged.items())), stops=dict(stops),
        stopped_cost=sum(a.spent for a in data.attempts if a.reason == EndReason.STOPPED_EARLY),
        finished_mean_cost=statistics.fmean(finished) if finished else None)


def has_early_stopping(data: ReportData) -> bool:
    """Whether the report has an early-stopping section: the sweep has a rule, or a person stopped a cell early."""
    return data.early_stop is not None or any(a.reason == EndReason.STOPPED_EARLY for a in data.attempts)


# ---------------------------------------------------------------- next steps
@dataclass
class NextSteps:
    champion: CellRecord | None
    uncovered: list[CellRecord]
    cost_per_cell: float             # observed cost per finished config (planned when none finished)
    observed: bool                   # whether cost_per_cell is observed or the plan
    price_per_hour: float | None     # mean observed $/h
    next_round: dict[str, Any] | None    # a sweep `rounds:` entry around the champion
    next_cells: int = 0


def _neighbours(values: list[float], best: float) -> list[float]:
    """Values to try around `best` on a sorted grid: the geometric midpoints to its neighbours, and one
    step beyond when it sits on an edge; `best` itself is kept."""
    vs = sorted(set(values))
    i = vs.index(best)
    out = [best]
    geo = (lambda a, b: math.sqrt(a * b)) if all(v > 0 for v in vs) else (lambda a, b: (a + b) / 2)
    if i > 0:
        out.append(geo(vs[i - 1], best))
    else:
        out.append(best / (vs[1] / best) if len(vs) > 1 and best > 0 else best / 2)
    if i < len(vs) - 1:
        out.append(geo(best, vs[i + 1]))
    else:
        out.append(best * (best / vs[-2]) if len(vs) > 1 and vs[-2] > 0 else best * 2)
    return sorted({float(f"{v:.3g}") for v in out if v >= 0})


def _round_axes(data: ReportData, champ: CellRecord) -> dict[str, list[float]]:
    """Numeric override keys that vary across the champion's round, with their values."""
    vals: dict[str, set[Any]] = defaultdict(set)
    for c in data.cells:
        if c.round == champ.round:
            for k, v in c.overrides.items():
                vals[k].add(repr(v))
    out = {}
    for k, reprs in vals.items():
        v = champ.overrides.get(k)
        if len(reprs) > 1 and isinstance(v, int | float) and not isinstance(v, bool):
            out[k] = sorted(float(c.overrides[k]) for c in data.cells
                            if c.round == champ.round and isinstance(c.overrides.get(k), int | float))
    return out


def _axis_entry(champ: CellRecord, key: str, values: list[float]) -> dict[str, Any]:
    """A sweep grid axis for `key`, named and formatted like the champion's tag for it."""
    value = float(champ.overrides[key])
    for name, text in champ.axis_values().items():
        n = axis_number(text)
        if n is not None and math.isclose(n, value, rel_tol=1e-9, abs_tol=1e-12):
            fmt = "pct" if text.endswith("%") else ("sci" if "e" in text.lower() else "plain")
            return {"key": key, "name": name, "values": values, "format": fmt}
    return {"key": key, "name": key.rsplit(".", 1)[-1], "values": values}


def next_steps(data: ReportData, metric: str = PRIMARY) -> NextSteps:
    champ = champion(data, metric)
    finished = sum(1 for c in data.cells if c.state == CellState.FINISHED)
    prices = [a.price_per_hour for a in data.attempts if a.price_per_hour > 0]
    cost = data.spent / finished if finished else data.planned_cost_per_cell
    # a cell stopped early was covered: the rule judged it worse than the others at a rung
    uncovered = [c for c in data.cells if c.state not in (CellState.FINISHED, CellState.DUPLICATE,
                                                            CellState.STOPPED_EARLY)]
    steps = NextSteps(champion=champ, uncovered=uncovered, cost_per_cell=cost, observed=bool(finished),
                      price_per_hour=statistics.fmean(prices) if prices else None, next_round=None)
    if champ is None:
        return steps
    grid_axes = _round_axes(data, champ)
    fixed = {k: v for k, v in champ.overrides.items() if k not in grid_axes}
    rnd: dict[str, Any] = {"name": f"{re.sub(r'[^a-z0-9_]', '_', champ.round.lower())}_next"}
    if fixed:
        rnd["set"] = fixed
    if grid_axes:
        rnd["grid"] = [_axis_entry(champ, k, _neighbours(vs, float(champ.overrides[k])))
                       for k, vs in grid_axes.items()]
        steps.next_cells = math.prod(len(a["values"]) for a in rnd["grid"])
    else:  # nothing to refine: repeat the champion to measure run-to-run noise
        seed = int(champ.params.get("seed", 17))
        rnd["list"] = {f"seed{seed + i}": {"seed": seed + i} for i in (1, 2)}
        steps.next_cells = 2
    steps.next_round = rnd
    return steps


def format_seconds(s: float | None) -> str:
    if s is None:
        return "n/a"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")
