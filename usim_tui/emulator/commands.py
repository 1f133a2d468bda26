"""`usim-tui rehearse SWEEP --faults PROFILE [--seed N] [--json]` and `usim-tui emulator [--port P]`."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("rehearse", help="rehearse a sweep overnight on a virtual clock against the Vast emulator",
                       description="Runs the real controller with the real Vast provider over HTTP against a "
                                   "loopback emulator on a virtual clock, and the naive policy on an identical "
                                   "one; reports finished cells, spend, $ per finished config and overshoot.")
    p.add_argument("sweep", help="sweep file, e.g. configs/sweeps/overnight_sota.yaml")
    p.add_argument("--faults", default="configs/faults/seed_night.yaml", help="fault profile (configs/faults/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--night-hours", type=float, default=12.0, help="virtual hours before everything is destroyed")
    p.add_argument("--poll", type=float, default=30.0, help="controller poll interval, virtual seconds")
    p.add_argument("--json", action="store_true", help="one JSON object: {usim: {...}, naive: {...}, meta}")
    p.set_defaults(func=cmd_rehearse)

    e = sub.add_parser("emulator", help="serve the Vast.ai emulator on a loopback port (for the vastai CLI)",
                       description="Point clients at it with VAST_URL=http://127.0.0.1:PORT and the key it prints.")
    e.add_argument("--port", type=int, default=8765)
    e.add_argument("--faults", default=None, help="fault profile (default: none)")
    e.add_argument("--seed", type=int, default=0)
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

    sweep = _sweep(args.sweep)
    profile = load_faults(args.faults)
    out = run(sweep, profile, args.seed, night_h=args.night_hours, poll_interval=args.poll)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"rehearsal: {sweep.name} ({len(sweep.cells)} cells, budget ${sweep.spec.budget:.2f}) under "
          f"{profile.name}, seed {args.seed}")
    print(f"{'':28}{'usim':>12}{'naive':>12}")
    u, n = out["usim"], out["naive"]

    def money(v: float | None) -> str:
        return "-" if v is None else f"${v:.2f}"

    def secs(d: dict[str, Any]) -> str:
        r = d["stuck_to_replacement_s"]
        return "-" if r["median"] is None else f"{r['median'] / 60:.0f} min"

    rows = [("finished", lambda d: f"{d['finished']}/{d['cells']}"), ("spent", lambda d: money(d["spent"])),
            ("$ per finished config", lambda d: money(d["cost_per_finished"])),
            ("overshoot", lambda d: money(d["overshoot"])), ("instances", lambda d: str(d["instances"])),
            ("stuck instances", lambda d: str(d["stuck_instances"])),
            ("stuck -> replacement (med)", secs),
            ("stuck never replaced", lambda d: str(d["stuck_to_replacement_s"]["never"])),
            ("night (virtual h)", lambda d: f"{d['night_hours']:.1f}"), ("API calls", lambda d: str(d["api_calls"]))]
    for name, fmt in rows:
        print(f"{name:28}{fmt(u):>12}{fmt(n):>12}")
    if u.get("note"):
        print(f"usim: {u['note']}")
    return 0


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
