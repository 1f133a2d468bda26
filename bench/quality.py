"""Quality at equal budget: this pipeline vs the neuralop FNO on the same Burgers data and test trajectories.

    .venv/bin/python bench/quality.py [--n 300] [--steps-scale 1.0] [--threads 1]

1. Generate PDEBench-style Burgers (nu = 0.01, 1024 x 201 -> 256 x 41 after striding), n trajectories,
   trajectory-disjoint 80/10/10 splits.
2. Train the four stages (step caps scaled by --steps-scale) and measure the wall-clock T it took.
3. Train the FNO baseline for the same T seconds on the same training split, same threads.
4. Evaluate both on the same test trajectories (evaluate_checkpoint: rollout from t = 0 over all 40 steps and
   teacher-forced one step), with TTC on the stochastic modes, and print nRMSE with ratios to the FNO.
The eval JSON and PNGs are left in runs/bench_quality/eval/.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from usim_core.config import load_config  # noqa: E402
from usim_core.data import prepare_data  # noqa: E402
from usim_core.eval.evaluate import evaluate_checkpoint  # noqa: E402
from usim_core.eval.fno import save_fno, train_fno  # noqa: E402
from usim_core.events import EventLog  # noqa: E402
from usim_core.train.run import train_run  # noqa: E402

# A mid-size surrogate: on one CPU thread the base architecture gets only ~150 operator steps in 5 minutes.
ARCH = {
    "model.codec": {"latent_tokens": 16, "latent_dim": 16, "hidden_dim": 32, "depth": 1},
    "model.operator": {"hidden_dim": 64, "heads": 4, "depth": 2, "mlp_ratio": 2.0},
    "model.diffusion": {"hidden_dim": 32, "heads": 4, "depth": 1, "steps": 4},
}
# The codec error floors every latent mode and the operator sets the rollout, so they share most of the
# budget; the stochastic stages gained little over the operator (~2%), so they get the least.
STEPS = {"codec": 700, "operator": 700, "diffusion_residual": 100, "consistency_distill": 60}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="trajectories to generate")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="scale the stages' step caps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "runs" / "bench_quality"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    over = {"data.generate.n": args.n, "data.cache_dir": str(REPO / "data" / "bench"), **ARCH,
            "eval.full.horizons": [1, 4, 16, 40],
            "eval.ttc": {"enabled": True, "candidates": 8, "max_evaluations": 150, "lookahead": 0}}
    for stage, steps in STEPS.items():
        over[f"stages.{stage}.max_steps"] = max(1, int(steps * args.steps_scale))
        over[f"stages.{stage}.epochs"] = 1000  # the step cap binds
    cfg = load_config(REPO / "configs" / "runs" / "burgers_base.yaml", over)
    t = time.time()
    bundle = prepare_data(cfg)
    print(f"data: {bundle.train.u.shape[0]}/{bundle.val.u.shape[0]}/{bundle.test.u.shape[0]} trajectories "
          f"of {bundle.test.u.shape[1]} x {bundle.test.u.shape[2]}, dt {bundle.dt:.3g} ({time.time() - t:.0f}s)")

    run = Path(args.out)
    shutil.rmtree(run, ignore_errors=True)
    t = time.time()
    train_run(cfg, run, bundle=bundle, device="cpu", run_evals=False, quiet=True,
              events=EventLog(run, stream=io.StringIO()))
    budget = time.time() - t
    torch.set_num_threads(args.threads)  # train_run sets threads from USIM_THREADS; keep the two runs equal
    print(f"pipeline: 4 stages, steps {[over[f'stages.{s}.max_steps'] for s in STEPS]}, {budget:.0f}s")

    t = time.time()
    op = cfg.stages.operator
    fno, info = train_fno(bundle.train.u, bundle.train.nu, bundle.stats.mean, bundle.stats.std, budget_s=budget,
                          seed=cfg.seed, unroll=op.unroll, unroll_weight=op.unroll_weight,
                          batch_size=op.batch_size, lr=op.lr)
    save_fno(run / "baselines" / "fno.pt", fno, dt=float(bundle.dt), manifest_hash=bundle.manifest_hash,
             train_rows=bundle.train.rows, config_hash=cfg.config_hash(), info=info)
    print(f"fno: {info['steps']} steps in {time.time() - t:.0f}s (budget {budget:.0f}s)")

    t = time.time()
    rep = evaluate_checkpoint(run / "checkpoints" / "consistency_distill.pt", "test", bundle=bundle,
                              out=run / "eval" / "full.json")
    print(f"eval: {rep['trajectories']} test trajectories x {rep['steps']} steps ({time.time() - t:.0f}s); "
          f"codec reconstruction nRMSE {rep['codec_nrmse']:.4f} (floor of the latent modes)\n")

    fno_m = rep["baselines"]["fno"]["metrics"]
    rows = [("persistence", rep["baselines"]["persistence"]), ("fno", rep["baselines"]["fno"]),
            *[(m, rep["modes"][m]) for m in ("operator", "diffusion", "diffusion+ttc", "consistency",
                                            "consistency+ttc") if m in rep["modes"]]]
    print(f"{'':<16} {'rollout nRMSE':>14} {'/ fno':>7} {'1-step nRMSE':>13} {'/ fno':>7} "
          f"{'h=1':>7} {'h=16':>7} {'h=40':>7}")
    for name, r in rows:
        m, h = r["metrics"], r["nrmse_by_horizon"]
        print(f"{name:<16} {m['nrmse_rollout']:>14.4f} {m['nrmse_rollout'] / fno_m['nrmse_rollout']:>7.2f} "
              f"{m['nrmse_1step']:>13.4f} {m['nrmse_1step'] / fno_m['nrmse_1step']:>7.2f} "
              f"{h.get('1', float('nan')):>7.3f} {h.get('16', float('nan')):>7.3f} {h.get('40', float('nan')):>7.3f}")
    for mode in ("diffusion", "consistency"):
        if t := rep["modes"].get(f"{mode}+ttc", {}).get("ttc"):
            print(f"TTC on {mode}: gain {t['gain']:+.2%} (evaluations {t['evaluations']:.0f}/{t['max_evaluations']} "
                  f"per trajectory, {t['distinct_choices']} distinct candidate indices chosen)")
    best = min(rep["modes"][m]["metrics"]["nrmse_rollout"] for m in rep["modes"])
    print(f"\nbest pipeline rollout nRMSE / FNO at equal budget: {best / fno_m['nrmse_rollout']:.2f} "
          f"(target <= 1.00)")
    print(json.dumps({"budget_s": round(budget, 1), "fno_steps": info["steps"], "json": str(run / "eval/full.json")}))


if __name__ == "__main__":
    main()
