"""Early stopping on the seed night with its build fixed: the same nights rehearsed without the sweep's
`early_stop:` rule and with it, paired by seed (the emulator's hosts replay the learning curves recorded in
curves/<sweep>.json where there are some, with their measured run-to-run noise).

For each seed: what each night cost, its champion (the finished cell best on val) and that champion's val score.
Reported: the cost with the rule as a fraction of the cost without it (mean over seeds with a 95% paired-bootstrap
interval), how often the rule's champion is the full grid's, and how often it is that or within the seed-to-seed
noise of the metric (exp(sigma) of the recorded final metric's log-noise) of the full grid's champion's score.

A champion is judged two ways: by the score its night drew (as a user would see it), and by its expected score
(the centre its replays scatter around: curves.expected), which a lucky draw among many finished cells cannot
flatter. With --larger, a grid about three times larger is rehearsed with its own rule for the same budget, and
its champion compared with the small grid's.

Run: .venv/bin/python bench/early_stop.py [--sweep overnight_sota] [--seeds 20] [--larger overnight_sota_fine]
     [--out FILE.json]   (two or three rehearsals a seed, a few CPU-seconds each)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stats import paired_bootstrap  # noqa: E402  (bench/ is the script's own directory)

from usim_core.sweep import expand  # noqa: E402
from usim_tui.emulator import rehearse  # noqa: E402
from usim_tui.emulator.faults import load_faults  # noqa: E402
from usim_tui.emulator.replay import pick_curves  # noqa: E402


def night(sweep, faults, seed: int, early_stop: bool, hours: float, curves) -> dict:
    """One rehearsed night's figures, with its champion's expected score (what its replays scatter around)."""
    res = asyncio.run(rehearse.rehearse_usim(sweep, faults, seed, night_h=hours, early_stop=early_stop,
                                             curves=curves)).to_dict()
    keys = ("finished", "spent", "champion", "champion_metric") + (("stopped_early",) if early_stop else ())
    out = {k: res[k] for k in keys}
    out["champion_expected"] = curves.expected(res["champion"]) if curves and res["champion"] else None
    return out


def at_least_as_good(a: float | None, b: float | None, slack: float = 1.0) -> bool:
    """a (lower is better) is no worse than b times slack; a missing a never is, a missing b always is."""
    return a is not None and (b is None or a <= b * slack)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", default="overnight_sota", help="a sweep with an early_stop: block (default overnight_sota)")
    ap.add_argument("--larger", help="also rehearse this larger grid with its rule for the same budget, and count how "
                    "often it finds a champion at least as good (e.g. overnight_sota_fine)")
    ap.add_argument("--faults", default="seed_night_fixed", help="fault profile (default seed_night_fixed)")
    ap.add_argument("--seeds", type=int, default=20, help="nights per side, seeds 0..N-1 (default 20)")
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first..first+N-1 (choose a rule on others)")
    ap.add_argument("--hours", type=float, default=12.0, help="virtual hours a night (default 12)")
    ap.add_argument("--curves", default=None, help="recorded curves the hosts replay (default curves/<sweep>.json; "
                    "'none': invented output)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    sweep = expand(args.sweep)
    if sweep.spec.early_stop is None:
        raise SystemExit(f"{sweep.path}: no early_stop: block to compare against")
    larger = expand(args.larger) if args.larger else None
    if larger is not None and larger.spec.early_stop is None:
        raise SystemExit(f"{larger.path}: no early_stop: block (--larger is rehearsed with its rule)")
    if larger is not None and larger.spec.budget != sweep.spec.budget:
        raise SystemExit(f"--larger {larger.path}: budget ${larger.spec.budget} is not {sweep.path}'s "
                         f"${sweep.spec.budget}; the comparison is at the same money")
    faults = load_faults(args.faults)
    curves = pick_curves(args.curves, sweep.name)
    larger_curves = pick_curves(None, larger.name) if larger is not None else None
    if larger is not None:   # invented scores beside recorded ones would compare nothing
        missing = [c.name for c in larger.cells if larger_curves is None or c.name not in larger_curves.cells]
        if missing:
            raise SystemExit(f"--larger {larger.name}: no recorded curves for {len(missing)} of its cells "
                             f"({', '.join(missing[:3])}, ...); record them: nice -n 10 .venv/bin/python "
                             f"bench/curves.py configs/sweeps/{larger.path.name} --reuse curves/{sweep.name}.json")
    sigma = curves.final_sigma if curves else 0.0
    slack = math.exp(sigma)
    t0 = time.process_time()
    rows = []
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    for seed in seeds:
        full = night(sweep, faults, seed, False, args.hours, curves)
        ruled = night(sweep, faults, seed, True, args.hours, curves)
        same = ruled["champion"] == full["champion"]
        row = {"seed": seed, "full": full, "rule": ruled, "cost_ratio": ruled["spent"] / full["spent"],
               "same_champion": same,
               "within_noise": same or at_least_as_good(ruled["champion_metric"], full["champion_metric"], slack),
               "within_noise_expected": same or at_least_as_good(ruled["champion_expected"],
                                                                 full["champion_expected"], slack)}
        line = (f"seed {seed:3d}: full ${full['spent']:.2f} {full['champion']} ({full['champion_metric']}); rule "
                f"${ruled['spent']:.2f} ({row['cost_ratio']:.2f}x, {ruled['stopped_early']} stopped) "
                f"{ruled['champion']} ({ruled['champion_metric']}){'' if row['within_noise'] else '  MISSED'}")
        if larger is not None:
            big = night(larger, faults, seed, True, args.hours, larger_curves)
            row["larger"] = big
            for side in ("full", "rule"):
                row[f"larger_vs_{side}"] = {k: at_least_as_good(big[f"champion_{k}"], row[side][f"champion_{k}"])
                                            for k in ("metric", "expected")}
            line += f"; larger ${big['spent']:.2f} {big['champion']} ({big['champion_metric']})"
        rows.append(row)
        print(line, flush=True)
    n = len(rows)
    ratio = paired_bootstrap([r["cost_ratio"] for r in rows])
    out = {"command": " ".join(["python", "bench/early_stop.py", *sys.argv[1:]]), "sweep": sweep.name,
           "faults": faults.name, "seeds": seeds, "rule": sweep.spec.early_stop.model_dump(),
           "curves": str(curves.path.relative_to(ROOT)) if curves else None,
           "noise_log_sigma": sigma, "cost_ratio": ratio,
           "same_champion": sum(r["same_champion"] for r in rows), "within_noise": sum(r["within_noise"] for r in rows),
           "within_noise_expected": sum(r["within_noise_expected"] for r in rows)}
    ci = "[95% paired bootstrap {:.3f}, {:.3f}]".format(*ratio["ci95"]) if ratio["ci95"] else "(no interval: 1 seed)"
    print(f"\ncost with the rule / without: {ratio['mean']:.3f} {ci} over "
          f"{n} seeds; champion the full grid's in {out['same_champion']}/{n}, that or within exp({sigma:.3f}) of "
          f"its score in {out['within_noise']}/{n} (drawn scores), {out['within_noise_expected']}/{n} (expected)")
    if larger is not None:
        out["larger"] = {"sweep": larger.name, "cells": sum(not c.duplicate_of for c in larger.cells), "rule": larger.spec.early_stop.model_dump(),
                         "curves": str(larger_curves.path.relative_to(ROOT)) if larger_curves else None,
                         "spent_mean": statistics.fmean(r["larger"]["spent"] for r in rows),
                         "spent_ratio_to_full": paired_bootstrap([r["larger"]["spent"] / r["full"]["spent"]
                                                                  for r in rows])}
        for side in ("full", "rule"):
            for k in ("metric", "expected"):
                wins = sum(r[f"larger_vs_{side}"][k] for r in rows)
                losses = sum(at_least_as_good(r[side][f"champion_{k}"], r["larger"][f"champion_{k}"])
                             and not r[f"larger_vs_{side}"][k] for r in rows)
                out["larger"][f"vs_{side}_{k}"] = {"at_least_as_good": wins, "worse": losses}
                print(f"larger grid ({larger.name}, {out['larger']['cells']} cells, mean ${out['larger']['spent_mean']:.2f})"
                      f" vs the small grid {'without' if side == 'full' else 'with'} the rule, {k} score of the "
                      f"champion: at least as good in {wins}/{n}, worse in {losses}/{n}")
    out["cpu_s"] = round(time.process_time() - t0, 1)
    out["per_seed"] = rows
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
