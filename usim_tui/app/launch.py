"""Build the app from the command line: run a sweep, attach to a ledger, or show a rehearsal."""

from __future__ import annotations

import argparse
import importlib
from collections import deque
from pathlib import Path

from usim_core.config import ConfigError
from usim_tui.app.app import UsimApp
from usim_tui.app.source import LedgerSource
from usim_tui.fleet.store.ledger import Ledger

DEMO = Path("configs") / "sweeps" / "demo.yaml"


def demo_sweep() -> Path:
    """configs/sweeps/demo.yaml in the working directory, else next to the installed package (a clone)."""
    candidates = [Path.cwd() / DEMO, Path(__file__).resolve().parents[2] / DEMO]
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError("no sweep given and the demo sweep is missing; looked for "
                      + ", ".join(str(p) for p in candidates) + ". Pass a sweep file: usim-tui configs/sweeps/<name>.yaml")


def build(args: argparse.Namespace) -> UsimApp:
    if args.rehearse:
        return rehearsal(args)
    if args.ledger and not args.sweep:
        path = Path(args.ledger)
        if not path.exists():
            raise ConfigError(f"--ledger {path}: no such file; start a sweep first (usim-tui SWEEP or usim-tui run SWEEP)")
        return UsimApp(LedgerSource(Ledger(path)), read_only=args.read_only, poll_interval=args.poll,
                       dangerous=args.dangerous)
    return run_sweep(args)


def run_sweep(args: argparse.Namespace) -> UsimApp:
    """The app on a sweep: start its controller as its own process (or attach to the one that runs it), then
    render the ledger and queue commands. The app can crash or quit; the controller goes on."""
    from usim_core.sweep import expand
    from usim_tui.fleet.process import follow
    from usim_tui.fleet.process.open import default_ledger

    sweep_file = str(args.sweep or demo_sweep())
    if args.read_only:
        sweep = expand(sweep_file)
        path = Path(args.ledger) if args.ledger else default_ledger(sweep.name, args.runs)
        Ledger(path).ensure_sweep(sweep)   # the sweep's cells show before anything has run
        return UsimApp(LedgerSource(Ledger(path), sweep.name), read_only=True, poll_interval=args.poll)
    start = follow.start_or_attach(argparse.Namespace(
        sweep=sweep_file, provider=args.provider, ledger=args.ledger, runs_root=args.runs,
        no_preflight=args.no_preflight, poll=args.controller_poll, local_command=None))
    source = LedgerSource(Ledger(start.ledger), start.sweep.name, log=deque([start.line], maxlen=200),
                          sweep_file=Path(sweep_file))
    how = "started" if start.started else "attached"
    return UsimApp(source, poll_interval=args.poll, mode=f"controller pid {start.holder.pid} ({how})",
                   dangerous=args.dangerous)


def rehearsal(args: argparse.Namespace) -> UsimApp:
    try:
        rehearse = importlib.import_module("usim_tui.emulator.rehearse")
        faults = importlib.import_module("usim_tui.emulator.faults")
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--rehearse {args.rehearse}: the emulator is not available in this build ({exc})") from None
    from usim_core.sweep import expand
    from usim_tui.app.rehearsal import RehearsalSource

    sweep = expand(args.sweep or Path(demo_sweep()).parent / "overnight_sota.yaml")
    path = Path(args.rehearse)
    if not path.is_file() and "/" not in args.rehearse:  # a profile name: configs/faults/<name>.yaml
        path = Path(demo_sweep()).parents[1] / "faults" / f"{args.rehearse}.yaml"
    profile = faults.load_faults(path)
    source = RehearsalSource(rehearse.rehearse_usim, sweep, profile)
    return UsimApp(source, clock=source.clock, read_only=args.read_only, poll_interval=args.poll,
                   mode=f"rehearsal ({profile.name}, virtual clock)")
