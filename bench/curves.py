"""Record the real learning curves of a sweep's cells at a scale this CPU can train, for the rehearsal to replay.

    nice -n 10 .venv/bin/python bench/curves.py [SWEEP] [--out curves/<sweep>.json] [--epochs 10] [--jobs 2]
    .venv/bin/python bench/curves.py --dry-run            # print each run's scaled overrides, train nothing
    .venv/bin/python bench/curves.py --only CELL          # one cell, one seed: measure its cost first
    .venv/bin/python bench/curves.py --analyse curves/overnight_sota.json   # crossings, slow starters, ranks

Every cell of the sweep (default configs/sweeps/overnight_sota.yaml) is expanded with usim_core.sweep.expand, then
brought to the tiny config's scale (configs/runs/burgers_tiny.yaml: its data, codec and depths; operator and
diffusion widths halved, so the capacity cells keep their heads and their order; learning rates times tiny/base's
operator lr; the operator's epochs `--epochs` for a cell with the base's epochs, in proportion for a cell that
changes them: "extended" trains 35/25 as long). Each run is the real `usim-core train` (all four stages, then the
small eval on the whole val split; the full eval is off), one thread, on the CPU. Recorded per run: the operator's
per-epoch `val/operator/loss` (its metric events), the small eval's metrics, the operator stage's process CPU
seconds (its checkpoint's `cpu_s`) and the run's own process CPU seconds.

A few cells (--noise-cells) are repeated with more seeds (--noise-seeds) to measure run-to-run noise: the
standard deviation across seeds of log(val) at each epoch and of log(nrmse_frame), pooled over those cells.

Resumable: each finished run is a part file under --work (default runs/curves/<sweep>/parts/); a rerun skips it.
The JSON (--out) is rebuilt from the parts at the end of every invocation, with the exact command.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from usim_core.config import STAGES, config_hash, deep_merge, get_dotted, load_tree, set_dotted, validate  # noqa: E402
from usim_core.sweep import expand  # noqa: E402

TINY = ROOT / "configs/runs/burgers_tiny.yaml"
BASE_SEED = 17
WIDTH_SCALE = 0.5   # operator/diffusion hidden_dim: base 96 -> 48; the heads stay (8 channels each at cap64..128)
METRIC_KEYS = ("nrmse_1step", "nrmse_frame", "nrmse_rollout", "rmse", "max_err", "crmse", "brmse", "frmse_low",
               "frmse_mid", "frmse_high", "mass_drift", "energy_violation", "pde_residual")
DEFAULT_NOISE_CELLS = ("round_a_lr3e-4_w5pct", "round_b_cap128", "round_c_tokens48")


# ------------------------------------------------------------------ scaling
def scale_overrides(cell_cfg: dict[str, Any], base_cfg: dict[str, Any], tiny: dict[str, Any], epochs: int
                    ) -> dict[str, Any]:
    """Dotted overrides that bring a cell's resolved config to the tiny scale, keeping what the cell changes."""
    out: dict[str, Any] = {"data": deep_merge(tiny["data"], {"cache_dir": str(ROOT / "data")})}
    codec = dict(tiny["model"]["codec"])
    codec["latent_tokens"] = cell_cfg["model"]["codec"]["latent_tokens"]   # tokens48 keeps its 48
    out["model.codec"] = codec
    for part in ("operator", "diffusion"):
        c = cell_cfg["model"][part]
        out[f"model.{part}.hidden_dim"] = max(c["heads"], round(c["hidden_dim"] * WIDTH_SCALE / c["heads"]) * c["heads"])
        out[f"model.{part}.heads"] = c["heads"]
        out[f"model.{part}.depth"] = tiny["model"][part]["depth"]
    out["model.diffusion.steps"] = tiny["model"]["diffusion"]["steps"]
    lr_scale = tiny["stages"]["operator"]["lr"] / base_cfg["stages"]["operator"]["lr"]
    for stage in STAGES:
        cell_s, base_s, tiny_s = (c["stages"][stage] for c in (cell_cfg, base_cfg, tiny))
        out[f"stages.{stage}.lr"] = float(f"{cell_s['lr'] * tiny_s['lr'] / base_s['lr']:.4g}") if stage != "operator" \
            else float(f"{cell_s['lr'] * lr_scale:.4g}")
        out[f"stages.{stage}.min_lr"] = min(cell_s["min_lr"], out[f"stages.{stage}.lr"])
        out[f"stages.{stage}.batch_size"] = max(1, round(tiny_s["batch_size"] * cell_s["batch_size"]
                                                         / base_s["batch_size"]))
        ratio = cell_s["epochs"] / base_s["epochs"]
        if stage == "operator":
            out[f"stages.{stage}.epochs"] = max(1, round(epochs * ratio))
            out[f"stages.{stage}.max_steps"] = None
            out[f"stages.{stage}.patience"] = max(1, round(epochs * ratio))   # every epoch is recorded
        else:
            out[f"stages.{stage}.epochs"] = max(1, round(tiny_s["epochs"] * ratio))
            cap = tiny_s.get("max_steps")
            out[f"stages.{stage}.max_steps"] = max(1, round(cap * ratio)) if cap else None
        for key in ("unroll", "galilean", "initial_repeat"):
            if key in tiny_s:
                out[f"stages.{stage}.{key}"] = tiny_s[key]
    ttc, base_ttc, tiny_ttc = cell_cfg["eval"]["ttc"], base_cfg["eval"]["ttc"], tiny["eval"]["ttc"]
    out["eval.ttc.candidates"] = max(1, round(tiny_ttc["candidates"] * ttc["candidates"] / base_ttc["candidates"]))
    out["eval.ttc.max_evaluations"] = max(1, round(tiny_ttc["max_evaluations"] * ttc["max_evaluations"]
                                                   / base_ttc["max_evaluations"]))
    out["eval.small"] = {**tiny["eval"]["small"], "trajectories": None, "split": "val"}
    out["eval.full.enabled"] = False
    out["tracking.wandb.mode"] = "disabled"
    return out


def scaled_config(cell_cfg: dict[str, Any], overrides: dict[str, Any], seed: int) -> dict[str, Any]:
    tree = deep_merge(cell_cfg, {})
    for key, value in overrides.items():
        set_dotted(tree, key, value)
    tree["seed"] = seed
    return validate(tree, "<scaled cell>").to_dict()


# ------------------------------------------------------------------ one run
def part_path(work: Path, cell: str, seed: int) -> Path:
    return work / "parts" / f"{cell}__seed{seed}.json"


def read_run(run_dir: Path) -> dict[str, Any]:
    """The operator's per-epoch val, the small eval's metrics and the operator's CPU seconds from a run dir."""
    from usim_core.train.checkpoint import load_checkpoint

    val: dict[int, float] = {}
    scores: dict[int, float] = {}
    small: dict[str, float] = {}
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e.get("kind") == "metric" and e.get("stage") == "operator" and "val/operator/loss" in e.get("metrics", {}):
            val[int(e["epoch"])] = float(e["metrics"]["val/operator/loss"])
            scores[int(e["epoch"])] = float(e["metrics"]["val/operator/nrmse_frame"])
        elif e.get("kind") == "eval" and e.get("name") == "small":
            small = {k: float(v) for k, v in e["metrics"].items() if k in METRIC_KEYS and v is not None}
    ck = load_checkpoint(run_dir / "checkpoints" / "operator.pt")
    epochs_run = int(ck["extra"]["loop"]["epoch"])
    return {"val": [round(val[i], 7) for i in sorted(val)], "score": [round(scores[i], 7) for i in sorted(scores)],
            "final": small, "operator_epochs": epochs_run,
            "operator_cpu_s": float(ck["extra"]["cpu_s"])}


def run_one(work: Path, cell: str, seed: int, cfg: dict[str, Any]) -> dict[str, Any]:
    import yaml

    run_dir = work / "runs" / f"{cell}__seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)   # an unfinished run starts over
    run_dir.mkdir(parents=True)
    cfg_path = run_dir.parent / f"{cell}__seed{seed}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [str(ROOT / ".venv/bin/usim-core"), "train", "--config", str(cfg_path), "--run-dir", str(run_dir),
           "--device", "cpu"]
    if os.nice(0) < 10:
        cmd = ["nice", "-n", "10", *cmd]
    env = {**os.environ, "USIM_THREADS": "1", "WANDB_MODE": "offline"}
    with open(run_dir.parent / f"{cell}__seed{seed}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cell} seed {seed}: usim-core train exited {proc.returncode}; see {log.name}")
    rec = {"cell": cell, "seed": seed, "config_hash": config_hash(cfg), **read_run(run_dir),
           "process_cpu_s": round(usage.ru_utime + usage.ru_stime, 2)}
    path = part_path(work, cell, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1))
    tmp.replace(path)
    shutil.rmtree(run_dir, ignore_errors=True)
    return rec


def reuse_runs(path: Path, overrides: dict[str, dict[str, Any]], configs: dict[tuple[str, int], dict[str, Any]],
               parts: dict[tuple[str, int], dict[str, Any]], epochs: int) -> list[str]:
    """Fill parts from an earlier curves file, cell by cell, where it scaled the cell exactly as now; the cells taken.

    The file keeps each cell's median CPU seconds, not each run's: a reused run carries its cell's medians."""
    old = json.loads(path.read_text())
    if old["scale"]["operator_epochs_for_base_epochs"] != epochs:
        raise SystemExit(f"--reuse {path}: recorded at {old['scale']['operator_epochs_for_base_epochs']} operator "
                         f"epochs, this recording asks for {epochs}")
    taken = []
    for (n, s), cfg in configs.items():
        cell = old["cells"].get(n)
        same = json.loads(json.dumps({k: v for k, v in overrides[n].items() if k != "data"}, default=str))
        if (n, s) in parts or not cell or old["scale"]["overrides"].get(n) != same:
            continue
        run = next((r for r in cell["runs"] if r["seed"] == s), None)
        if run is None:
            continue
        parts[n, s] = {"cell": n, "seed": s, "config_hash": config_hash(cfg), "val": run["val"], "final": run["final"],
                       "operator_epochs": cell["epochs"], "operator_cpu_s": cell["cpu_s_per_epoch"] * cell["epochs"],
                       "process_cpu_s": cell["process_cpu_s"]}
        taken.append(f"{n}@{s}")
    print(f"--reuse {path}: {len(taken)} runs taken", flush=True)
    return taken


# ------------------------------------------------------------------ the file
def log_sigma(series: list[list[float]]) -> float | None:
    """Std (ddof 1) of log values across seeds; None with fewer than two."""
    logs = [math.log(v) for v in series if v > 0]
    return statistics.stdev(logs) if len(logs) >= 2 else None


def measure_noise(cells: dict[str, Any]) -> dict[str, Any]:
    """Pooled (root mean square) log-sigma across seeds: per epoch of val and of the rollout score, and of the
    final nrmse_frame."""
    per_epoch: dict[int, list[float]] = {}
    score_epoch: dict[int, list[float]] = {}
    final, per_cell = [], {}
    for name, c in cells.items():
        runs = c["runs"]
        if len(runs) < 2 or c.get("duplicate_of"):   # a duplicate is its original's runs: count them once
            continue
        n = min(len(r["val"]) for r in runs)
        sig = [log_sigma([r["val"][e] for r in runs]) for e in range(n)]
        for e, s in enumerate(sig):
            if s is not None:
                per_epoch.setdefault(e, []).append(s)
        if all(r.get("score") for r in runs):
            for e in range(n):
                if (s := log_sigma([r["score"][e] for r in runs])) is not None:
                    score_epoch.setdefault(e, []).append(s)
        f = log_sigma([r["final"].get("nrmse_frame", math.nan) for r in runs])
        if f is not None:
            final.append(f)
        per_cell[name] = {"seeds": [r["seed"] for r in runs], "val_log_sigma": [round(s, 4) for s in sig if s is not None],
                          "final_log_sigma": None if f is None else round(f, 4)}

    def rms(xs: list[float]) -> float | None:
        return round(math.sqrt(sum(x * x for x in xs) / len(xs)), 4) if xs else None

    val = [rms(per_epoch[e]) for e in sorted(per_epoch)]
    return {"val_log_sigma": val, "score_log_sigma": [rms(score_epoch[e]) for e in sorted(score_epoch)], "val_log_sigma_median": None if not val else round(statistics.median(
        [v for v in val if v is not None]), 4), "final_log_sigma": {"nrmse_frame": rms(final)}, "cells": per_cell}


def stage_plans(configs: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """Each cell's {stage: {epochs, steps, steps_per_epoch}} as the trainer plans them (train/loop.py plan_steps) on
    the cached data, so a replay's stage_start events carry the recorded run's numbers."""
    from usim_core.config import RunConfig
    from usim_core.data import prepare_data
    from usim_core.train.loop import plan_steps
    from usim_core.train.losses import stage_horizon

    out: dict[str, dict[str, dict[str, int]]] = {}
    bundle = None
    for name, tree in configs.items():
        cfg = RunConfig.model_validate(tree)
        bundle = bundle or prepare_data(cfg, ROOT)   # every cell has the same data
        n_traj, nt = bundle.train.u.shape[0], bundle.train.u.shape[1]
        out[name] = {}
        for stage in STAGES:
            sc = getattr(cfg.stages, stage)
            n = n_traj * (nt - stage_horizon(stage, cfg)) + (sc.initial_repeat - 1) * n_traj * sc.initial_span
            per_epoch, total = plan_steps(cfg, stage, n)
            out[name][stage] = {"epochs": sc.epochs, "steps": total, "steps_per_epoch": per_epoch}
    return out


def build_file(sweep: Any, parts: dict[tuple[str, int], dict[str, Any]], meta: dict[str, Any],
               plans: dict[str, dict[str, dict[str, int]]]) -> dict[str, Any]:
    """The curves file; a duplicate cell (the same resolved config as another) gets its original's record."""
    cells: dict[str, Any] = {}
    names = [c.name for c in sweep.cells if not c.duplicate_of]
    for name in names:
        runs = sorted((r for (c, _), r in parts.items() if c == name), key=lambda r: r["seed"] != BASE_SEED)
        if not runs:
            continue
        cpu = statistics.median(r["operator_cpu_s"] / max(1, r["operator_epochs"]) for r in runs)
        cells[name] = {"epochs": runs[0]["operator_epochs"], "cpu_s_per_epoch": round(cpu, 3),
                       "process_cpu_s": round(statistics.median(r["process_cpu_s"] for r in runs), 1),
                       "stages": plans[name],
                       "runs": [{"seed": r["seed"], "val": r["val"], "score": r["score"], "final": r["final"]}
                                for r in runs]}
    for c in sweep.cells:
        if c.duplicate_of and c.duplicate_of in cells:
            cells[c.name] = {**cells[c.duplicate_of], "duplicate_of": c.duplicate_of}
    total = sum(r["process_cpu_s"] for r in parts.values())
    return {"version": 1, "sweep": sweep.name, **meta, "metric": "val/operator/loss", "final_metric": "nrmse_frame",
            "recording_cpu_s": round(total, 1), "cells": cells, "noise": measure_noise(cells)}


# ------------------------------------------------------------------ analysis
def spearman(a: list[float], b: list[float]) -> float:
    def ranks(xs: list[float]) -> list[float]:
        order = sorted(range(len(xs)), key=lambda i: xs[i])
        r = [0.0] * len(xs)
        for pos, i in enumerate(order):
            r[i] = float(pos)
        return r

    ra, rb = ranks(a), ranks(b)
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb, strict=True)) / (n * (n * n - 1))


def analyse(data: dict[str, Any]) -> str:
    """Plain-text facts about the curves (seed-17 runs): crossings, late bloomers, rank agreement."""
    cells = {n: c["runs"][0] for n, c in data["cells"].items() if not c.get("duplicate_of")}
    lines = []
    common = min(len(r["val"]) for r in cells.values())
    names = sorted(cells)
    lines.append(f"{len(cells)} cells; common epochs {common}; noise val log-sigma "
                 f"{data['noise']['val_log_sigma']} final {data['noise']['final_log_sigma']}")
    for e in range(common):
        order = sorted(names, key=lambda n: cells[n]["val"][e])
        lines.append(f"epoch {e:2d} rank by val: " + " ".join(f"{n}({cells[n]['val'][e]:.3g})" for n in order))
    last = {n: min(cells[n]["val"]) for n in names}
    final = {n: cells[n]["final"].get("nrmse_frame", math.nan) for n in names}
    by_val = sorted(names, key=lambda n: last[n])
    by_final = sorted(names, key=lambda n: final[n])
    lines.append("best val order:      " + " ".join(f"{n}({last[n]:.3g})" for n in by_val))
    lines.append("nrmse_frame order:   " + " ".join(f"{n}({final[n]:.3g})" for n in by_final))
    lines.append(f"spearman(best val, nrmse_frame) = {spearman([last[n] for n in names], [final[n] for n in names]):.3f}")
    mean = {n: statistics.fmean(r["final"]["nrmse_frame"] for r in data["cells"][n]["runs"]) for n in names}
    lines.append("nrmse_frame, mean over seeds where several: " + " ".join(
        f"{n}({mean[n]:.3g})" for n in sorted(names, key=lambda n: mean[n])))
    lines.append(f"spearman(best val, that) = {spearman([last[n] for n in names], [mean[n] for n in names]):.3f}")
    for e in range(common):
        at = [cells[n]["val"][e] for n in names]
        lines.append(f"spearman(val@epoch{e}, best val) = {spearman(at, [last[n] for n in names]):.3f}; "
                     f"(val@epoch{e}, nrmse_frame) = {spearman(at, [final[n] for n in names]):.3f}")
    if all(cells[n].get("score") for n in names):   # the trainer's per-epoch rollout score (what picks champions)
        for e in range(common):
            at = [cells[n]["score"][e] for n in names]
            lines.append(f"spearman(score@epoch{e}, nrmse_frame) = {spearman(at, [final[n] for n in names]):.3f}")
    sig = data["noise"]["val_log_sigma"]
    for e in range(common):   # two runs' log gap has noise sigma*sqrt(2): "apart" when above twice that
        s_e = sig[min(e, len(sig) - 1)] if sig else None
        if not s_e:
            continue
        logs = [math.log(cells[n]["val"][e]) for n in names]
        pairs = [(x, y) for i, x in enumerate(logs) for y in logs[i + 1:]]
        apart = sum(1 for x, y in pairs if abs(x - y) > 2 * math.sqrt(2) * s_e)
        lines.append(f"epoch {e}: spread of log val {max(logs) - min(logs):.3f}, noise sigma {s_e:.3f}; "
                     f"{apart}/{len(pairs)} pairs apart by more than 2 sqrt(2) sigma")
    crossings = 0
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = [cells[a]["val"][e] - cells[b]["val"][e] for e in range(common)]
            crossings += sum(1 for x, y in zip(d, d[1:], strict=False) if x * y < 0)
    lines.append(f"pairwise crossings of the seed-{BASE_SEED} curves over the common epochs: {crossings}")
    for n in names:
        r0 = sorted(names, key=lambda m: cells[m]["val"][0]).index(n) + 1
        rmid = sorted(names, key=lambda m: cells[m]["val"][common // 2]).index(n) + 1
        rend = by_val.index(n) + 1
        lines.append(f"{n}: rank at epoch 0 {r0}, at epoch {common // 2} {rmid}, best-val {rend}, "
                     f"nrmse_frame {by_final.index(n) + 1}; epochs {data['cells'][n]['epochs']}, "
                     f"cpu_s/epoch {data['cells'][n]['cpu_s_per_epoch']}")
    return "\n".join(lines)


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", nargs="?", default="configs/sweeps/overnight_sota.yaml")
    ap.add_argument("--out", help="the curves JSON (default curves/<sweep name>.json)")
    ap.add_argument("--work", help="part files and run dirs (default runs/curves/<sweep name>)")
    ap.add_argument("--epochs", type=int, default=8, help="operator epochs of a cell with the base's epochs")
    ap.add_argument("--noise-cells", default=",".join(DEFAULT_NOISE_CELLS), help="cells repeated with more seeds")
    ap.add_argument("--noise-seeds", default="18,19", help=f"the extra seeds (the cells' own is {BASE_SEED})")
    ap.add_argument("--jobs", type=int, default=2, help="trainers at once (one thread each)")
    ap.add_argument("--only", help="record just this cell at seed 17 (to measure its cost first)")
    ap.add_argument("--from-parts", action="store_true", help="write the JSON from the runs recorded so far, train "
                    "nothing (while a recording goes on, or to look at a partial one)")
    ap.add_argument("--reuse", metavar="JSON", help="take the runs of a cell from an earlier curves file instead of "
                    "training it again, where that file scaled the cell to exactly the same overrides")
    ap.add_argument("--dry-run", action="store_true", help="print each run's scaled overrides and stop")
    ap.add_argument("--analyse", metavar="JSON", help="print crossings, slow starters and rank agreement of a file")
    args = ap.parse_args(argv)
    if args.analyse:
        print(analyse(json.loads(Path(args.analyse).read_text())))
        return 0

    sweep = expand(args.sweep)
    out = Path(args.out or ROOT / "curves" / f"{sweep.name}.json")
    work = Path(args.work or ROOT / "runs" / "curves" / sweep.name)
    tiny_tree, origins = load_tree(TINY)
    tiny = validate(tiny_tree, TINY, origins).to_dict()
    base_tree, base_origins = load_tree((sweep.path.parent / sweep.spec.base).resolve())
    base = validate(base_tree, sweep.spec.base, base_origins).to_dict()
    names = [c.name for c in sweep.cells if not c.duplicate_of]
    noise_cells = [n for n in args.noise_cells.split(",") if n]
    for n in noise_cells:
        if n not in names:
            ap.error(f"--noise-cells: {n!r} is not a cell of {sweep.path}; cells: {', '.join(names)}")
    seeds = [int(s) for s in args.noise_seeds.split(",") if s]
    todo = [(n, BASE_SEED) for n in names] + [(n, s) for n in noise_cells for s in seeds]
    if args.only:
        if args.only not in names:
            ap.error(f"--only: {args.only!r} is not a cell of {sweep.path}; cells: {', '.join(names)}")
        todo = [(args.only, BASE_SEED)]
    overrides = {n: scale_overrides(sweep.cell(n).config, base, tiny, args.epochs) for n in names}
    if args.dry_run:
        for n in names:
            shown = {k: v for k, v in overrides[n].items() if k != "data" and not k.startswith("eval.small")}
            print(n, json.dumps({k: v for k, v in shown.items()
                                 if get_dotted(sweep.cell(n).config, k) != v}, default=str))
        return 0

    configs = {(n, s): scaled_config(sweep.cell(n).config, overrides[n], s) for n, s in todo}
    parts = {}
    for n, s in todo:   # a part recorded at another scale (its config's hash differs) is recorded again
        path = part_path(work, n, s)
        if path.exists() and (rec := json.loads(path.read_text())).get("config_hash") == config_hash(configs[n, s]) \
                and "score" in rec:   # recorded before the trainer wrote its per-epoch score: again
            parts[n, s] = rec
    reused = reuse_runs(Path(args.reuse), overrides, configs, parts, args.epochs) if args.reuse else []
    pending = [] if args.from_parts else [(n, s) for n, s in todo if (n, s) not in parts]
    print(f"{len(todo)} runs, {len(parts)} recorded, {len(pending)} to go (work dir {work})", flush=True)
    lock, t0, done = threading.Lock(), time.time(), [0]

    def one(job: tuple[str, int]) -> None:
        n, s = job
        rec = run_one(work, n, s, configs[job])
        with lock:
            parts[job] = rec
            done[0] += 1
            el = time.time() - t0
            eta = el / done[0] * (len(pending) - done[0])
            print(f"[{done[0]}/{len(pending)}] {n} seed {s}: {rec['process_cpu_s']:.0f} CPU s "
                  f"(operator {rec['operator_cpu_s']:.0f} s over {rec['operator_epochs']} epochs), val "
                  f"{rec['val'][0]:.3g} -> {rec['val'][-1]:.3g}, nrmse_frame {rec['final'].get('nrmse_frame')}; "
                  f"{el / 60:.1f} min elapsed, ~{eta / 60:.1f} min to go", flush=True)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for fut in [pool.submit(one, job) for job in pending]:
            fut.result()
    example = overrides[names[0]]
    meta = {"command": " ".join(["nice -n 10 .venv/bin/python bench/curves.py",
                                 *map(shlex.quote, [a for a in (argv if argv is not None else sys.argv[1:])
                                                  if a != "--from-parts"])]),
            "scale": {"from": "configs/runs/burgers_tiny.yaml", "width_scale": WIDTH_SCALE,
                      "operator_lr_scale": tiny["stages"]["operator"]["lr"] / base["stages"]["operator"]["lr"],
                      "operator_epochs_for_base_epochs": args.epochs, "threads": 1, "device": "cpu",
                      "data": example["data"] | {"cache_dir": "data"},
                      "overrides": {n: {k: v for k, v in o.items() if k != "data"} for n, o in overrides.items()}},
            "seeds": {"base": BASE_SEED, "noise_cells": noise_cells, "noise_seeds": seeds}}
    if reused:
        meta["reused"] = {"from": args.reuse, "cells": reused}
    if args.only:
        print(json.dumps(parts[(args.only, BASE_SEED)], indent=1))
        return 0
    plans = stage_plans({n: configs[n, BASE_SEED] for n in names})
    data = build_file(sweep, parts, meta, plans)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out} ({len(data['cells'])} cells, {data['recording_cpu_s'] / 60:.1f} CPU min recorded)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
