"""Quality protocol: the surrogate against tuned learned baselines and the solver, at equal training FLOPs, over
seeds, on a sealed test set.

    .venv/bin/python bench/quality.py --out FILE.json [--dev] [--quick] [--seeds 0 1 2 3 4] [--jobs 2]
    .venv/bin/python bench/quality.py --tune fno|resnet --out FILE.json     (the baselines' recipes, on val)

1. Data: PDEBench's geometry and initial conditions by default (x in (-1, 1), init_multi; `--geometry unit` for
   usim's own [0, 1) with a mean offset), nu = 0.01, 1024 x 201 -> 256 x 41 (`--nu`, `--t-stride` with `--dev`:
   others, on val; `--t-stride 25`, one step per 0.25, has a final table and a sealed set of its own). Training and
   val come from one generated file (--n trajectories, split 80/10/10; its test part is unused). The final table
   reads a SEALED test set: --test-n trajectories generated with a seed nothing else uses (SEALED, one per regime).
   `--dev` (and `--quick`) report on val and never open it; only a final run reads it, once: every read goes on
   record in docs/bench/sealed_reads.jsonl, and a second needs --reread REASON.
2. Budgets in training FLOPs (torch.utils.flop_counter: matmuls, convolutions, attention; FFTs and elementwise
   ops are not counted, for any model), never CPU seconds: the pipeline trains its stages to step caps (STEPS x
   each --budgets fraction) and its FLOPs are those caps x each stage's FLOPs per optimiser step (measured once);
   each learned baseline trains for as many optimiser steps as that many FLOPs buy it. Process CPU seconds are
   reported beside, as what they are on this machine.
3. Baselines as hard as the model: the FNO (neuralop) and a ResNet stepper, each with its recipe tuned on val
   (`--tune`; the choice and its grid in docs/eval.md), EMA and the best-on-val weights, the model's
   augmentation; each rolled out plain and with the model's rollout constraints (u0's mean restored, the
   energy capped) as separate rows. References that learn nothing: persistence, the mean field, the heat step,
   and the solver on 64, 128 and 256 points.
4. Every row: per-frame nRMSE (PDEBench's) and VRMSE (error over the field's deviation from its mean), mass
   drift, CPU seconds to train (per seed) and to infer per trajectory at batch 1 and 256, and its ratio to the
   best baseline (the learned baseline row best on VAL at the largest budget; at the same budget for budgeted
   rows) with a 95% paired bootstrap over seeds and trajectories. The model's primary mode is chosen on val.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from quality_table import mean_ci, plot, ratio_ci, show  # noqa: E402  (bench/ is the script's own directory)

from usim_core.config import RunConfig, load_config  # noqa: E402
from usim_core.data import prepare_data  # noqa: E402
from usim_core.data.generate import GenSpec, generate  # noqa: E402
from usim_core.data.h5io import read_rows  # noqa: E402
from usim_core.eval import metrics as M  # noqa: E402
from usim_core.eval.coarse import solve_coarse  # noqa: E402
from usim_core.eval.constrained import Constrained  # noqa: E402
from usim_core.eval.evaluate import timed_rollout  # noqa: E402
from usim_core.eval.fno import FNOStepper  # noqa: E402
from usim_core.eval.references import heat, mean_field, persistence  # noqa: E402
from usim_core.eval.resnet import ResNetStepper  # noqa: E402
from usim_core.eval.stepper_train import Recipe, train_stepper  # noqa: E402
from usim_core.events import EventLog  # noqa: E402
from usim_core.train.checkpoint import load_surrogate  # noqa: E402
from usim_core.train.run import train_run, training_cpu_seconds  # noqa: E402

SEALED_SEED = 20261207   # used by nothing else: the default regime's sealed test set
NU = 0.01                # the final table's viscosity (PDEBench's); others are explored on val (--nu, --dev)
T_STRIDE = 5             # the final table's frames: 201 -> 41 (one model step per 0.05); others on val (--t-stride)
# the regimes (nu, t_stride) a final table may read, each its own sealed set (a seed nothing else uses), read once:
# the default, and one step per 0.25, chosen on val (docs/eval.md) before its set was ever generated
SEALED = {(NU, T_STRIDE): SEALED_SEED, (NU, 25): 20261208}
# the model's shapes, chosen on val in earlier runs of this bench (docs/eval.md)
ARCH = {
    "model.codec": {"latent_tokens": 32, "latent_dim": 8, "hidden_dim": 32, "depth": 1, "linear_path": True},
    "model.operator": {"hidden_dim": 96, "heads": 4, "depth": 4, "mlp_ratio": 2.0, "mixer": "spectral",
                       "viscous_step": True},
    "model.diffusion": {"hidden_dim": 32, "heads": 4, "depth": 1, "steps": 3, "prediction": "eps",
                        "min_noise_std": 2e-3},
}
# the pipeline's optimiser-step caps at budget 1.0 (an eighth of the old bench's, so five seeds at three budgets,
# with the baselines' many cheap steps, fit half an hour on two cores); the corrector stages get the least
STEPS = {"codec": 375, "operator": 312, "diffusion_residual": 20, "consistency_distill": 8}
LR = {"diffusion_residual": 1e-3, "consistency_distill": 1e-3}
BUDGETS = [0.25, 0.5, 1.0]
MODES = ("operator", "diffusion", "consistency")
# the baselines' recipes, chosen on val by `--tune` (docs/bench/quality_tune_*.json, docs/eval.md)
AUGMENT = {"reflect": True, "galilean": 0.5, "initial_repeat": 4, "initial_span": 2}   # the model's own
BASELINES: dict[str, dict[str, Any]] = {
    # `--tune fno` (docs/bench/quality_tune_fno_2026-12-07.json): val 0.0378; without the augmentation 0.0485
    "fno": {"hparams": {"n_modes": 32, "hidden_channels": 16, "n_layers": 2},
            "recipe": {"lr": 8e-3, "batch_size": 8, "ema_decay": 0.99, **AUGMENT}},
    # `--tune resnet` (docs/bench/quality_tune_resnet_2026-12-07.json): val 0.0423; the model's augmentation 0.0449
    "resnet": {"hparams": {"width": 16, "blocks": 2, "kernel": 5},
               "recipe": {"lr": 2e-3, "batch_size": 8, "ema_decay": 0.99}},
}
VAL_SELECT = 16   # val trajectories the baselines' best-on-val checkpoint is chosen on (the model's: eval.small)


GEOMETRIES = {"pdebench": {"length": 2.0, "family": "pdebench"}, "unit": {"length": 1.0, "family": "offset"}}


def generation(args: argparse.Namespace, n: int, seed: int) -> dict[str, Any]:
    """How the bench's files are generated (the train/val file and every sealed set alike): 1024 x 201 on t in
    [0, 2], in the chosen geometry."""
    return {"n": n, "nx": 1024, "nt": 201, "t_end": 2.0, "seed": seed, **GEOMETRIES[args.geometry]}


def config(args: argparse.Namespace, seed: int, fraction: float = 1.0) -> RunConfig:
    gen = generation(args, args.n, 0)
    over: dict[str, Any] = {"seed": seed, "data.generate": gen, "data.nu": [args.nu],
                            "data.t_stride": args.t_stride, "data.cache_dir": str(REPO / "data" / "bench"),
                            **ARCH, "eval.small.trajectories": VAL_SELECT, "stages.operator.unroll": 1,
                            "eval.ttc": {"enabled": False}}
    for stage, cap in caps(args, fraction).items():
        over[f"stages.{stage}.max_steps"] = cap
        over[f"stages.{stage}.epochs"] = 1000  # the step cap binds
    for stage, lr in LR.items():
        over[f"stages.{stage}.lr"] = lr
    return load_config(REPO / "configs" / "runs" / "burgers_base.yaml", over)


def caps(args: argparse.Namespace, fraction: float) -> dict[str, int]:
    """The pipeline's optimiser-step cap per stage at this budget fraction."""
    return {stage: max(1, round(steps * args.steps_scale * fraction)) for stage, steps in STEPS.items()}


def pipeline_flops(steps: dict[str, int], flops: dict[str, Any]) -> float:
    """The pipeline's training FLOPs at these step caps (flops["pipeline"]: each stage's per optimiser step)."""
    return sum(n * flops["pipeline"][s] for s, n in steps.items())


def count_flops(fn: Any) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def pipeline_step_flops(args: argparse.Namespace, bundle: Any) -> dict[str, float]:
    """Each stage's FLOPs per optimiser step: a run at 1 step per stage against runs with one stage at 3 (both
    within one epoch, so validation costs the same in each and cancels; on 2 val trajectories, as the counter
    makes every operation slow)."""
    few = replace(bundle, val=replace(bundle.val, u=bundle.val.u[:2], nu=bundle.val.nu[:2], rows=bundle.val.rows[:2]))

    def run(caps: dict[str, int]) -> float:
        cfg = config(args, 0)
        cfg.eval.small.trajectories = 2
        for stage, cap in caps.items():
            getattr(cfg.stages, stage).max_steps = cap
        with tempfile.TemporaryDirectory() as tmp:
            return count_flops(lambda: train_run(cfg, tmp, bundle=few, device="cpu", run_evals=False, quiet=True,
                                                 events=EventLog(tmp, stream=io.StringIO())))
    one = {s: 1 for s in STEPS}
    base = run(one)
    return {s: (run({**one, s: 3}) - base) / 2 for s in STEPS}


def build(kind: str, bundle: Any, hparams: dict[str, Any] | None = None) -> Any:
    """A baseline of this kind, its shape `hparams` (default: the tuned one)."""
    cls = FNOStepper if kind == "fno" else ResNetStepper
    return cls(bundle.stats.mean, bundle.stats.std, **(hparams or BASELINES[kind]["hparams"]))


def recipe(kind: str) -> Recipe:
    return Recipe(**BASELINES[kind]["recipe"])


def stepper_step_flops(kind: str, bundle: Any, hparams: dict[str, Any] | None = None,
                       rec: Recipe | None = None) -> float:
    """A baseline's FLOPs per optimiser step (default: the tuned shape and recipe): runs of 3 and 1 steps."""
    tr = bundle.train

    def steps(n: int) -> float:
        torch.manual_seed(0)
        model = build(kind, bundle, hparams)
        return count_flops(lambda: train_stepper(model, tr.u, tr.nu, recipe=rec or recipe(kind), max_steps=n,
                                                 dt=bundle.dt, length=bundle.length))
    return (steps(3) - steps(1)) / 2


def errors(model: Any, u: torch.Tensor, nu: torch.Tensor, dt: float, mode: str, seed: int, length: float
           ) -> dict[str, Any]:
    """Per trajectory: per-frame nRMSE and VRMSE (means over the rollout's frames), and the worst mass drift."""
    pred, _, _ = timed_rollout(model, u, nu, dt, mode, seed, length=length)
    return frame_errors(pred, u)


def frame_errors(pred: torch.Tensor, u: torch.Tensor) -> dict[str, Any]:
    true, u0, p = u[:, 1:].double(), u[:, 0].double(), pred.double()
    return {"nrmse": M.nrmse_per_frame(p, true, u0).mean(-1).tolist(),
            "vrmse": M.vrmse_per_frame(p, true, u0).mean(-1).tolist(),
            "mass_drift": float(M.mass_drift(p, u0).max())}


def infer_cost(model: Any, u: torch.Tensor, nu: torch.Tensor, dt: float, mode: str, length: float
               ) -> tuple[float, float]:
    """Process CPU seconds per trajectory of a full rollout at batch 1 (up to 8 single rollouts) and at batch 256."""
    k = min(8, u.shape[0])
    single = sum(timed_rollout(model, u[i:i + 1], nu[i:i + 1], dt, mode, 0, length=length)[2] for i in range(k)) / k
    rows = torch.arange(256) % u.shape[0]
    return single, timed_rollout(model, u[rows], nu[rows], dt, mode, 0, length=length)[2]


def tensors(u: np.ndarray, nu: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(u, dtype=torch.float32), torch.as_tensor(nu, dtype=torch.float32)


def run_seed(args: argparse.Namespace, seed: int, bundle: Any, evaluation: tuple[np.ndarray, np.ndarray],
             flops: dict[str, Any]) -> dict[str, Any]:
    """Every learned row at every budget for one seed: the pipeline's modes, each baseline plain and
    constrained; errors on val (selection) and on the evaluation set."""
    torch.set_num_threads(args.threads)
    u, nu = tensors(*evaluation)
    uv, nuv = tensors(bundle.val.u, bundle.val.nu)
    dt, length = float(bundle.dt), float(bundle.length)
    rows: dict[str, dict[str, Any]] = {}
    last = max(args.budgets)

    def record(name: str, f: float, model: Any, mode: str, info: dict[str, Any]) -> None:
        row = {"fraction": f, **info, "val": errors(model, uv, nuv, dt, mode, seed, length),
               "eval": errors(model, u, nu, dt, mode, seed, length)}
        if seed == args.seeds[0] and f == last:
            row["infer"] = infer_cost(model, u, nu, dt, mode, length)
        rows[f"{name}@{f:g}"] = row

    for f in args.budgets:
        cfg = config(args, seed, f)
        run = Path(args.work) / f"seed{seed}" / f"budget{f:g}"
        shutil.rmtree(run, ignore_errors=True)
        train_run(cfg, run, bundle=bundle, device="cpu", run_evals=False, quiet=True,
                  events=EventLog(run, stream=io.StringIO()))
        torch.set_num_threads(args.threads)   # train_run sets threads from USIM_THREADS; keep every run equal
        steps = caps(args, f)
        info = {"steps": steps, "flops": pipeline_flops(steps, flops),
                "train_cpu_s": training_cpu_seconds(run)}
        model, _, _ = load_surrogate(run / "checkpoints" / "consistency_distill.pt")
        for mode in MODES:
            record(f"model:{mode}", f, model, mode, info)
        print(f"seed {seed} budget {f:g}: model {info['train_cpu_s']:.0f} CPU s, val nRMSE/frame "
              f"{np.mean(rows[f'model:operator@{f:g}']['val']['nrmse']):.4f} (operator)", flush=True)
        for kind in BASELINES:
            n_steps = max(1, round(info["flops"] / flops[kind]))
            trained, got = train_kind(kind, bundle, seed, n_steps)
            meta = {"steps": n_steps, "flops": n_steps * flops[kind], "train_cpu_s": got["cpu_s"],
                    "best_val_select": got["best_val"]}
            record(kind, f, trained, "operator", meta)
            record(f"{kind}+constraints", f, Constrained(trained), "operator", meta)
            print(f"seed {seed} budget {f:g}: {kind} {n_steps} steps, {got['cpu_s']:.0f} CPU s, val nRMSE/frame "
                  f"{np.mean(rows[f'{kind}@{f:g}']['val']['nrmse']):.4f}, constrained "
                  f"{np.mean(rows[f'{kind}+constraints@{f:g}']['val']['nrmse']):.4f}", flush=True)
    return {"seed": seed, "rows": rows}


def train_kind(kind: str, bundle: Any, seed: int, steps: int, rec: Recipe | None = None,
               hparams: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """A baseline trained for `steps` optimiser steps, its best EMA weights on the first VAL_SELECT val
    trajectories kept (checked 8 times over the run)."""
    uv, nuv = tensors(bundle.val.u[:VAL_SELECT], bundle.val.nu[:VAL_SELECT])
    dt, length = float(bundle.dt), float(bundle.length)
    torch.manual_seed(seed)
    model = build(kind, bundle, hparams)
    score = lambda m: float(np.mean(errors(m, uv, nuv, dt, "operator", seed, length)["nrmse"]))  # noqa: E731
    return train_stepper(model, bundle.train.u, bundle.train.nu, recipe=rec or recipe(kind), seed=seed,
                         max_steps=steps, dt=dt, length=length, val=score, val_every=max(1, steps // 8))


def references(evaluation: tuple[np.ndarray, np.ndarray], dt: float, length: float) -> dict[str, dict[str, Any]]:
    """The rows that learn nothing, with their CPU seconds per trajectory at batch 1 and 256."""
    u, nu = tensors(*evaluation)
    steps, t = u.shape[1] - 1, dt * np.arange(u.shape[1])
    makers = {"persistence": lambda a, n: persistence(a, steps), "mean field": lambda a, n: mean_field(a, steps),
              "heat step": lambda a, n: heat(a, n, dt, steps, length)}
    for nx in (64, 128, 256):
        makers[f"solver {nx} points"] = lambda a, n, nx=nx: torch.as_tensor(
            solve_coarse(a.double().numpy(), n.double().numpy(), t, nx, length)[0][:, 1:])
    out = {}
    for name, make in makers.items():
        rows = torch.arange(256) % u.shape[0]
        start = time.process_time()
        make(u[rows, 0], nu[rows])
        batch = (time.process_time() - start) / 256
        start, k = time.process_time(), min(8, u.shape[0])
        for i in range(k):
            make(u[i:i + 1, 0], nu[i:i + 1])
        out[name] = {"eval": frame_errors(make(u[:, 0], nu), u),
                     "infer": ((time.process_time() - start) / k, batch)}
        print(f"{name}: nRMSE/frame {np.mean(out[name]['eval']['nrmse']):.4g}", flush=True)
    return out


SEALED_READS = REPO / "docs" / "bench" / "sealed_reads.jsonl"   # every read of the sealed set, in the repository


def regime(args: argparse.Namespace) -> dict[str, float]:
    return {"nu": args.nu, "t_stride": args.t_stride}


def check_unread(args: argparse.Namespace) -> None:
    """Refuse a second read of this regime's sealed set without --reread (a record without a regime is the
    default's: the first read, before there were others)."""
    lines = SEALED_READS.read_text().splitlines() if SEALED_READS.is_file() else []
    default = {"nu": NU, "t_stride": T_STRIDE}
    reads = [r for r in map(json.loads, lines) if r.get("regime", default) == regime(args)]
    if reads and not args.reread:
        raise SystemExit(f"the sealed test set of nu {args.nu:g}, t-stride {args.t_stride} was read {len(reads)} "
                         f"time(s) already ({SEALED_READS}); a final table reads it once: develop with --dev (val), "
                         "or pass --reread REASON to read it again")


def sealed_test_set(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """The final table's trajectories: generated with the regime's sealed seed, read only here (never in --dev).
    Each read is appended to SEALED_READS; a read after the first needs --reread REASON, so every look is on
    record."""
    check_unread(args)
    with SEALED_READS.open("a") as f:
        f.write(json.dumps({"at": time.strftime("%Y-%m-%d %H:%M:%S"), "out": args.out, "regime": regime(args),
                            "command": " ".join(sys.argv), "reason": args.reread or "the final table"}) + "\n")
    spec = GenSpec(nu=args.nu, **generation(args, args.test_n, SEALED[args.nu, args.t_stride]))
    path = generate(spec, REPO / "data" / "bench" / spec.filename(), workers=args.jobs)
    u = read_rows(path, np.arange(args.test_n), x_stride=4, t_stride=args.t_stride)
    return u, np.full(args.test_n, args.nu, np.float32)


def run_seeds(args: argparse.Namespace, *rest: Any) -> list[dict[str, Any]]:
    """Every seed, --jobs at a time in worker processes (spawned: no forked torch state), in seed order."""
    jobs = min(args.jobs, len(args.seeds))
    if jobs == 1:
        return [run_seed(args, seed, *rest) for seed in args.seeds]
    from concurrent.futures import ProcessPoolExecutor

    n = len(args.seeds)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(run_seed, [args] * n, args.seeds, *([x] * n for x in rest)))


def table(args: argparse.Namespace, runs: list[dict[str, Any]], refs: dict[str, dict[str, Any]]
          ) -> dict[str, Any]:
    """The rows, the best baseline and the primary mode (both chosen on val), each row's ratio to the best."""
    last = f"{max(args.budgets):g}"
    names = list(runs[0]["rows"])
    val = {k: np.mean([r["rows"][k]["val"]["nrmse"] for r in runs]) for k in names}
    learned = [k for k in names if not k.startswith("model:") and k.endswith("@" + last)]
    best = min(learned, key=val.get).split("@")[0]
    primary = min(MODES, key=lambda m: val[f"model:{m}@{last}"])
    grid = lambda k, what="nrmse": np.array([r["rows"][k]["eval"][what] for r in runs])  # noqa: E731
    n_seeds = len(runs)
    rows = []
    for k in names:
        base, f = f"{best}@{k.split('@')[1]}", runs[0]["rows"][k]["fraction"]
        one = runs[0]["rows"][k]
        rows.append({
            "name": k, "train_budget": {"fraction": f, "flops": one["flops"], "steps": one["steps"]},
            "nrmse_frame": mean_ci(grid(k)), "vrmse": mean_ci(grid(k, "vrmse")),
            "mass_drift_max": max(r["rows"][k]["eval"]["mass_drift"] for r in runs),
            "train_cpu_s": float(np.mean([r["rows"][k]["train_cpu_s"] for r in runs])),
            "infer_cpu_s_per_traj": one.get("infer", (None, None))[1],
            "infer_cpu_s_per_traj_batch1": one.get("infer", (None, None))[0],
            "val_nrmse_frame": float(val[k]), "ratio_to_best_baseline": ratio_ci(grid(k), grid(base))})
    for name, ref in refs.items():
        a = np.tile(np.array(ref["eval"]["nrmse"]), (n_seeds, 1))
        rows.append({"name": name, "train_budget": None, "nrmse_frame": mean_ci(a),
                     "vrmse": mean_ci(np.tile(np.array(ref["eval"]["vrmse"]), (n_seeds, 1))),
                     "mass_drift_max": ref["eval"]["mass_drift"], "train_cpu_s": None,
                     "infer_cpu_s_per_traj": ref["infer"][1], "infer_cpu_s_per_traj_batch1": ref["infer"][0],
                     "val_nrmse_frame": None, "ratio_to_best_baseline": ratio_ci(a, grid(f"{best}@{last}"))})
    missing = [r["name"] for r in rows if r["infer_cpu_s_per_traj"] is None]
    for r in rows:   # a learned row's inference cost is its model's at the largest budget (same network)
        if r["name"] in missing:
            twin = next(x for x in rows if x["name"] == r["name"].split("@")[0] + "@" + last)
            r["infer_cpu_s_per_traj"], r["infer_cpu_s_per_traj_batch1"] = (
                twin["infer_cpu_s_per_traj"], twin["infer_cpu_s_per_traj_batch1"])
    # the best baseline is a row (its family is compared at each budget: the same network, the same budget)
    return {"table": rows, "best_baseline": f"{best}@{last}", "best_baseline_family": best, "primary_mode": primary}


def conclusion(out: dict[str, Any], last: str) -> str:
    """The table's finding in one sentence: the primary mode against the best baseline at the largest budget,
    and against the cheapest solver grid that is at least as accurate."""
    rows = {r["name"]: r for r in out["table"]}
    model = rows[f"model:{out['primary_mode']}@{last}"]
    r = model["ratio_to_best_baseline"]
    verdict = ("beats" if r["ci95"][1] < 1 else "loses to" if r["ci95"][0] > 1 else "is not distinguishable from")
    solvers = [x for x in out["table"] if x["name"].startswith("solver")
               and x["nrmse_frame"]["mean"] <= model["nrmse_frame"]["mean"]]
    cheapest = min(solvers, key=lambda x: x["infer_cpu_s_per_traj"]) if solvers else None
    text = (f"At {model['train_budget']['flops'] / 1e9:.0f} GFLOP of training the model ({out['primary_mode']}) "
            f"{verdict} the best learned baseline ({out['best_baseline_family']}): {r['mean']:.2f}x its per-frame "
            f"nRMSE [95% {r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]")
    if cheapest:
        ratio = model["infer_cpu_s_per_traj"] / cheapest["infer_cpu_s_per_traj"]
        text += (f"; the {cheapest['name']} is at least as accurate ({cheapest['nrmse_frame']['mean']:.2g}) at "
                 f"{1 / ratio:.2g}x the model's CPU per trajectory (batch 256)")
    return text + "."


def _trial(kind: str, bundle: Any, budget: float, hp: dict[str, Any], rec: Recipe, threads: int) -> dict[str, Any]:
    """One tuning trial: this shape and recipe trained on `budget` FLOPs, seed 0, scored on val."""
    torch.set_num_threads(threads)
    steps = max(1, round(budget / stepper_step_flops(kind, bundle, hp, rec)))
    _, got = train_kind(kind, bundle, 0, steps, rec, hp)
    print(f"tune {kind}: {hp} {asdict(rec)}: {steps} steps, val {got['best_val']:.4f}", flush=True)
    return {"hparams": hp, "recipe": asdict(rec), "steps": steps, "val_nrmse_frame": got["best_val"],
            "cpu_s": got["cpu_s"]}


# the values a tuned dimension may take, in order; the search walks out past an edge that wins. At equal FLOPs
# narrower networks and smaller batches buy more optimiser steps, and on val they kept winning below these
# floors (docs/eval.md has the figures), but the steps they need do not fit the default run's half hour
LADDERS = {
    "n_modes": [8, 16, 32, 64, 128], "hidden_channels": [16, 32, 64], "n_layers": [1, 2, 4, 6, 8],
    "width": [16, 32, 64], "blocks": [1, 2, 4, 8],
    "batch_size": [8, 16, 32, 64], "lr": [2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2],
}


def tune(args: argparse.Namespace, bundle: Any, flops: dict[str, Any]) -> dict[str, Any]:
    """A greedy search on val for one baseline at the largest budget, seed 0: each shape dimension, then the batch
    size (at equal FLOPs a smaller batch buys more steps) and the learning rate, each bracketed: the value and its
    neighbours on LADDERS, walking further out while an end wins; then EMA, then the model's augmentation. Trials
    run --jobs at a time; every finished trial is written to --out at once, and a rerun with the same budget
    reuses them (training at a fixed step count is deterministic)."""
    from concurrent.futures import ProcessPoolExecutor

    kind, f = args.tune, max(args.budgets)
    budget = pipeline_flops(caps(args, f), flops)
    out = {"kind": kind, "budget_fraction": f, "budget_flops": budget, "chosen": None, "tried": [],
           "command": " ".join(sys.argv)}
    old = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    key = lambda hp, rec: json.dumps([hp, rec], sort_keys=True)  # noqa: E731
    tried = {key(t["hparams"], t["recipe"]): t for t in old.get("tried", [])
             if old.get("kind") == kind and old.get("budget_flops") == budget}
    pool = ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"))

    def run(cands: list[tuple[dict[str, Any], Recipe]]) -> None:
        new = [(hp, r) for hp, r in cands if key(hp, asdict(r)) not in tried]
        futures = [pool.submit(_trial, kind, bundle, budget, hp, r, args.threads) for hp, r in new]
        for fut in futures:
            got = fut.result()
            tried[key(got["hparams"], got["recipe"])] = got
            Path(args.out).write_text(json.dumps({**out, "tried": list(tried.values())}, indent=2))

    def score(hp: dict[str, Any], rec: Recipe) -> float:
        return tried[key(hp, asdict(rec))]["val_nrmse_frame"]

    def bracket(hp: dict[str, Any], rec: Recipe, dim: str) -> tuple[dict[str, Any], Recipe]:
        ladder = LADDERS[dim]
        at = lambda i: ({**hp, dim: ladder[i]}, rec) if dim in hp else (hp, replace(rec, **{dim: ladder[i]}))  # noqa: E731
        now = ladder.index(hp[dim] if dim in hp else getattr(rec, dim))
        lo, hi = max(0, now - 1), min(len(ladder) - 1, now + 1)
        while True:
            run([at(i) for i in range(lo, hi + 1)])
            i = min(range(lo, hi + 1), key=lambda i: score(*at(i)))
            if i == lo and lo > 0:
                lo -= 1
            elif i == hi and hi < len(ladder) - 1:
                hi += 1
            else:
                return at(i)

    hp = ({"n_modes": 32, "hidden_channels": 32, "n_layers": 4} if kind == "fno"
          else {"width": 32, "blocks": 4, "kernel": 5})
    rec = Recipe(lr=2e-3)
    for dim in [*[d for d in hp if d in LADDERS], "batch_size", "lr"]:
        hp, rec = bracket(hp, rec, dim)
    for change in ({"ema_decay": 0.99}, AUGMENT):
        other = replace(rec, **change)
        run([(hp, other)])
        rec = other if score(hp, other) < score(hp, rec) else rec
    pool.shutdown()
    return {**out, "chosen": {"hparams": hp, "recipe": asdict(rec)}, "tried": list(tried.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="JSON file of every figure (the figure goes beside it, .png)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="training seeds (default 0-4)")
    ap.add_argument("--jobs", type=int, default=2, help="seeds at once, one process each (default 2)")
    ap.add_argument("--budgets", type=float, nargs="+", default=BUDGETS,
                    help=f"fractions of the pipeline's step caps, each a training budget (default {BUDGETS})")
    ap.add_argument("--steps-scale", type=float, default=1.0,
                    help=f"scale the step caps (default 1.0: {', '.join(f'{k} {v}' for k, v in STEPS.items())})")
    ap.add_argument("--n", type=int, default=200, help="trajectories of the train/val file (default 200: 160/20)")
    ap.add_argument("--test-n", type=int, default=200, help="trajectories of the sealed test set (default 200)")
    ap.add_argument("--geometry", choices=("pdebench", "unit"), default="pdebench",
                    help="pdebench (default): x in (-1, 1), PDEBench's initial conditions; unit: usim's [0, 1)")
    ap.add_argument("--nu", type=float, default=NU,
                    help=f"viscosity (default {NU}, PDEBench's); another only with --dev or --tune (no sealed set)")
    ap.add_argument("--t-stride", type=int, default=T_STRIDE,
                    help=f"keep every k-th of the 201 solver frames (default {T_STRIDE}: 41 frames, one model "
                         "step per 0.05); 25 gives 9 frames, one step per 0.25 (a final table has a sealed set of "
                         "its own); another only with --dev or --tune")
    ap.add_argument("--dev", action="store_true", help="development: report on val, never open the sealed set")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run for CI (implies --dev): 2 seeds, 2 tiny budgets, 24 trajectories")
    ap.add_argument("--reread", metavar="REASON", help="read the sealed test set again (each read is on record)")
    ap.add_argument("--tune", choices=tuple(BASELINES), help="search this baseline's recipe on val instead")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    ap.add_argument("--work", help="run dirs, emptied per seed and budget (default runs/bench_quality, "
                                   "runs/bench_quality_dev for --dev and --quick: a smoke run never touches a final's)")
    ap.add_argument("--figure", metavar="JSON", help="only draw the figure of a finished run's JSON beside it")
    args = ap.parse_args()
    if args.figure:
        figure = str(Path(args.figure).with_suffix(".png"))
        plot(json.loads(Path(args.figure).read_text()), figure)
        print(f"wrote {figure}")
        return
    if args.quick:
        args.dev, args.seeds, args.budgets, args.steps_scale, args.n = True, args.seeds[:2], [0.5, 1.0], 0.01, 24
        print(f"quick: seeds {args.seeds}, budgets {args.budgets}, steps scale 0.01, {args.n} trajectories, on val")
    args.work = args.work or str(REPO / "runs" / ("bench_quality_dev" if args.dev else "bench_quality"))
    if not args.out:
        ap.error("--out FILE.json is required (or --figure JSON)")
    if args.jobs < 1 or args.n < 20 or min(args.budgets) <= 0:
        ap.error("--jobs must be >= 1, --n >= 20 and every --budgets fraction > 0")
    if args.nu <= 0:
        ap.error(f"--nu must be > 0, got {args.nu:g}")
    if args.t_stride < 1 or 200 % args.t_stride:
        ap.error(f"--t-stride must divide 200 (the solver's steps), got {args.t_stride}")
    if (args.nu, args.t_stride) not in SEALED and not (args.dev or args.tune):
        ap.error(f"no sealed test set for nu {args.nu:g}, t-stride {args.t_stride}: explore it with --dev (val); "
                 "final tables: " + ", ".join(f"nu {n:g} t-stride {k}" for n, k in SEALED))
    if (args.dev or args.tune) and args.reread:
        ap.error("--reread reads the sealed test set; --dev, --quick and --tune never do")
    if not (args.dev or args.tune):
        check_unread(args)   # before minutes of work
    # the trainer sets its threads from USIM_THREADS (all cores when unset): every model gets --threads
    os.environ["USIM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    bundle = prepare_data(config(args, args.seeds[0]))
    print(f"data ({args.geometry}, nu {args.nu:g}): {len(bundle.train.rows)} train / {len(bundle.val.rows)} val "
          f"trajectories of {bundle.val.u.shape[1]} x {bundle.val.u.shape[2]}, dt {bundle.dt:.3g}, "
          f"length {bundle.length:g}",
          flush=True)
    flops: dict[str, Any] = {"pipeline": pipeline_step_flops(args, bundle)}
    flops |= {kind: stepper_step_flops(kind, bundle) for kind in BASELINES}
    print("FLOPs per optimiser step: " + ", ".join(f"{s} {v / 1e6:.0f}M" for s, v in flops["pipeline"].items())
          + "; " + ", ".join(f"{k} {flops[k] / 1e6:.0f}M" for k in BASELINES), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.tune:
        out = tune(args, bundle, flops)
        Path(args.out).write_text(json.dumps(out, indent=2))
        print(f"chosen on val: {out['chosen']}\nwrote {args.out}")
        return
    evaluation = (bundle.val.u, bundle.val.nu) if args.dev else sealed_test_set(args)
    refs = references(evaluation, float(bundle.dt), float(bundle.length))
    runs = run_seeds(args, bundle, evaluation, flops)
    out: dict[str, Any] = {
        "seeds": args.seeds,
        "test_set": {"n_trajectories": int(evaluation[0].shape[0]),
                     "seed": None if args.dev else SEALED[args.nu, args.t_stride],
                     "sealed": not args.dev, "geometry": args.geometry, "nu": args.nu,
                     "t_stride": args.t_stride},
        **table(args, runs, refs),
        "protocol": {"budget": "training FLOPs (torch.utils.flop_counter: matmul, conv, attention; not FFTs)",
                     "flops_per_step": flops, "steps": STEPS, "steps_scale": args.steps_scale,
                     "budgets": args.budgets, "baselines": BASELINES, "val_select": VAL_SELECT,
                     "trajectories": {"train": len(bundle.train.rows), "val": len(bundle.val.rows)},
                     "threads": args.threads, "jobs": args.jobs, "domain": bundle.domain.to_dict(),
                     "command": " ".join(sys.argv)},
    }
    out["conclusion"] = conclusion(out, f"{max(args.budgets):g}")
    out["protocol"]["wall_s"] = round(time.time() - t0, 1)
    Path(args.out).write_text(json.dumps(out, indent=2))
    show(out)
    figure = str(Path(args.out).with_suffix(".png"))
    plot(out, figure)
    print(f"\nwrote {args.out} and {figure} ({out['protocol']['wall_s']:.0f} s wall)")


if __name__ == "__main__":
    main()
