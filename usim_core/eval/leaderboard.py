"""Leaderboard across a sweep's eval JSONs, and the gate against a frozen champion (no torch).

Layout: <sweep_dir>/<cell>/<attempt>/eval/<name>.json. Runs are ranked, and the champion is chosen, on VAL
only: every row carries `val_score`, its run's val (small) eval metric, and test rows are ordered by it, never by
their own test numbers. The champion is a file frozen earlier (`--freeze`); the gate never compares a run with
itself, and a failed gate is a recorded result (exit 0). Beside each row: persistence, FNO, the coarse-solver
reference (its grid, nRMSE and CPU cost per trajectory) and the model's own CPU cost per trajectory.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

from usim_core.config import ConfigError
from usim_core.eval.schema import METRIC_KEYS, PRIMARY_METRIC, validate_report

CHAMPION_KIND = "usim-champion"
ID_KEYS = ("name", "split", "cell", "attempt", "primary_mode", "stage", "config_hash", "manifest_hash",
           "rows_hash", "trajectories", "domain_length", "domain_dt")


def find_reports(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("eval/*.json") if not p.name.startswith("."))


def row_of(path: Path, root: Path) -> dict[str, Any]:
    rep = json.loads(path.read_text())
    validate_report(rep)
    rel = path.relative_to(root).parts  # <cell>/<attempt>/eval/<name>.json (or shorter)
    base = rep["baselines"]
    row: dict[str, Any] = {
        "name": rep["name"], "split": rep["split"],
        "cell": rel[-4] if len(rel) >= 4 else (rel[-3] if len(rel) >= 3 else ""),
        "attempt": rel[-3] if len(rel) >= 4 else "",
        "primary_mode": rep["primary_mode"], "stage": rep["stage"], "config_hash": rep["config_hash"],
        "manifest_hash": rep["manifest_hash"], "rows_hash": rep["rows_hash"], "trajectories": rep["trajectories"],
        **{k: rep["metrics"].get(k) for k in METRIC_KEYS},
        "persistence_nrmse_rollout": base["persistence"]["metrics"]["nrmse_rollout"],
        "persistence_nrmse_frame": base["persistence"]["metrics"].get("nrmse_frame"),
        "fno_nrmse_rollout": (base.get("fno") or {}).get("metrics", {}).get("nrmse_rollout"),
        "fno_nrmse_frame": (base.get("fno") or {}).get("metrics", {}).get("nrmse_frame"),
        **_coarse_columns(base.get("coarse_solver")),
        "model_cpu_s_per_traj": rep.get("model_cpu_s_per_traj"),
        "domain_length": (rep.get("domain") or {}).get("length", 1.0),
        "domain_dt": (rep.get("domain") or {}).get("dt"),
        "ttc_gain": rep["ttc"]["gain"],
        "checkpoint": rep["checkpoint"], "path": str(path),
    }
    model, pers = row[PRIMARY_METRIC], row[f"persistence_{PRIMARY_METRIC}"]
    row["ratio_to_persistence"] = model / pers if model is not None and pers else None
    return row


def _coarse_columns(coarse: dict[str, Any] | None) -> dict[str, Any]:
    c = coarse or {}
    return {"coarse_nx": c.get("nx"), "coarse_nrmse_frame": c.get("nrmse_frame"),
            "coarse_nrmse_rollout": c.get("nrmse_rollout"), "coarse_cpu_s_per_traj": c.get("cpu_s_per_traj")}


def val_first(val: float | None, own: float | None) -> tuple:
    """Sort key of a run: its val score (runs without a val eval last), then its own value only to order
    those. The report and the app rank with it too, so test numbers never choose anywhere."""
    return (val is None, val if val is not None else 0.0, own is None, own if own is not None else 0.0)


def _key(metric: str):
    """Within an eval name: by the run's val score, then the row's own value."""
    def key(r: dict[str, Any]) -> tuple:
        return (r["name"], *val_first(r["val_score"], r[metric]))
    return key


def domain_key(r: dict[str, Any]) -> tuple[float, float | None]:
    """The problem a row was evaluated on: its domain's length and frame spacing (dt rounded: floats from files)."""
    dt = r.get("domain_dt")
    return (float(r.get("domain_length", 1.0)), None if dt is None else round(float(dt), 9))


def check_one_domain(rows: list[dict[str, Any]], root: Path) -> None:
    """Refuse a directory whose runs were evaluated on different domains: different problems at the same nu,
    so ranking them together (and freezing a champion across them) would compare nothing."""
    runs: dict[tuple, list[str]] = {}
    for r in rows:
        run = f"{r['cell']}/{r['attempt']}".strip("/") or r["path"]
        runs.setdefault(domain_key(r), [])
        if run not in runs[domain_key(r)]:
            runs[domain_key(r)].append(run)
    if len(runs) > 1:
        parts = [f"length {k[0]:g}, dt {'?' if k[1] is None else f'{k[1]:g}'}: {', '.join(v[:4])}"
                 f"{f' and {len(v) - 4} more' if len(v) > 4 else ''}" for k, v in sorted(runs.items(), key=str)]
        raise ConfigError(f"{root}: runs evaluated on different domains (different problems at the same nu) cannot "
                          f"be ranked together; domain length/dt differ: {'; '.join(parts)}. Rank each domain's runs "
                          "from their own directory")


def _attach_val_scores(rows: list[dict[str, Any]], metric: str) -> None:
    """val_score of every row: the metric of its own run's val-split eval (None when the run has none)."""
    val = {(r["cell"], r["attempt"]): r[metric] for r in rows if r["split"] == "val"}
    for r in rows:
        r["val_score"] = val.get((r["cell"], r["attempt"]))


def build(root: str | Path, metric: str = PRIMARY_METRIC) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows sorted by eval name then metric, unreadable files with the reason)."""
    root = Path(root)
    if metric not in METRIC_KEYS:
        raise ConfigError(f"--metric {metric!r}: allowed values are {', '.join(METRIC_KEYS)}")
    if not root.is_dir():
        raise ConfigError(f"{root}: not a directory (expected runs/<sweep>)")
    rows, bad = [], []
    for p in find_reports(root):
        try:
            rows.append(row_of(p, root))
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            bad.append(f"{p}: {str(exc).splitlines()[0]}")
    check_one_domain(rows, root)
    _attach_val_scores(rows, metric)
    rows.sort(key=_key(metric))
    for i, r in enumerate(rows):
        r["rank"] = 1 + sum(1 for o in rows[:i] if o["name"] == r["name"])
    return rows, bad


def choose_on_val(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The `name` row (small | full) of the run with the best val score; never chosen by test numbers."""
    ranked = [r for r in rows if r["name"] == name and r["val_score"] is not None]
    if not ranked:
        raise ConfigError(f"--freeze: no '{name}' eval whose run has a val (small) eval with a finite metric; "
                          "the champion is chosen on val only")
    return min(ranked, key=lambda r: r["val_score"])


def freeze(row: dict[str, Any], path: str | Path) -> dict[str, Any]:
    champ = {"kind": CHAMPION_KIND, "frozen_at": time.time(), "source": row["path"],
             **{k: row[k] for k in ID_KEYS}, "checkpoint": row["checkpoint"],
             "val_score": row.get("val_score"), "metrics": {k: row.get(k) for k in METRIC_KEYS}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(champ, indent=2))
    os.replace(tmp, path)
    return champ


def load_champion(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: champion file not found (freeze one first: usim-core leaderboard DIR --freeze FILE)")
    try:
        champ = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(champ, dict) or champ.get("kind") != CHAMPION_KIND:
        raise ConfigError(f"{path}: not a champion file (kind must be {CHAMPION_KIND!r})")
    return champ


def gate(row: dict[str, Any], champ: dict[str, Any], metric: str = PRIMARY_METRIC,
         tolerance: float = 0.0) -> dict[str, Any]:
    """pass | fail | self (the champion's own run) | incomparable; lower metric is better."""
    out = {"metric": metric, "tolerance": tolerance, "value": row.get(metric),
           "champion_value": champ["metrics"].get(metric), "champion_source": champ["source"]}
    same_file = Path(row["path"]).resolve() == Path(champ["source"]).resolve()
    if same_file or row["checkpoint"] == champ["checkpoint"]:
        return {**out, "status": "self", "reason": "this is the champion's own run; nothing to compare"}
    (length, dt), (c_length, c_dt) = domain_key(row), domain_key(champ)
    if length != c_length or (dt is not None and c_dt is not None and dt != c_dt):  # champions frozen without dt
        return {**out, "status": "incomparable", "reason": "domain length or dt differs: a different problem"}
    for k in ("split", "manifest_hash", "rows_hash"):
        if row[k] != champ[k]:
            return {**out, "status": "incomparable",
                    "reason": f"{k} differs ({row[k]} vs champion {champ[k]}): not the same trajectories"}
    if out["value"] is None or out["champion_value"] is None:
        return {**out, "status": "fail", "reason": f"{metric} is missing or diverged"}
    passed = out["value"] <= out["champion_value"] * (1 + tolerance)
    return {**out, "status": "pass" if passed else "fail",
            "reason": f"{metric} {out['value']:.4g} {'<=' if passed else '>'} champion "
                      f"{out['champion_value']:.4g} x (1 + {tolerance:g})"}


def write(root: str | Path, rows: list[dict[str, Any]], extra: dict[str, Any]) -> tuple[Path, Path]:
    root = Path(root)
    js, cs = root / "leaderboard.json", root / "leaderboard.csv"
    js.write_text(json.dumps({"rows": rows, **extra}, indent=2))
    cols = ["rank", *ID_KEYS[:3], "val_score", *METRIC_KEYS, "persistence_nrmse_rollout", "fno_nrmse_rollout",
            "persistence_nrmse_frame", "fno_nrmse_frame", "coarse_nx", "coarse_nrmse_frame", "coarse_cpu_s_per_traj",
            "model_cpu_s_per_traj", "ratio_to_persistence", "ttc_gain", "gate", *ID_KEYS[3:], "path"]
    with open(cs, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "gate": (r.get("gate") or {}).get("status", "")})
    return js, cs
