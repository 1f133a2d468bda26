"""Headless fleet commands: run, status, destroy, relaunch, pause, resume. Nothing heavy at import time."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path

from usim_core.config import ConfigError
from usim_tui.fleet.states import CellState

HEARTBEAT_POLLS = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a sweep to completion (headless: progress lines on stdout)")
    p.add_argument("sweep", help="sweep file, e.g. configs/sweeps/demo.yaml")
    p.add_argument("--provider", choices=("local", "vast"), help="override the sweep's provider")
    p.add_argument("--ledger", help="ledger path (default runs/<sweep>/ledger.sqlite)")
    p.add_argument("--headless", action="store_true", help="no app: print progress lines (the only mode here)")
    p.add_argument("--no-preflight", action="store_true", help="skip `usim-core preflight` per architecture")
    p.add_argument("--poll", type=float, default=None, help="poll interval in seconds (default 2 local, 10 vast)")
    p.add_argument("--runs-root", default="runs", help="where run directories go (default runs/)")
    p.add_argument("--local-command", help="local provider: the trainer command line, with {config} and "
                   "{run_dir} placeholders (default: python -m usim_core train --config {config} --run-dir {run_dir})")
    p.set_defaults(func=_run)

    p = sub.add_parser("status", help="the sweep's cells, attempts and spend from the ledger")
    _ledger_args(p)
    p.add_argument("--json", action="store_true", help="the full snapshot as JSON")
    p.set_defaults(func=_status)

    p = sub.add_parser("destroy", help="destroy a cell's live instance (or --all)")
    p.add_argument("cell", nargs="?")
    p.add_argument("--all", action="store_true")
    _ledger_args(p)
    p.set_defaults(func=_destroy)

    p = sub.add_parser("relaunch", help="destroy a cell's live instance and start it afresh")
    p.add_argument("cell")
    _ledger_args(p)
    p.set_defaults(func=lambda a: _queue(a, "relaunch", cell=a.cell))

    for name, text in (("pause", "stop launching new instances"), ("resume", "launch again (clears a crash loop)")):
        p = sub.add_parser(name, help=text)
        _ledger_args(p)
        p.set_defaults(func=lambda a, n=name: _queue(a, n))


def _ledger_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ledger", help="ledger path (default: the most recent runs/*/ledger.sqlite)")
    p.add_argument("--sweep", help="sweep name inside the ledger (default: its latest)")
    p.add_argument("--runs-root", default="runs")


def _find_ledger(args: argparse.Namespace):
    from usim_tui.fleet.ledger import Ledger

    if args.ledger:
        path = Path(args.ledger)
    elif args.sweep and (Path(args.runs_root) / args.sweep / "ledger.sqlite").exists():
        path = Path(args.runs_root) / args.sweep / "ledger.sqlite"
    else:
        found = sorted(Path(args.runs_root).glob("*/ledger.sqlite"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise ConfigError(f"no ledger: pass --ledger PATH (none found under {args.runs_root}/*/ledger.sqlite)")
        path = found[-1]
    if not path.exists():
        raise ConfigError(f"{path}: no such ledger")
    led = Ledger(path)
    try:
        name = led.sweep_row(args.sweep).name
    except LookupError as exc:
        raise ConfigError(str(exc)) from None
    return led, name


def _run(args: argparse.Namespace) -> int:
    from usim_tui.fleet.open import open_sweep

    opened = open_sweep(args.sweep, kind=args.provider, ledger=args.ledger, runs_root=args.runs_root,
                        poll_interval=args.poll, run_preflight=not args.no_preflight,
                        local_command=args.local_command, log=lambda m: print(m, flush=True))
    sweep, ledger, provider = opened.sweep, opened.ledger, opened.provider
    print(f"sweep {sweep.name}: {len(sweep.cells)} cells on {provider.name}, budget ${sweep.spec.budget:.2f}, "
          f"ledger {ledger.path}", flush=True)
    try:
        asyncio.run(opened.controller.run())
    except KeyboardInterrupt:
        print("\ninterrupted: the ledger is consistent", flush=True)
        return _on_interrupt(opened.controller, provider)
    finally:
        try:
            asyncio.run(opened.close())
        except Exception:  # noqa: BLE001 - closing must not mask the real outcome
            pass
    return 0 if all(c.state in (CellState.FINISHED, CellState.DUPLICATE) for c in ledger.snapshot(sweep.name).cells) else 1


def _on_interrupt(ctl, provider) -> int:
    live = [a for a in ctl.ledger.live_attempts(ctl.name) if a.provider_id]
    if not live:
        return 130
    what = "\n".join(f"  {a.label}  {a.provider_id}  {a.state}  ${a.price_per_hour:.3f}/h" for a in live)
    if sys.stdin.isatty():
        answer = input(f"{len(live)} instance(s) still live:\n{what}\ndestroy them? [Y/n] ").strip().lower()
        destroy = answer in ("", "y", "yes")
    else:
        destroy = provider.name == "local"
    if destroy:
        async def teardown() -> None:
            await ctl.command("destroy", all=True)
            await ctl.tick()
        asyncio.run(teardown())
        print(f"destroyed {len(live)} instance(s)")
    else:
        print(f"LEFT RUNNING (billing until destroyed; `usim-tui destroy --all --ledger {ctl.ledger.path}`):\n{what}")
    return 130


def _status(args: argparse.Namespace) -> int:
    from usim_tui.fleet.snapshot import headline

    led, name = _find_ledger(args)
    snap = led.snapshot(name)
    if args.json:
        print(json.dumps(dataclasses.asdict(snap), indent=2, default=str))
        return 0
    b = snap.budget
    print(f"{snap.sweep} ({snap.provider}) spent ${b.spent:.4f} of ${b.budget:.2f}, committed ${b.committed:.4f}, "
          f"burn ${b.burn_per_hour:.2f}/h{'  PAUSED' if snap.paused else ''}  provider: {snap.provider_status}")
    if b.provider_reported is not None:
        print(f"  provider reports ${b.provider_reported:.4f} spent; estimate - provider = "
              f"${b.spent - b.provider_reported:+.4f}")
    if snap.crash_loop:
        print(f"CRASH LOOP: {snap.crash_loop}")
    width = max((len(c.name) for c in snap.cells), default=4)
    for c in snap.cells:
        m = headline(c.metrics)
        why = f" ({c.reason})" if c.reason and c.state == "failed" else ""
        print(f"  {c.name:<{width}}  {c.state:<9}{why}  attempts {c.attempts}  ${c.cost:.4f}  {m}")
    return 0


def _destroy(args: argparse.Namespace) -> int:
    if not args.cell and not args.all:
        raise ConfigError("destroy: name a CELL or pass --all")
    return _queue(args, "destroy", **({"all": True} if args.all else {"cell": args.cell}))


def _queue(args: argparse.Namespace, command: str, **kw) -> int:
    """Queue for the running controller; with no live controller, apply it directly."""
    led, name = _find_ledger(args)
    if "cell" in kw and kw["cell"] not in {c.name for c in led.cells(name)}:
        raise ConfigError(f"sweep {name} has no cell {kw['cell']!r}; cells: "
                          + ", ".join(c.name for c in led.cells(name)))
    seen = led.sweep_row(name).controller_seen_at
    if seen and time.time() - seen < HEARTBEAT_POLLS * 10:
        cid = led.enqueue(name, command, **kw)
        for _ in range(100):
            result = led.command(cid).result
            if result:
                print(f"{command}: {result}")
                return 0 if result == "ok" else 1
            time.sleep(0.2)
        print(f"{command}: queued for the running controller (id {cid})")
        return 0
    return asyncio.run(_direct(led, name, command, kw))


async def _direct(led, name: str, command: str, kw: dict) -> int:
    from usim_tui.fleet.open import open_sweep

    runs_root = led.path.parent.parent   # runs/<sweep>/ledger.sqlite
    opened = open_sweep(led.load_sweep(name), ledger=led.path, runs_root=runs_root, run_preflight=False)
    ctl = opened.controller
    try:
        await ctl.observe()
        result = await ctl.command(command, **kw)
        await ctl.observe()
    finally:
        await opened.close()
    hint = " (it launches when `usim-tui run` next runs)" if command in ("relaunch", "resume") else ""
    print(f"{command}: {result}: no controller running, applied directly{hint}")
    return 0
