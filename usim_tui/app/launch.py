"""Build the app from the command line: run a sweep, attach to a ledger, or show a rehearsal."""

from __future__ import annotations

import argparse
import importlib
from collections import deque
from pathlib import Path

from usim_core.config import ConfigError, resolve_config
from usim_tui.app.app import UsimApp
from usim_tui.app.source import LedgerSource
from usim_tui.fleet.store.ledger import Ledger

DEMO = "demo"   # the shipped demo sweep (configs/sweeps/demo.yaml): found from any directory


def build(args: argparse.Namespace) -> UsimApp:
    if args.rehearse:
        return rehearsal(args)
    if args.read_only:
        return read_only(args)
    if args.ledger and not args.sweep:
        return UsimApp(LedgerSource(Ledger(existing(args.ledger))), poll_interval=args.poll, dangerous=args.dangerous)
    return run_sweep(args)


def existing(ledger: str) -> Path:
    path = Path(ledger)
    if not path.is_file():
        raise ConfigError(f"--ledger {path}: no such file; start a sweep first (usim-tui SWEEP or usim-tui run SWEEP)")
    return path


def read_only(args: argparse.Namespace) -> UsimApp:
    """View a ledger and change nothing, not even the disk: an existing ledger opened read-only (its directory
    may be read-only), or a sweep that has not run yet shown from an in-memory ledger."""
    from usim_core.sweep import expand
    from usim_tui.fleet.process.open import default_ledger

    if args.ledger:
        return UsimApp(LedgerSource(Ledger(existing(args.ledger), read_only=True)), read_only=True,
                       poll_interval=args.poll)
    sweep = expand(args.sweep or DEMO)
    path = default_ledger(sweep.name, args.runs)
    if path.is_file():
        return UsimApp(LedgerSource(Ledger(path, read_only=True), sweep.name), read_only=True, poll_interval=args.poll)
    led = Ledger(":memory:")
    led.ensure_sweep(sweep)   # the sweep's cells show, nothing is written
    return UsimApp(LedgerSource(led, sweep.name), read_only=True, poll_interval=args.poll,
                   mode=f"read-only: {sweep.name} has not run (no {path})")


def run_sweep(args: argparse.Namespace) -> UsimApp:
    """The app on a sweep: start its controller as its own process (or attach to the one that runs it), then
    render the ledger and queue commands. The app can crash or quit; the controller goes on."""
    from usim_tui.fleet.process import follow

    sweep_file = str(resolve_config(args.sweep or DEMO, "sweeps"))
    start = follow.start_or_attach(argparse.Namespace(
        sweep=sweep_file, provider=args.provider, ledger=args.ledger, runs_root=args.runs,
        no_preflight=args.no_preflight, poll=args.controller_poll, local_command=None))
    source = LedgerSource(Ledger(start.ledger), start.sweep.name, log=deque([start.line], maxlen=200),
                          sweep_file=Path(sweep_file))
    return UsimApp(source, poll_interval=args.poll, dangerous=args.dangerous)   # the header follows the controller


def rehearsal(args: argparse.Namespace) -> UsimApp:
    try:
        rehearse = importlib.import_module("usim_tui.emulator.rehearse")
        faults = importlib.import_module("usim_tui.emulator.faults")
        curves = importlib.import_module("usim_tui.emulator.replay")
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--rehearse {args.rehearse}: the emulator is not available in this build ({exc})") from None
    from usim_core.sweep import expand
    from usim_tui.app.rehearsal import RehearsalSource

    sweep = expand(args.sweep or "overnight_sota")
    profile = faults.load_faults(args.rehearse)   # a file, or a shipped profile's name
    # the hosts replay the sweep's recorded learning curves where the repository has them (docs/curves.md)
    source = RehearsalSource(rehearse.rehearse_usim, sweep, profile, curves.pick_curves(None, sweep.name))
    return UsimApp(source, clock=source.clock, read_only=args.read_only, poll_interval=args.poll,
                   mode=f"rehearsal: {profile.name}")
