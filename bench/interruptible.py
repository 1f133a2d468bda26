"""Interruptible instances in a rough market against on demand: the same nights (the seed night with its build
fixed, plus a market that outbids bid instances about hourly) rehearsed renting on demand and at a bid, paired
by seed. The emulator's hosts replay the learning curves recorded in curves/<sweep>.json.

Per seed: finished cells, spend (and what the emulator billed for GPUs and for storage), cost per finished cell,
outbids, lost results (cells whose run finished on a host but never came home), and each cell finished on both
sides with its final val metric; and what a perfect night at a bid would cost against on demand: on demand's own
hosts and hours, never outbid, the GPU at the first bid (min_bid x bid_margin), storage as it was. Reported: the cost per
finished cell at a bid as a fraction of on demand (mean over seeds with a 95% paired-bootstrap interval), the
seeds where a bid finished as many cells, and the finished cells whose final val metric at a bid is within the
seed noise of the same cell's on demand (|ln ratio| <= 1.96 x sqrt 2 x the recorded log-noise: two independent
draws of the same cell differ that much 95% of the time).

Run: .venv/bin/python bench/interruptible.py [--seeds 10] [--faults rough_market] [--out FILE.json]
     (two rehearsals a seed, a few CPU-seconds each; early stopping off: every cell trains to the end)
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

from usim_core.sweep import expand  # noqa: E402
from usim_tui.emulator import offers, rehearse  # noqa: E402
from usim_tui.emulator.commands import with_pricing  # noqa: E402
from usim_tui.emulator.faults import load_faults  # noqa: E402
from usim_tui.emulator.replay import pick_curves  # noqa: E402

KEYS = ("finished", "finishable", "spent", "cost_per_finished", "outbids", "lost_results", "night_hours", "finals")


def night(sweep, faults, seed: int, hours: float, curves) -> dict:
    """One night's figures, with what the emulator billed for GPUs and for storage."""
    seen: dict = {}
    res = asyncio.run(rehearse.rehearse_usim(sweep, faults, seed, night_h=hours, early_stop=False, curves=curves,
                                             on_tick=lambda _ctl, emu: seen.setdefault("emu", emu))).to_dict()
    emu = seen["emu"]
    parts = [i.billed_parts(emu.clock.now()) for i in emu.instances.values()]
    return {**{k: res[k] for k in KEYS}, "gpu": round(sum(g for g, _ in parts), 4),
            "storage": round(sum(s for _, s in parts), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", default="overnight_sota", help="the sweep (default overnight_sota)")
    ap.add_argument("--faults", default="rough_market", help="fault profile with a market (default rough_market)")
    ap.add_argument("--pricing", default="interruptible", choices=("interruptible", "interruptible-fallback"),
                    help="what is compared with on demand (default interruptible)")
    ap.add_argument("--seeds", type=int, default=10, help="nights per side, seeds first..first+N-1 (default 10)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--hours", type=float, default=12.0, help="virtual hours a night (default 12)")
    ap.add_argument("--checkpoint-every", type=float, default=None, metavar="S",
                    help="override provider.checkpoint_every_s (0: no resume point is pulled: a moved cell starts "
                    "again from zero, as before resuming existed)")
    ap.add_argument("--min-bid-share", type=float, default=None, metavar="F",
                    help="sensitivity: the emulator's quiet-market min_bid as a share of the on-demand price "
                    f"(default {offers.MIN_BID_SHARE}, as a public scrape of Vast's listings found; docs/vast.md)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    if args.min_bid_share is not None:
        offers.MIN_BID_SHARE = args.min_bid_share
    sweep = expand(args.sweep)
    if args.checkpoint_every is not None:
        sweep.spec.provider.checkpoint_every_s = args.checkpoint_every
    faults = load_faults(args.faults)
    if faults.market.outbid_per_hour <= 0:
        raise SystemExit(f"--faults {args.faults}: no market (market.outbid_per_hour is 0): nothing is outbid")
    curves = pick_curves(None, sweep.name)
    sigma = curves.final_sigma if curves else 0.0
    band = 1.96 * math.sqrt(2) * sigma
    t0 = time.process_time()
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        od = night(with_pricing(sweep, "on-demand"), faults, seed, args.hours, curves)
        bid = night(with_pricing(sweep, args.pricing), faults, seed, args.hours, curves)
        both = sorted(set(od["finals"]) & set(bid["finals"]))
        off = {c: round(math.log(bid["finals"][c] / od["finals"][c]), 4) for c in both}
        # a perfect night at a bid: on demand's own hosts and hours, the GPU at the first bid, storage as it was
        floor = (offers.MIN_BID_SHARE * sweep.spec.provider.bid_margin * od["gpu"] + od["storage"]) / od["spent"]
        row = {"seed": seed, "on_demand": od, "bid": bid, "same_finished": bid["finished"] >= od["finished"],
               "perfect_ratio": round(floor, 4),
               "cost_ratio": (bid["cost_per_finished"] / od["cost_per_finished"]
                              if bid["cost_per_finished"] and od["cost_per_finished"] else None),
               "finals_log_ratio": off, "finals_within_noise": sum(abs(v) <= band for v in off.values())}
        rows.append(row)
        print(f"seed {seed:3d}: on demand {od['finished']} finished ${od['spent']:.2f} "
              f"(${od['cost_per_finished'] or 0:.3f} each); at a bid {bid['finished']} finished ${bid['spent']:.2f} "
              f"(${bid['cost_per_finished'] or 0:.3f} each, {bid['outbids']} outbids, {bid['lost_results']} lost) "
              f"-> {row['cost_ratio'] or float('nan'):.3f}x; finals within noise {row['finals_within_noise']}/{len(off)}",
              flush=True)
    ratio = paired_bootstrap([r["cost_ratio"] for r in rows])
    n = len(rows)
    out = {"command": " ".join(["python", "bench/interruptible.py", *sys.argv[1:]]), "sweep": sweep.name,
           "faults": faults.name, "pricing": args.pricing, "seeds": [r["seed"] for r in rows],
           "settings": sweep.spec.provider.model_dump(include={"bid_margin", "max_bid_share", "checkpoint_every_s",
                                                                  "fallback_after_outbids"}),
           "min_bid_share": offers.MIN_BID_SHARE,
           "curves": str(curves.path.relative_to(ROOT)) if curves else None, "noise_log_sigma": sigma,
           "noise_band": band, "cost_per_finished_ratio": ratio,
           "same_finished": sum(r["same_finished"] for r in rows),
           "lost_results": sum(r["bid"]["lost_results"] or 0 for r in rows),
           "finals_within_noise": sum(r["finals_within_noise"] for r in rows),
           "finals_compared": sum(len(r["finals_log_ratio"]) for r in rows),
           "perfect_ratio": sum(r["perfect_ratio"] for r in rows) / len(rows), "rows": rows}
    ci = "[95% paired bootstrap {:.3f}, {:.3f}]".format(*ratio["ci95"]) if ratio["ci95"] else "(no interval)"
    print(f"\ncost per finished cell at a bid / on demand: {ratio['mean']:.3f} {ci} over {n} seeds; as many "
          f"finished in {out['same_finished']}/{n}; results lost {out['lost_results']}; finished cells' final val "
          f"within the noise of on demand's {out['finals_within_noise']}/{out['finals_compared']}; a perfect night "
          f"at the first bid (on demand's hosts and hours, never outbid) would cost {out['perfect_ratio']:.3f}x")
    out["cpu_s"] = round(time.process_time() - t0, 1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
