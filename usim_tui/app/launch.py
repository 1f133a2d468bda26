"""Build the app from the command line: run a sweep, attach to a ledger, or show a rehearsal."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from usim_core.config import ConfigError
from usim_tui.app.app import UsimApp
from usim_tui.app.commands import default_ledger, demo_sweep
from usim_tui.app.source import LedgerSource


def _fleet(module: str, what: str):
    try:
        return getattr(importlib.import_module(f"usim_tui.fleet.{module}"), what)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise ConfigError(f"the fleet library has no {module}.{what} yet ({exc}); the app needs it to {what.lower()}") from None


def build(args: argparse.Namespace) -> UsimApp:
    if args.rehearse:
        return rehearsal(args)
    Ledger = _fleet("ledger", "Ledger")
    if args.ledger and not args.sweep:
        path = Path(args.ledger)
        if not path.exists():
            raise ConfigError(f"--ledger {path}: no such file; start a sweep first (usim-tui SWEEP or usim-tui run SWEEP)")
        return UsimApp(LedgerSource(Ledger(path)), read_only=args.read_only, poll_interval=args.poll)
    return run_sweep(args, Ledger)


def run_sweep(args: argparse.Namespace, Ledger) -> UsimApp:
    from usim_core.sweep import expand
    from usim_tui.fleet.clock import RealClock

    sweep = expand(args.sweep or demo_sweep())
    if args.provider:
        sweep.spec.provider = sweep.spec.provider.model_copy(update={"kind": args.provider})
    path = Path(args.ledger) if args.ledger else default_ledger(sweep.name)
    ledger = Ledger(path)
    ledger.ensure_sweep(sweep)
    reader = Ledger(path)  # its own connection: snapshots are read in a worker thread while the controller writes
    if args.read_only:
        return UsimApp(LedgerSource(reader, sweep.name), read_only=True, poll_interval=args.poll)
    make_provider = _fleet("providers", "make_provider")
    Controller = _fleet("controller", "Controller")
    clock = RealClock()
    provider = make_provider(sweep.spec.provider, clock=clock, root=Path("runs"))
    messages: list[str] = []
    controller = Controller(ledger, provider, sweep, clock, log=messages.append, runs_root="runs")
    source = LedgerSource(reader, sweep.name, controller=controller, provider=provider)
    return UsimApp(source, clock=clock, poll_interval=args.poll)


def rehearsal(args: argparse.Namespace) -> UsimApp:
    try:
        rehearse = importlib.import_module("usim_tui.emulator.rehearse")
        make = rehearse.make_app_source
    except (ModuleNotFoundError, AttributeError):
        raise ConfigError(
            f"--rehearse {args.rehearse}: the emulator's rehearsal is not available in this build yet "
            "(usim_tui.emulator.rehearse.make_app_source); run `usim-tui rehearse` once it lands"
        ) from None
    source, clock = make(args.rehearse, sweep=args.sweep)
    return UsimApp(source, clock=clock, read_only=args.read_only, poll_interval=args.poll, mode="rehearsal")
