"""Where the quality bench's mean comes from: per test trajectory, the primary mode's and the FNO's per-frame
nRMSE, read back from the run directories `bench/quality.py --work DIR` left.

    .venv/bin/python bench/per_trajectory.py [--work runs/bench_quality] [--out FILE.json]

PDEBench's per-frame nRMSE divides by each frame's norm, so a trajectory whose field decays towards a near-zero
mean can weigh more than all the others together. This prints, per seed, how many trajectories the model wins,
the trajectory that costs it most and that trajectory's share of the mean. Diagnostic only: it chooses nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from usim_core.data import prepare_data  # noqa: E402
from usim_core.eval.evaluate import rollout_nrmse_per_trajectory  # noqa: E402
from usim_core.eval.fno import load_fno  # noqa: E402
from usim_core.train.checkpoint import load_surrogate  # noqa: E402


def per_trajectory(run: Path) -> dict:
    seed = int(run.name.removeprefix("seed"))
    mode = json.loads((run / "eval" / "full.json").read_text())["primary_mode"]
    model, cfg, _ = load_surrogate(run / "checkpoints" / "consistency_distill.pt")
    fno, _ = load_fno(run / "baselines" / "fno.pt")
    bundle = prepare_data(cfg)
    u = torch.as_tensor(bundle.test.u, dtype=torch.float32)
    nu = torch.as_tensor(bundle.test.nu, dtype=torch.float32)
    u0 = u[:, 0].double()
    err = {name: rollout_nrmse_per_trajectory(stepper, u, nu, bundle.dt, m, seed, length=bundle.length)
           for name, stepper, m in (("model", model, mode), ("fno", fno, "operator"))}
    worst = int(torch.argmax(err["model"] - err["fno"]))
    n = len(err["model"])
    return {"seed": seed, "primary_mode": mode, "model": err["model"].tolist(), "fno": err["fno"].tolist(),
            "u0_abs_mean": u0.mean(-1).abs().tolist(), "model_wins": int((err["model"] < err["fno"]).sum()),
            "trajectories": n, "worst": worst,
            "worst_share_of_model_mean": float(err["model"][worst] / err["model"].sum()),
            "model_mean_without_worst": float((err["model"].sum() - err["model"][worst]) / (n - 1)),
            "fno_mean_without_worst": float((err["fno"].sum() - err["fno"][worst]) / (n - 1))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(REPO / "runs" / "bench_quality"), help="bench/quality.py's --work")
    ap.add_argument("--out", help="write every figure to this JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = sorted(Path(args.work).glob("seed*"))
    if not runs:
        sys.exit(f"no seed* run directories in {args.work}: run bench/quality.py --work {args.work} first")
    rows = [per_trajectory(run) for run in runs]
    for r in rows:
        w = r["worst"]
        print(f"seed {r['seed']} ({r['primary_mode']}): model better on {r['model_wins']}/{r['trajectories']} "
              f"trajectories; mean {sum(r['model']) / r['trajectories']:.4f} vs FNO "
              f"{sum(r['fno']) / r['trajectories']:.4f}; worst #{w} (|mean u0| {r['u0_abs_mean'][w]:.3f}): "
              f"{r['model'][w]:.4f} vs {r['fno'][w]:.4f}, {100 * r['worst_share_of_model_mean']:.0f}% of the "
              f"model's mean; without it {r['model_mean_without_worst']:.4f} vs {r['fno_mean_without_worst']:.4f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"work": args.work, "seeds": rows}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
