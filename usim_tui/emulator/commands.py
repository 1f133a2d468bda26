"""`usim-tui rehearse SWEEP --faults PROFILE [--seed N] [--json]` and `usim-tui emulator [--port P]`."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("rehearse", help="rehearse a sweep overnight on a virtual clock against the Vast emulator",
                       description="Runs the real controller with the real Vast provider over HTTP against a "
                                   "loopback emulator on a virtual clock, and the naive policy on an identical "
                                   "one; reports finished cells, spend, $ per finished config and overshoot, and "
                                   "usim's champion: the finished cell best on val (its small eval's nrmse_frame). "
                                   "The night's ledger lives in a temporary folder and is gone afterwards (the app's "
                                   "--rehearse keeps one). Without recorded curves the hosts print invented "
                                   "output with no val curve, so an early_stop: rule judges nothing.")
    p.add_argument("sweep", help="a sweep file, or a shipped sweep by name: demo, overnight_sota, "
                   "overnight_sota_fine")
    p.add_argument("--faults", default="seed_night", help="a fault profile file, or a shipped one by name: none, "
                   "seed_night (the earlier night, default), seed_night_fixed (its build fixed), calm_market and "
                   "rough_market (that night with interruptible instances outbid rarely / about hourly: use with "
                   "--pricing interruptible)")
    p.add_argument("--seed", type=int, default=0, help="draws the faults and the market (same seed, same night)")
    p.add_argument("--night-hours", type=float, default=12.0, help="virtual hours before everything is destroyed")
    p.add_argument("--poll", type=float, default=30.0, help="controller poll interval, virtual seconds")
    p.add_argument("--json", action="store_true", help="one JSON object: {usim: {...}, naive: {...}, meta}")
    p.add_argument("--no-early-stop", action="store_true", help="train every cell to the end whatever the sweep's "
                   "early_stop: says (the same night without the rule, to compare)")
    p.add_argument("--pricing", choices=("on-demand", "interruptible", "interruptible-fallback"), default=None,
                   help="rent on demand or at a bid, whatever the sweep's provider.pricing says (a market that "
                        "outbids: --faults calm_market or rough_market)")
    p.add_argument("--curves", metavar="FILE", default=None,
                   help="recorded learning curves the hosts replay (bench/curves.py; docs/curves.md); default: "
                        "curves/<sweep name>.json at the repository root if it exists; 'none': invented output")
    p.set_defaults(func=cmd_rehearse)

    e = sub.add_parser("emulator", help="serve the Vast.ai emulator on a loopback port (for the vastai CLI)",
                       description="Point clients at it with VAST_URL=http://127.0.0.1:PORT and the key it prints.")
    e.add_argument("--port", type=int, default=8765, help="loopback port to serve on (default 8765)")
    e.add_argument("--faults", default=None, help="a fault profile file or shipped name (default: none)")
    e.add_argument("--seed", type=int, default=0, help="draws the faults (default 0)")
    e.add_argument("--key", default="emulator-key", help="the API key the emulator accepts")
    e.add_argument("--execute", action="store_true", help="run each instance's onstart as a local subprocess")
    e.add_argument("--workdir", default="runs/emulator", help="where executing instances run")
    e.set_defaults(func=cmd_emulator)


def _sweep(path: str):
    from usim_core.sweep import expand
    return expand(path)


def cmd_rehearse(args: argparse.Namespace) -> int:
    from usim_tui.emulator.faults import load_faults
    from usim_tui.emulator.rehearse import run
    from usim_tui.emulator.replay import pick_curves

    sweep = _sweep(args.sweep)
    if args.pricing:
        sweep = with_pricing(sweep, args.pricing)
    profile = load_faults(args.faults)
    curves = pick_curves(args.curves, sweep.name)
    fits = runs_fit(sweep, profile)
    out = run(sweep, profile, args.seed, night_h=args.night_hours, poll_interval=args.poll,
              early_stop=not args.no_early_stop, curves=curves)
    if sweep.spec.early_stop and not args.no_early_stop and curves is None:
        fits = "; ".join(filter(None, [fits, f"{sweep.name}'s early_stop: rule judges nothing here: no recorded "
                                        "curves (--curves), and the invented output has no val curve"]))
    elif curves is not None and not out["meta"]["replayed_cells"]:
        fits = "; ".join(filter(None, [fits, f"{curves.path} has none of {sweep.name}'s cells: invented output"]))
    out["meta"]["warning"] = fits
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"rehearsal: {sweep.name} ({len(sweep.cells)} cells, budget ${sweep.spec.budget:.2f}) under "
          f"{profile.name}, seed {args.seed}, {sweep.spec.provider.pricing}")
    if curves is not None:
        print(f"hosts replay the curves of {out['meta']['replayed_cells']} cells from {curves.path}")
    print(f"{'':28}{'usim':>12}{'naive':>12}")
    u, n = out["usim"], out["naive"]

    def money(v: float | None) -> str:
        return "-" if v is None else f"${v:.2f}"

    def secs(d: dict[str, Any]) -> str:
        r = d["stuck_to_replacement_s"]
        return "-" if r["median"] is None else f"{r['median'] / 60:.0f} min"

    rows = [("finished", lambda d: f"{d['finished']}/{d['cells']}"), ("spent", lambda d: money(d["spent"])),
            ("$ per finished config", lambda d: money(d["cost_per_finished"])),
            ("stopped early", lambda d: str(d.get("stopped_early", "-"))),
            ("times outbid", lambda d: str(d["outbids"])),   # every outbid, a raised instance's again too
            ("results lost", lambda d: "-" if d["lost_results"] is None else str(d["lost_results"])),
            ("overshoot", lambda d: money(d["overshoot"])), ("instances", lambda d: str(d["instances"])),
            ("stuck instances", lambda d: str(d["stuck_instances"])),
            ("stuck -> replacement (med)", secs),
            ("stuck never replaced", lambda d: str(d["stuck_to_replacement_s"]["never"])),
            ("night (virtual h)", lambda d: f"{d['night_hours']:.1f}"), ("API calls", lambda d: str(d["api_calls"]))]
    for name, fmt in rows:
        print(f"{name:28}{fmt(u):>12}{fmt(n):>12}")
    if u.get("champion"):
        print(f"usim champion: {u['champion']} (val nrmse_frame {u['champion_metric']:.4g})")
    if u.get("note"):
        print(f"usim: {u['note']}")
    if u.get("reasons"):
        print("usim attempts ended: " + ", ".join(f"{n} {r}" for r, n in u["reasons"].items()))
    if fits:
        print(f"note: {fits}")
    return 0


def with_pricing(sweep: Any, pricing: str) -> Any:
    """The sweep renting its hosts as `pricing` says (a rehearsal's --pricing)."""
    from usim_core.sweep import Sweep

    provider = type(sweep.spec.provider).model_validate({**sweep.spec.provider.model_dump(), "pricing": pricing})
    return Sweep(spec=sweep.spec.model_copy(update={"provider": provider}), path=sweep.path, cells=sweep.cells)


def runs_fit(sweep: Any, profile: Any) -> str | None:
    """Why every run would be cut short, when the profile's runs (its emulated GPU) outlast the sweep's
    provider.max_runtime_s: a sweep planned for this machine's CPU (the demo) rehearsed against a GPU night."""
    shortest = sum(lo for lo, _ in profile.stages.model_dump().values())
    limit = sweep.spec.provider.max_runtime_s
    if shortest <= limit:
        return None
    return (f"the profile {profile.name}'s runs take at least {shortest / 60:.0f} min on its emulated GPU, longer "
            f"than {sweep.name}'s provider.max_runtime_s ({limit / 60:.0f} min): every run ends at max_runtime "
            "(rehearse a sweep planned for GPU hosts, e.g. overnight_sota, or raise provider.max_runtime_s)")


def cmd_emulator(args: argparse.Namespace) -> int:
    import asyncio

    from usim_tui.emulator.faults import load_faults
    from usim_tui.emulator.server import serve
    from usim_tui.emulator.state import Emulator

    profile = load_faults(args.faults) if args.faults else None
    emu = Emulator(faults=profile, seed=args.seed, api_keys=(args.key,), execute=args.execute,
                   workdir=args.workdir)

    async def main() -> None:
        async with serve(emu, port=args.port) as url:
            print(f"Vast emulator on {url}  (key: {args.key})")
            print(f"  VAST_URL={url} VASTAI_NO_UPDATE_CHECK=1 vastai --url {url} --api-key {args.key} show instances")
            while True:
                await asyncio.sleep(3600)

    asyncio.run(main())
    return 0
