"""Quality protocol: this pipeline vs the neuralop FNO at equal process-CPU budget, over several seeds.

    .venv/bin/python bench/quality.py --out FILE.json [--seeds 0 1 2] [--jobs 2] [--n 200] [--steps-scale 1.0]
                                      [--threads 1] [--fno-lr 1e-3 2e-3] [--fno-unroll 1 2] [--set KEY=VALUE ...]

With its defaults it takes about 15-20 minutes on a 2-core machine (three seeds, two at a time, one thread each).

1. Data: PDEBench-style Burgers (nu = 0.01, 1024 x 201 -> 256 x 41 after striding), n trajectories, split
   80/10/10 by trajectory (one split for every seed; the seeds change initialisation and batches).
2. Per seed: train the four stages to fixed optimiser-step caps and measure the process CPU seconds T they took
   (time.process_time, never wall-clock); train the FNO for the same T CPU seconds on the same training split,
   once per --fno-lr x --fno-unroll, and keep the one best on val (the pipeline's own hyperparameters were chosen
   on val too).
3. Evaluate both on the same test trajectories (evaluate_checkpoint: rollout from t = 0 over all 40 steps). The
   primary mode is the one chosen on VAL (operator unless a stochastic mode beats it there); test never chooses.
4. TTC on the stochastic mode that did best on val, beside its compute-matched controls at the same N and
   budget: the mean of the N candidates and a random pick of N.
5. Seeds run in --jobs processes at once (each with --threads torch threads). Budgets are each process's own CPU
   seconds, so running seeds side by side changes the wall-clock, not what either side is given.
6. Mean and 95% interval (t-distribution) over seeds of PDEBench's per-frame nRMSE (primary metric) and the
   pooled space-time nRMSE; ratios to the FNO per seed, then averaged. Everything goes to --out as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from stats import interval  # noqa: E402  (bench/ is the script's own directory)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from usim_core.config import RunConfig, load_config  # noqa: E402
from usim_core.data import prepare_data  # noqa: E402
from usim_core.eval import metrics as M  # noqa: E402
from usim_core.eval.evaluate import evaluate_checkpoint, rollout_nrmse_frame, timed_rollout  # noqa: E402
from usim_core.eval.fno import save_fno, train_fno  # noqa: E402
from usim_core.events import EventLog  # noqa: E402
from usim_core.train.checkpoint import load_surrogate  # noqa: E402
from usim_core.train.run import train_run, training_cpu_seconds  # noqa: E402

# the codec's and operator's shapes and the step caps were chosen on val (per-frame nRMSE of 16 val trajectories;
# the record is in docs/eval.md): spectral token mixing beat attention at the same CPU, a codec trained for 3000
# steps beat 1500 and 4500, 32 tokens x 8 (patches of 8 points) beat 16 x 16 with the operator 96 wide (its
# codec floor is half, and 96 costs less than 128), and the base config's low-mode codec loss beat plain MSE, as
# did its operator windows mirrored and Galilean-boosted (Burgers' symmetries), with those from the first two
# frames drawn 4x as often, over the windows as they are; the codec's exact linear path with the viscous step
# beat the learned codec alone (and the linear path without the viscous step lost to both)
ARCH = {
    "model.codec": {"latent_tokens": 32, "latent_dim": 8, "hidden_dim": 32, "depth": 1, "linear_path": True},
    "model.operator": {"hidden_dim": 96, "heads": 4, "depth": 4, "mlp_ratio": 2.0, "mixer": "spectral",
                       "viscous_step": True},
    "model.diffusion": {"hidden_dim": 32, "heads": 4, "depth": 1, "steps": 3, "prediction": "eps",
                        "min_noise_std": 2e-3},
}
# optimiser-step caps: the operator sets the rollout error; the codec floors every latent mode (and is the
# projection every rollout step goes through); the corrector stages get the least
STEPS = {"codec": 3000, "operator": 2500, "diffusion_residual": 150, "consistency_distill": 60}
# unroll 1 for the operator and the FNO alike: at equal CPU, 2500 one-step windows did better on val than 1400
# two-step ones (and those better than 600 four-step ones; docs/eval.md)
UNROLL = 1
# the corrector stages are short: the base config's learning rates (2e-4, 1e-4) are for thousands of steps
LR = {"diffusion_residual": 1e-3, "consistency_distill": 1e-3}
# the FNO's own recipe, chosen on its val: the operator's lr 1e-3 left the FNO under-tuned (val chose 2e-3 over 1e-3
# on all 6 seeds of two --fno-lr 1e-3 2e-3 runs, its val error 23-33% lower), and so did the operator's unroll 2
# (unroll 1 is lower on val: docs/eval.md); both had flattered the pipeline
FNO_LRS = [2e-3]
FNO_UNROLLS = [1]
TTC = {"candidates": 8, "max_evaluations": 80, "lookahead": 0}


def config(args: argparse.Namespace, seed: int) -> RunConfig:
    over: dict[str, Any] = {"seed": seed, "data.generate.n": args.n, "data.cache_dir": str(REPO / "data" / "bench"),
                            **ARCH, "eval.full.horizons": [1, 4, 16, 40], "eval.small.trajectories": 16,
                            "stages.operator.unroll": UNROLL,
                            "eval.ttc": {"enabled": False, **TTC}}
    for stage, steps in STEPS.items():
        over[f"stages.{stage}.max_steps"] = max(1, int(steps * args.steps_scale))
        over[f"stages.{stage}.epochs"] = 1000  # the step cap binds
    for stage, lr in LR.items():
        over[f"stages.{stage}.lr"] = lr
    for item in args.set:  # --set stages.operator.unroll=2: any dotted override, value parsed as YAML
        key, _, value = item.partition("=")
        over[key] = yaml.safe_load(value)
    return load_config(REPO / "configs" / "runs" / "burgers_base.yaml", over)


def ttc_block(ckpt: Path, bundle: Any, mode: str, seed: int) -> dict[str, Any]:
    """Per-frame test nRMSE of `mode` alone, with TTC, and with its two compute-matched controls."""
    from usim_core.config import TTCConfig

    model, _, _ = load_surrogate(ckpt)
    u = torch.as_tensor(bundle.test.u, dtype=torch.float32)
    nu = torch.as_tensor(bundle.test.nu, dtype=torch.float32)
    true, u0 = u[:, 1:].double(), u[:, 0].double()
    out: dict[str, Any] = {"mode": mode, **TTC}
    for name, ttc in (("plain", None), *((s, TTCConfig(enabled=True, select=s, **TTC))
                                         for s in ("reward", "mean", "random"))):
        pred, stats, cpu = timed_rollout(model, u, nu, bundle.dt, mode, seed, ttc=ttc, length=bundle.length)
        out[name] = {"nrmse_frame": float(M.nrmse_per_frame(pred.double(), true, u0).mean()),
                     "mass_drift": float(M.mass_drift(pred.double(), u0).mean()), "cpu_s_per_traj": cpu,
                     "evaluations": float(stats.evaluations.double().mean())}
    plain = out["plain"]["nrmse_frame"]
    for name in ("reward", "mean", "random"):
        out[name]["gain"] = (plain - out[name]["nrmse_frame"]) / plain
    return out


def val_nrmse(stepper: Any, bundle: Any, n: int, seed: int) -> float:
    """Per-frame rollout nRMSE on the first n val trajectories (the rows the pipeline selects its mode on)."""
    u = torch.as_tensor(bundle.val.u[:n], dtype=torch.float32)
    nu = torch.as_tensor(bundle.val.nu[:n], dtype=torch.float32)
    return rollout_nrmse_frame(stepper, u, nu, bundle.dt, "operator", seed, length=bundle.length)


def best_fno_on_val(args: argparse.Namespace, cfg: RunConfig, bundle: Any, cpu: float, seed: int
                    ) -> tuple[Any, dict[str, Any]]:
    """The FNO trained for `cpu` CPU seconds at each --fno-lr x --fno-unroll (the operator's batch and unroll
    weight otherwise), the one best on val kept: the baseline gets the same val-only selection as the pipeline's
    hyperparameters."""
    op = cfg.stages.operator
    tried = []
    for lr in args.fno_lr:
        for unroll in args.fno_unroll:
            fno, info = train_fno(bundle.train.u, bundle.train.nu, bundle.stats.mean, bundle.stats.std,
                                  budget_s=cpu, seed=seed, unroll=unroll, unroll_weight=op.unroll_weight,
                                  batch_size=op.batch_size, lr=lr)
            info = {**info, "lr": lr, "val_nrmse_frame": val_nrmse(fno, bundle, cfg.eval.small.trajectories, seed)}
            print(f"seed {seed}: fno lr {lr:g} unroll {unroll}: {info['steps']} steps in {info['cpu_s']:.0f} CPU s, "
                  f"val nRMSE/frame {info['val_nrmse_frame']:.4f}", flush=True)
            tried.append((fno, info))
    fno, info = min(tried, key=lambda t: t[1]["val_nrmse_frame"])
    return fno, {**info, "search": [i for _, i in tried]}


def run_seed(args: argparse.Namespace, seed: int, bundle: Any) -> dict[str, Any]:
    torch.set_num_threads(args.threads)  # a fresh worker process starts with torch's default
    cfg = config(args, seed)
    run = Path(args.work) / f"seed{seed}"
    import shutil

    shutil.rmtree(run, ignore_errors=True)
    t = time.time()
    train_run(cfg, run, bundle=bundle, device="cpu", run_evals=False, quiet=True,
              events=EventLog(run, stream=io.StringIO()))
    torch.set_num_threads(args.threads)  # train_run sets threads from USIM_THREADS; keep the two runs equal
    cpu = training_cpu_seconds(run)
    print(f"seed {seed}: pipeline {cpu:.0f} CPU s ({time.time() - t:.0f} s wall)", flush=True)
    fno, info = best_fno_on_val(args, cfg, bundle, cpu, seed)
    save_fno(run / "baselines" / "fno.pt", fno, dt=float(bundle.dt), manifest_hash=bundle.manifest_hash,
             train_rows=bundle.train.rows, config_hash=cfg.config_hash(), info=info, length=bundle.length)
    ckpt = run / "checkpoints" / "consistency_distill.pt"
    rep = evaluate_checkpoint(ckpt, "test", bundle=bundle, out=run / "eval" / "full.json", ttc=False)
    sel = rep["selection"]["nrmse_frame"]
    stochastic = min((m for m in ("diffusion", "consistency") if sel.get(m) is not None), key=lambda m: sel[m])
    ttc = ttc_block(ckpt, bundle, stochastic, seed)
    print(f"seed {seed}: primary {rep['primary_mode']} (val), test nRMSE/frame "
          f"{rep['metrics']['nrmse_frame']:.4f} vs fno {rep['baselines']['fno']['metrics']['nrmse_frame']:.4f}",
          flush=True)
    return {"seed": seed, "report": rep, "ttc": ttc, "model_cpu_s": cpu, "fno": info,
            "steps": {s: getattr(cfg.stages, s).max_steps for s in STEPS}}


def run_seeds(args: argparse.Namespace, bundle: Any) -> list[dict[str, Any]]:
    """Every seed, --jobs at a time in worker processes (spawned: no forked torch state), in seed order."""
    jobs = min(args.jobs, len(args.seeds))
    if jobs == 1:
        return [run_seed(args, seed, bundle) for seed in args.seeds]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(run_seed, [args] * len(args.seeds), args.seeds, [bundle] * len(args.seeds)))


def summarise(args: argparse.Namespace, runs: list[dict[str, Any]], bundle: Any) -> dict[str, Any]:
    reps = [r["report"] for r in runs]
    fno = [r["baselines"]["fno"]["metrics"] for r in reps]
    model = [r["metrics"] for r in reps]
    coarse = [r["baselines"]["coarse_solver"] for r in reps]
    mass = [max(m["metrics"]["mass_drift"] for m in r["modes"].values()) for r in reps]
    mass += [max(x["ttc"][k]["mass_drift"] for k in ("plain", "reward", "mean", "random")) for x in runs]
    codec = [r["codec_nrmse"] for r in reps]
    return {
        "seeds": [r["seed"] for r in runs],
        "protocol": {
            "metric": "nrmse_frame: PDEBench's per-frame nRMSE (||pred_t - true_t|| / ||true_t|| over x, mean over "
                      "frames and test trajectories); nrmse_rollout (pooled space-time) beside it",
            "budget": "optimiser-step caps for the pipeline; the FNO gets the pipeline's process CPU seconds",
            "selection": "primary mode chosen on val (16 trajectories); test only reports",
            "threads": args.threads, "jobs": min(args.jobs, len(args.seeds)),
            "trajectories": {s: len(bundle.split(s).rows) for s in ("train", "val", "test")},
            "steps": runs[0]["steps"], "model_cpu_s": [r["model_cpu_s"] for r in runs],
            "fno_steps": [r["fno"]["steps"] for r in runs], "fno_cpu_s": [r["fno"]["cpu_s"] for r in runs],
            "fno_lr": [r["fno"]["lr"] for r in runs], "fno_unroll": [r["fno"]["unroll"] for r in runs],
            "fno_search": [r["fno"]["search"] for r in runs],
            "domain": reps[0]["domain"], "command": " ".join(sys.argv),
        },
        "primary_mode": [r["primary_mode"] for r in reps],
        "selection": [r["selection"] for r in reps],
        "model": {"nrmse_frame": interval([m["nrmse_frame"] for m in model]),
                  "nrmse_rollout": interval([m["nrmse_rollout"] for m in model]),
                  "mass_drift_max": max(mass), "energy_violation_max": max(m["energy_violation"] for m in model),
                  "cpu_s_per_traj": interval([r["model_cpu_s_per_traj"] for r in reps])},
        "fno": {"nrmse_frame": interval([m["nrmse_frame"] for m in fno]),
                "nrmse_rollout": interval([m["nrmse_rollout"] for m in fno]),
                "mass_drift": interval([m["mass_drift"] for m in fno]),
                "cpu_s_per_traj": interval([r["baselines"]["fno"]["cpu_s_per_traj"] for r in reps])},
        "persistence": {"nrmse_frame": reps[0]["baselines"]["persistence"]["metrics"]["nrmse_frame"]},
        "coarse_solver": {"nx": [c["nx"] for c in coarse], "nrmse_frame": interval([c["nrmse_frame"] for c in coarse]),
                          "cpu_s_per_traj": interval([c["cpu_s_per_traj"] for c in coarse]),
                          "matched_to_model": [c["matched_to_model"] for c in coarse]},
        "ratio_to_fno": interval([m["nrmse_frame"] / f["nrmse_frame"] for m, f in zip(model, fno, strict=True)]),
        "ratio_to_fno_rollout": interval([m["nrmse_rollout"] / f["nrmse_rollout"]
                                          for m, f in zip(model, fno, strict=True)]),
        "codec_floor": {**interval(codec), "ratio_to_model": interval(
            [c / m["nrmse_frame"] for c, m in zip(codec, model, strict=True)])},
        "corrector": [r["corrector"] for r in reps],
        "ttc": {"mode": [x["ttc"]["mode"] for x in runs],
                **{k: {"gain": interval([x["ttc"][k]["gain"] for x in runs]),
                       "nrmse_frame": interval([x["ttc"][k]["nrmse_frame"] for x in runs])}
                   for k in ("reward", "mean", "random")},
                "plain": {"nrmse_frame": interval([x["ttc"]["plain"]["nrmse_frame"] for x in runs])},
                "per_seed": [x["ttc"] for x in runs]},
    }


def show(s: dict[str, Any]) -> None:
    f = lambda d: f"{d['mean']:.4f} ± {d['ci95']:.4f}" if d.get("ci95") is not None else f"{d['mean']:.4f}"  # noqa: E731
    print(f"\nseeds {s['seeds']}; primary mode (val) {s['primary_mode']}")
    print(f"model  nRMSE/frame {f(s['model']['nrmse_frame'])}   pooled {f(s['model']['nrmse_rollout'])}")
    print(f"fno    nRMSE/frame {f(s['fno']['nrmse_frame'])}   pooled {f(s['fno']['nrmse_rollout'])}   "
          f"lr {s['protocol']['fno_lr']} unroll {s['protocol']['fno_unroll']} (chosen on val from "
          f"{[(i['lr'], i['unroll']) for i in s['protocol']['fno_search'][0]]})")
    print(f"ratio to FNO (per-frame) {f(s['ratio_to_fno'])}  (target <= 1.00); pooled {f(s['ratio_to_fno_rollout'])}")
    c = s["coarse_solver"]
    print(f"coarse solver nx {c['nx']}: nRMSE/frame {c['nrmse_frame']['mean']:.2e} at {f(c['cpu_s_per_traj'])} "
          f"CPU s/traj; model {f(s['model']['cpu_s_per_traj'])} CPU s/traj")
    print(f"persistence nRMSE/frame {s['persistence']['nrmse_frame']:.4f}")
    print(f"mass drift max {s['model']['mass_drift_max']:.2e} (target <= 1e-6); codec floor {f(s['codec_floor'])} = "
          f"{f(s['codec_floor']['ratio_to_model'])} of the model's error (target <= 0.1)")
    t = s["ttc"]
    print(f"TTC on {t['mode']}: gain {f(t['reward']['gain'])}; controls: mean of N {f(t['mean']['gain'])}, "
          f"random of N {f(t['random']['gain'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON file of every figure")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="training seeds, one pipeline and one FNO each (default 0 1 2)")
    ap.add_argument("--jobs", type=int, default=2,
                    help="seeds run at once, one process each (default 2: this 2-core machine; 1 runs them in turn)")
    ap.add_argument("--n", type=int, default=200, help="trajectories to generate (default 200: 160/20/20)")
    ap.add_argument("--steps-scale", type=float, default=1.0,
                    help=f"scale the stages' step caps (default 1.0: {', '.join(f'{k} {v}' for k, v in STEPS.items())})")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for both sides (default 1; process CPU time counts every thread)")
    ap.add_argument("--fno-lr", type=float, nargs="+", default=FNO_LRS,
                    help="FNO learning rates, each trained for the pipeline's CPU seconds, the best on val kept "
                         f"(default {FNO_LRS}, chosen on val from 1e-3 and 2e-3: docs/eval.md)")
    ap.add_argument("--fno-unroll", type=int, nargs="+", default=FNO_UNROLLS,
                    help="FNO training unrolls, searched with --fno-lr, the best on val kept "
                         f"(default {FNO_UNROLLS}, chosen on val from 1 and 2: docs/eval.md)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra dotted config override (repeatable), e.g. stages.operator.unroll=2")
    ap.add_argument("--work", default=str(REPO / "runs" / "bench_quality"),
                    help="run dirs, one per seed (default runs/bench_quality)")
    args = ap.parse_args()
    if args.jobs < 1:
        ap.error(f"--jobs {args.jobs}: must be at least 1")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    bundle = prepare_data(config(args, args.seeds[0]))
    print(f"data: {len(bundle.train.rows)}/{len(bundle.val.rows)}/{len(bundle.test.rows)} trajectories of "
          f"{bundle.test.u.shape[1]} x {bundle.test.u.shape[2]}, dt {bundle.dt:.3g}, length {bundle.length:g}",
          flush=True)
    runs = run_seeds(args, bundle)
    summary = summarise(args, runs, bundle)
    summary["protocol"]["wall_s"] = round(time.time() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    show(summary)
    print(f"\nwrote {args.out} ({summary['protocol']['wall_s']:.0f} s wall)")


if __name__ == "__main__":
    main()
