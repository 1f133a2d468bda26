"""Replayed training runs from recorded learning curves (`curves/<sweep>.json`, written by bench/curves.py).

A host in the rehearsal then learns as the real model learned: per epoch, the operator's `val/operator/loss` of
one recorded run of its cell, times log-normal noise of the size measured across seeds; its eval metrics are
that run's, with the measured noise of the final metric; its stages last the fault profile's draw times the
cell's recorded cost relative to the file's median (docs/curves.md). A cell the file lacks gets None, and the
host falls back to the synthetic script (timeline.py).
"""

from __future__ import annotations

import json
import math
import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usim_core.config import ConfigError

STAGES = ("codec", "operator", "diffusion_residual", "consistency_distill")
# Synthetic stages (all but the operator) when the file gives no plan: the recorded scale's epochs and steps.
DEFAULT_PLAN = {"codec": (6, 36), "operator": (8, 35), "diffusion_residual": (2, 35), "consistency_distill": (2, 35)}


@dataclass(frozen=True)
class StagePlan:
    epochs: int
    steps_per_epoch: int
    steps: int


@dataclass(frozen=True)
class RecordedRun:
    seed: int
    val: tuple[float, ...]
    final: dict[str, float]
    score: tuple[float, ...] = ()    # val/operator/nrmse_frame per epoch (absent in files recorded before it)


@dataclass(frozen=True)
class CellCurves:
    epochs: int
    cpu_s_per_epoch: float
    rest_cpu_s: float | None         # the run's other stages and eval (process CPU less the operator's), if known
    runs: tuple[RecordedRun, ...]
    stages: dict[str, StagePlan]


@dataclass(frozen=True)
class Replay:
    """One replayed run of a cell: what its host's trainer reports, and how long its stages take."""

    cell: str
    seed: int                         # the recorded run it replays
    val: list[float]                  # val/operator/loss per epoch, noise included
    score: list[float]                # val/operator/nrmse_frame per epoch, noise included (may be empty)
    final: dict[str, float]           # the small (and full) eval's metrics
    operator_scale: float             # the operator stage's duration relative to the profile's draw
    other_scale: float                # the other stages' duration relative to the profile's draw
    stages: dict[str, StagePlan]


class Curves:
    def __init__(self, path: Path, sweep: str, cells: dict[str, CellCurves], val_sigma: list[float],
                 final_sigma: float, score_sigma: list[float] | None = None) -> None:
        self.path, self.sweep, self.cells = path, sweep, cells
        self.val_sigma, self.final_sigma = val_sigma, final_sigma
        self.score_sigma = score_sigma or [final_sigma]
        self.median_operator = statistics.median(c.cpu_s_per_epoch * c.epochs for c in cells.values())
        rest = [c.rest_cpu_s for c in cells.values() if c.rest_cpu_s]
        self.median_rest = statistics.median(rest) if rest else None

    def sigma_at(self, epoch: int) -> float:
        """The measured log-sigma of val at an epoch (the last measured one past the end)."""
        return _at(self.val_sigma, epoch)

    def expected(self, cell: str, metric: str = "nrmse_frame") -> float | None:
        """What the replay draws a cell's final metric around: the geometric mean of its recorded runs' (their
        replays scatter about it by the measured noise), so a pick can be judged without its own lucky draw."""
        c = self.cells.get(cell)
        logs = [math.log(r.final[metric]) for r in c.runs if r.final.get(metric, 0) > 0] if c else []
        return math.exp(statistics.fmean(logs)) if logs else None

    def replay(self, cell: str, rng: random.Random) -> Replay | None:
        """A replayed run of `cell` (None if the file has no record of it). One shared draw shifts the whole curve
        (a seed's curve is off the same way all along), so its shape and its crossings are the recorded ones; the
        per-epoch score and the final metrics share another (the score is the same rollout's, epoch by epoch)."""
        c = self.cells.get(cell)
        if c is None:
            return None
        run = rng.choice(c.runs)
        z = rng.gauss(0.0, 1.0)
        val = [v * math.exp(self.sigma_at(e) * z) for e, v in enumerate(run.val)]
        zf = rng.gauss(0.0, 1.0)
        final = {k: v * math.exp(self.final_sigma * zf) for k, v in run.final.items()}
        score = [v * math.exp(_at(self.score_sigma, e) * zf) for e, v in enumerate(run.score)]
        op = c.cpu_s_per_epoch * c.epochs / self.median_operator
        other = c.rest_cpu_s / self.median_rest if c.rest_cpu_s and self.median_rest else 1.0
        return Replay(cell, run.seed, val, score, final, op, other, c.stages)


def default_path(sweep: str, root: Path | None = None) -> Path | None:
    """`curves/<sweep>.json` next to the repository root, if it exists."""
    root = root or Path(__file__).resolve().parents[2]
    path = root / "curves" / f"{sweep}.json"
    return path if path.is_file() else None


def pick_curves(value: str | None, sweep: str) -> Curves | None:
    """A `--curves` value: a file (loaded and checked), 'none', or by default curves/<sweep>.json if the
    repository has it."""
    if value is not None and value.lower() == "none":
        return None
    path = value or default_path(sweep)
    return load_curves(path) if path else None


def load_curves(path: str | Path) -> Curves:
    """Read and check a curves file; a malformed one is refused naming the file and the key."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: curves file not found (record one with bench/curves.py)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON curves file ({exc})") from None
    chk = _Check(path)
    if not isinstance(data, dict):
        raise chk.bad("(top level)", f"expected an object, got {type(data).__name__}")
    sweep = chk.need(data, "sweep", "", str)
    raw_cells = chk.need(data, "cells", "", dict)
    if not raw_cells:
        raise chk.bad("cells", "no cells")
    cells = {name: _cell(chk, f"cells.{name}.", c) for name, c in raw_cells.items()}
    noise = chk.need(data, "noise", "", dict)
    val_sigma = _sigmas(chk.need(noise, "val_log_sigma", "noise.", list))
    if not val_sigma:
        raise chk.bad("noise.val_log_sigma", "no measured value (expected a list of non-negative numbers)")
    final_sigma = chk.need(chk.need(noise, "final_log_sigma", "noise.", dict), "nrmse_frame",
                           "noise.final_log_sigma.", (int, float))
    if final_sigma < 0:
        raise chk.bad("noise.final_log_sigma.nrmse_frame", f"expected a non-negative number, got {final_sigma}")
    return Curves(path, sweep, cells, val_sigma, float(final_sigma), _sigmas(noise.get("score_log_sigma") or []))


def _sigmas(raw: list[Any]) -> list[float]:
    """A per-epoch noise list: its non-negative numbers."""
    return [float(s) for s in raw if isinstance(s, int | float) and not isinstance(s, bool) and s >= 0]


def _at(per_epoch: list[float], epoch: int) -> float:
    """A per-epoch figure at an epoch, the last one past its end."""
    return per_epoch[min(epoch, len(per_epoch) - 1)]


class _Check:
    """Errors that name the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def bad(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {why}")

    def need(self, obj: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            raise self.bad(f"{where}{key}", "missing")
        v = obj[key]
        if not isinstance(v, kind) or isinstance(v, bool):
            raise self.bad(f"{where}{key}", f"expected {_name(kind)}, got {type(v).__name__}")
        return v

    def positive(self, v: Any, key: str) -> float:
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            raise self.bad(key, f"expected a positive number, got {v!r}")
        return float(v)


def _cell(chk: _Check, where: str, c: Any) -> CellCurves:
    epochs = chk.need(c, "epochs", where, int)
    if epochs < 1:
        raise chk.bad(f"{where}epochs", f"expected at least 1, got {epochs}")
    cost = chk.positive(chk.need(c, "cpu_s_per_epoch", where, (int, float)), f"{where}cpu_s_per_epoch")
    runs = []
    for i, r in enumerate(chk.need(c, "runs", where, list)):
        rw = f"{where}runs[{i}]."
        val = chk.need(r, "val", rw, list)
        if not val:
            raise chk.bad(f"{rw}val", "empty")
        vals = tuple(chk.positive(v, f"{rw}val[{j}]") for j, v in enumerate(val))
        final = chk.need(r, "final", rw, dict)
        chk.positive(chk.need(final, "nrmse_frame", f"{rw}final.", (int, float)), f"{rw}final.nrmse_frame")
        finals = {k: float(v) for k, v in final.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        score = r.get("score", [])
        if not isinstance(score, list) or (score and len(score) != len(vals)):
            raise chk.bad(f"{rw}score", f"expected one value per epoch of val ({len(vals)}), got {score!r:.60}")
        scores = tuple(chk.positive(v, f"{rw}score[{j}]") for j, v in enumerate(score))
        runs.append(RecordedRun(int(r.get("seed", 0)), vals, finals, scores))
    if not runs:
        raise chk.bad(f"{where}runs", "no recorded runs")
    rest = c.get("process_cpu_s")
    rest_cpu = float(rest) - cost * epochs if isinstance(rest, int | float) and rest > cost * epochs else None
    return CellCurves(epochs, cost, rest_cpu, tuple(runs), _stages(c.get("stages"), where, epochs, chk))


def _stages(raw: Any, where: str, epochs: int, chk: _Check) -> dict[str, StagePlan]:
    out = {s: StagePlan(e, spe, e * spe) for s, (e, spe) in DEFAULT_PLAN.items()}
    if raw is None:
        return {**out, "operator": StagePlan(epochs, DEFAULT_PLAN["operator"][1], epochs * DEFAULT_PLAN["operator"][1])}
    if not isinstance(raw, dict):
        raise chk.bad(f"{where}stages", f"expected an object, got {type(raw).__name__}")
    for stage, p in raw.items():
        if stage not in STAGES:
            raise chk.bad(f"{where}stages.{stage}", f"not a stage; allowed: {', '.join(STAGES)}")
        try:
            out[stage] = StagePlan(int(p["epochs"]), int(p["steps_per_epoch"]), int(p["steps"]))
        except (KeyError, TypeError, ValueError):
            raise chk.bad(f"{where}stages.{stage}", "expected {epochs, steps_per_epoch, steps} integers") from None
    return out


def _name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
