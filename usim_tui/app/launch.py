"""Build the app from the command line: run a sweep, attach to a ledger, or show a rehearsal."""

from __future__ import annotations

import argparse
import importlib
from collections import deque
from pathlib import Path

from usim_core.config import ConfigError
from usim_tui.app.app import UsimApp
from usim_tui.app.commands import default_ledger, demo_sweep
from usim_tui.app.source import LedgerSource
from usim_tui.fleet.ledger import Ledger

CONTROLLER_POLL = {"local": 3.0, "vast": 10.0}  # seconds between provider listings


def build(args: argparse.Namespace) -> UsimApp:
    if args.rehearse:
        return rehearsal(args)
    if args.ledger and not args.sweep:
        path = Path(args.ledger)
        if not path.exists():
            raise ConfigError(f"--ledger {path}: no such file; start a sweep first (usim-tui SWEEP or usim-tui run SWEEP)")
        return UsimApp(LedgerSource(Ledger(path)), read_only=args.read_only, poll_interval=args.poll)
    return run_sweep(args)


def run_sweep(args: argparse.Namespace) -> UsimApp:
    from usim_core.sweep import expand
    from usim_tui.fleet.clock import RealClock
    from usim_tui.fleet.controller import Controller
    from usim_tui.fleet.providers import make_provider

    sweep = expand(args.sweep or demo_sweep())
    if args.provider:
        sweep.spec.provider = sweep.spec.provider.model_copy(update={"kind": args.provider})
    path = Path(args.ledger) if args.ledger else default_ledger(sweep.name)
    writer = Ledger(path)
    writer.ensure_sweep(sweep)
    reader = Ledger(path)  # its own connection: snapshots are read in a worker thread while the controller writes
    if args.read_only:
        return UsimApp(LedgerSource(reader, sweep.name), read_only=True, poll_interval=args.poll)
    clock = RealClock()
    settings = sweep.spec.provider
    provider = make_provider(settings, clock=clock, root=Path(args.runs), concurrency=sweep.spec.concurrency,
                             sweep=sweep.name)
    log: deque[str] = deque(maxlen=200)
    controller = Controller(writer, provider, sweep, clock, log=log.append, runs_root=args.runs,
                            run_preflight=not args.no_preflight,
                            poll_interval=args.controller_poll or CONTROLLER_POLL[settings.kind])
    source = LedgerSource(reader, sweep.name, controller=controller, provider=provider, log=log)
    return UsimApp(source, clock=clock, poll_interval=args.poll)


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
