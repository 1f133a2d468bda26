"""Early stopping on the seed night with its build fixed: the same nights rehearsed without the sweep's
`early_stop:` rule and with it, paired by seed (the emulator's hosts replay the learning curves recorded in
curves/<sweep>.json where there are some, with their measured run-to-run noise).

For each seed: what each night cost, its champion (the finished cell best on val) and that champion's val score.
Reported: the cost with the rule as a fraction of the cost without it (mean over seeds with a 95% paired-bootstrap
interval), how often the rule's champion is the full grid's, and how often it is that or within the seed-to-seed
noise of the metric (exp(sigma) of the recorded final metric's log-noise) of the full grid's champion's score.

Run: .venv/bin/python bench/early_stop.py [--sweep overnight_sota] [--seeds 20] [--out FILE.json]
(two rehearsals a seed, a few CPU-seconds each)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stats import paired_bootstrap  # noqa: E402  (bench/ is the script's own directory)

from usim_core.eval.schema import PRIMARY_METRIC  # noqa: E402
from usim_core.sweep import expand  # noqa: E402
from usim_tui.emulator import rehearse  # noqa: E402
from usim_tui.emulator.faults import load_faults  # noqa: E402
from usim_tui.emulator.replay import pick_curves  # noqa: E402


def noise_sigma(curves) -> float:
    """The recorded final metric's seed-to-seed log-sigma (the curves file's noise), else 0 (same cell only)."""
    if curves is None:
        return 0.0
    noise = json.loads(Path(curves.path).read_text()).get("noise", {}).get("final_log_sigma") or {}
    return float(noise.get(PRIMARY_METRIC, 0.0)) if isinstance(noise, dict) else float(noise)


def night(sweep, faults, seed: int, early_stop: bool, hours: float, curves) -> dict:
    return asyncio.run(rehearse.rehearse_usim(sweep, faults, seed, night_h=hours, early_stop=early_stop,
                                              curves=curves)).to_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", default="overnight_sota", help="a sweep with an early_stop: block (default overnight_sota)")
    ap.add_argument("--faults", default="seed_night_fixed", help="fault profile (default seed_night_fixed)")
    ap.add_argument("--seeds", type=int, default=20, help="nights per side, seeds 0..N-1 (default 20)")
    ap.add_argument("--hours", type=float, default=12.0, help="virtual hours a night (default 12)")
    ap.add_argument("--curves", default=None, help="recorded curves the hosts replay (default curves/<sweep>.json; "
                    "'none': invented output)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    sweep = expand(args.sweep)
    if sweep.spec.early_stop is None:
        raise SystemExit(f"{sweep.path}: no early_stop: block to compare against")
    faults = load_faults(args.faults)
    curves = pick_curves(args.curves, sweep.name)
    sigma = noise_sigma(curves)
    t0 = time.process_time()
    rows = []
    for seed in range(args.seeds):
        full = night(sweep, faults, seed, False, args.hours, curves)
        ruled = night(sweep, faults, seed, True, args.hours, curves)
        same = ruled["champion"] == full["champion"]
        close = same or (ruled["champion_metric"] is not None and full["champion_metric"] is not None
                         and ruled["champion_metric"] <= full["champion_metric"] * math.exp(sigma))
        rows.append({"seed": seed, "full": {k: full[k] for k in ("finished", "spent", "champion", "champion_metric")},
                     "rule": {k: ruled[k] for k in ("finished", "spent", "champion", "champion_metric",
                                                    "stopped_early")},
                     "cost_ratio": ruled["spent"] / full["spent"], "same_champion": same, "within_noise": close})
        print(f"seed {seed:3d}: full ${full['spent']:.2f} champion {full['champion']} ({full['champion_metric']}); "
              f"rule ${ruled['spent']:.2f} ({rows[-1]['cost_ratio']:.2f}x, {ruled['stopped_early']} stopped) "
              f"champion {ruled['champion']} ({ruled['champion_metric']}){'' if close else '  MISSED'}", flush=True)
    ratio = paired_bootstrap([r["cost_ratio"] for r in rows])
    out = {"command": " ".join(["python", "bench/early_stop.py", *sys.argv[1:]]), "sweep": sweep.name,
           "faults": faults.name, "seeds": list(range(args.seeds)), "rule": sweep.spec.early_stop.model_dump(),
           "curves": str(curves.path.relative_to(ROOT)) if curves else None,
           "noise_log_sigma": sigma, "cost_ratio": ratio,
           "same_champion": sum(r["same_champion"] for r in rows), "within_noise": sum(r["within_noise"] for r in rows),
           "cpu_s": round(time.process_time() - t0, 1), "per_seed": rows}
    lo, hi = ratio["ci95"] or (None, None)
    print(f"\ncost with the rule / without: {ratio['mean']:.3f} [95% paired bootstrap {lo:.3f}, {hi:.3f}] over "
          f"{args.seeds} seeds; champion the full grid's in {out['same_champion']}/{args.seeds}, that or within "
          f"exp({sigma:.3f}) of its score in {out['within_noise']}/{args.seeds}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
