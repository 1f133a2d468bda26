"""Leaderboard across a sweep's eval JSONs, and the gate against a frozen champion (no torch).

Layout: <sweep_dir>/<cell>/<attempt>/eval/<name>.json. The champion is a file frozen earlier
(`--freeze`); the gate never compares a run with itself, and a failed gate is a recorded result (exit 0).
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

from usim_core.config import ConfigError
from usim_core.eval.schema import METRIC_KEYS, validate_report

CHAMPION_KIND = "usim-champion"
ID_KEYS = ("name", "split", "cell", "attempt", "primary_mode", "stage", "config_hash", "manifest_hash",
           "rows_hash", "trajectories")


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
        **rep["metrics"],
        "persistence_nrmse_rollout": base["persistence"]["metrics"]["nrmse_rollout"],
        "fno_nrmse_rollout": (base.get("fno") or {}).get("metrics", {}).get("nrmse_rollout"),
        "ttc_gain": rep["ttc"]["gain"],
        "checkpoint": rep["checkpoint"], "path": str(path),
    }
    model, pers = row["nrmse_rollout"], row["persistence_nrmse_rollout"]
    row["ratio_to_persistence"] = model / pers if model is not None and pers else None
    return row


def _key(metric: str):
    return lambda r: (r["name"], r[metric] is None, r[metric] if r[metric] is not None else 0.0)


def build(root: str | Path, metric: str = "nrmse_rollout") -> tuple[list[dict[str, Any]], list[str]]:
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
    rows.sort(key=_key(metric))
    for i, r in enumerate(rows):
        r["rank"] = 1 + sum(1 for o in rows[:i] if o["name"] == r["name"])
    return rows, bad


def freeze(row: dict[str, Any], path: str | Path) -> dict[str, Any]:
    champ = {"kind": CHAMPION_KIND, "frozen_at": time.time(), "source": row["path"],
             **{k: row[k] for k in ID_KEYS}, "checkpoint": row["checkpoint"],
             "metrics": {k: row[k] for k in METRIC_KEYS}}
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


def gate(row: dict[str, Any], champ: dict[str, Any], metric: str = "nrmse_rollout",
         tolerance: float = 0.0) -> dict[str, Any]:
    """pass | fail | self (the champion's own run) | incomparable; lower metric is better."""
    out = {"metric": metric, "tolerance": tolerance, "value": row.get(metric),
           "champion_value": champ["metrics"].get(metric), "champion_source": champ["source"]}
    same_file = Path(row["path"]).resolve() == Path(champ["source"]).resolve()
    if same_file or row["checkpoint"] == champ["checkpoint"]:
        return {**out, "status": "self", "reason": "this is the champion's own run; nothing to compare"}
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
    cols = ["rank", *ID_KEYS[:3], *METRIC_KEYS, "persistence_nrmse_rollout", "fno_nrmse_rollout",
            "ratio_to_persistence", "ttc_gain", "gate", *ID_KEYS[3:], "path"]
    with open(cs, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "gate": (r.get("gate") or {}).get("status", "")})
    return js, cs
