"""Starting, serving and following a sweep's controller process (`usim-tui run`, `usim-tui controller`, the
app's start-up). The lock and heartbeat are in daemon.py; the loop itself is Controller.run."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from usim_core.config import ConfigError, resolve_config
from usim_core.sweep import Sweep, budget_plan, expand
from usim_tui.fleet.process import daemon
from usim_tui.fleet.process.open import default_ledger, make_provider, open_sweep
from usim_tui.fleet.providers.base import ProviderError
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.snapshot import summary_line
from usim_tui.fleet.store.states import CellState

FOLLOW_EVERY_S = 0.5


@dataclass
class Started:
    sweep: Sweep
    ledger: Path
    holder: daemon.Holder
    started: bool        # False: attached to a controller that was already running

    @property
    def line(self) -> str:
        how = "started" if self.started else "already running: attached"
        return (f"sweep {self.sweep.name}: {len(self.sweep.cells)} cells on {self.sweep.spec.provider.kind}, budget "
                f"${self.sweep.spec.budget:.2f}; controller pid {self.holder.pid} {how}; ledger {self.ledger}")


def _sweep(args: argparse.Namespace) -> tuple[Sweep, Path]:
    sweep = expand(args.sweep)
    if args.provider:
        sweep.spec.provider = sweep.spec.provider.model_copy(update={"kind": args.provider})
    ledger = Path(args.ledger) if args.ledger else default_ledger(sweep.name, args.runs_root)
    return sweep, ledger.resolve()


def check_budget(sweep: Sweep) -> None:
    """Refuse, with the numbers, a sweep whose planned cost (with its stopping rule, if any) exceeds its budget:
    the night would run out of money with cells never run (planning: in the sweep file says what is assumed)."""
    plan, assumed = budget_plan(sweep), sweep.spec.planning
    if not plan.fits:
        raise ConfigError(f"{plan.line()}: the budget does not cover it (planning assumes "
                          f"${assumed.price_per_hour:.2f}/h for {assumed.hours_per_cell:g} h a cell); raise budget "
                          f"to at least ${plan.expected:.2f} or cut cells"
                          + ("" if sweep.spec.early_stop else ", or add an early_stop: rule"))


def check_provider(sweep: Sweep) -> None:
    """Fail here, before anything is written, when the provider cannot even be opened (no API key), or cannot
    train anything (the local provider trains on this machine: it needs torch)."""
    import importlib.util

    if sweep.spec.provider.kind == "local" and importlib.util.find_spec("torch") is None:
        raise ConfigError(f"sweep {sweep.name}: the local provider trains on this machine, which has no torch; "
                          "install the training side (pip install torch 'usim-sweeps[core]') or run it on Vast "
                          "(--provider vast)")
    try:
        provider = make_provider(sweep.spec.provider, sweep=sweep.name)
    except ProviderError as exc:
        raise ConfigError(f"provider {sweep.spec.provider.kind}: {exc}") from None
    asyncio.run(provider.close())
    if sweep.spec.provider.kind != "local":
        for cell in sweep.cells:
            rel = [f for f in (cell.config.get("data") or {}).get("files") or [] if not Path(f).is_absolute()]
            if rel:   # a remote host runs in its own directory: the laptop's files are not copied there
                raise ConfigError(f"{sweep.name}: cell {cell.name}: data.files {rel} are the laptop's; on "
                                  f"{sweep.spec.provider.kind} hosts leave data.files empty (the host generates "
                                  "the data) or give absolute paths present in the image")


def controller_argv(args: argparse.Namespace, ledger: Path) -> list[str]:
    argv = [str(resolve_config(args.sweep, "sweeps").resolve()), "--ledger", str(ledger), "--runs-root", str(Path(args.runs_root).resolve())]
    if args.provider:
        argv += ["--provider", args.provider]
    if args.no_preflight:
        argv.append("--no-preflight")
    if args.poll:
        argv += ["--poll", str(args.poll)]
    if args.local_command:
        argv += ["--local-command", args.local_command]
    return argv


def start_or_attach(args: argparse.Namespace) -> Started:
    """The sweep's controller: the one already holding its ledger, else a new detached one."""
    sweep, ledger = _sweep(args)
    if daemon.is_held(ledger):
        return Started(sweep, ledger, _holder(ledger, sweep), started=False)
    check_budget(sweep)
    check_provider(sweep)
    try:
        proc = daemon.start_detached(controller_argv(args, ledger), ledger, cwd=Path.cwd())
    except OSError as exc:
        raise ConfigError(f"cannot start the controller: {exc.filename or ledger.parent}: {exc.strerror or exc}; "
                          "the ledger's directory must be writable (--ledger, --runs-root)") from None
    try:
        daemon.wait_started(proc, ledger)
    except RuntimeError as exc:
        if proc.returncode == 2 and daemon.is_held(ledger):   # another start won the race: attach to it
            return Started(sweep, ledger, _holder(ledger, sweep), started=False)
        raise ConfigError(str(exc)) from None
    return Started(sweep, ledger, _holder(ledger, sweep), started=True)


def _holder(ledger: Path, sweep: Sweep) -> daemon.Holder:
    return daemon.holder(Ledger(ledger), sweep.name) or daemon.Holder(None, None, None, None, None)


def serve(args: argparse.Namespace) -> int:
    """`usim-tui controller`: hold the ledger's lock and run the sweep until it ends or is stopped."""
    sweep, ledger = _sweep(args)
    check_provider(sweep)   # no key, no torch for a local sweep: one line, before the lock or the ledger
    lock = daemon.ControllerLock(ledger)
    try:
        lock.acquire()
    except daemon.ControllerRunning:
        print(daemon.refuse_second(ledger, sweep.name), file=sys.stderr)
        return 2
    try:
        opened = open_sweep(sweep, ledger=ledger, runs_root=args.runs_root, poll_interval=args.poll,
                            run_preflight=not args.no_preflight, local_command=args.local_command,
                            log=lambda m: print(m, flush=True))
        if opened.controller.host_runs.enabled:   # the wheel for SSH hosts, before anything is started or paid
            opened.controller.host_runs.wheel(time.time())
        daemon.record_start(opened.ledger, sweep.name)
        with daemon.signals_request_stop(opened.controller.request_stop):
            why = asyncio.run(_run_and_close(opened))
        print(f"controller ended: {why}", flush=True)
        daemon.record_end(opened.ledger, sweep.name, "stopped")
        return 0
    except Exception:  # noqa: BLE001 - recorded for clients, printed to the log, exit non-zero
        traceback.print_exc()
        daemon.record_end(Ledger(ledger), sweep.name, "crashed")
        return 1
    finally:
        lock.release()


async def _run_and_close(opened) -> str:
    try:
        return await opened.controller.run()
    finally:
        await opened.close()


def follow(start: Started, stop_when: Callable[[], bool]) -> int | None:
    """Print the controller's events until it ends (exit code), or None as soon as `stop_when()` (a Ctrl-C)."""
    led = Ledger(start.ledger)
    seen = [0 if start.started else max((i for i, _ in led.journal_after(start.sweep.name)), default=0)]
    while daemon.is_held(start.ledger):
        if stop_when():
            return None
        _print_new(led, start.sweep.name, seen)
        time.sleep(FOLLOW_EVERY_S)
    _print_new(led, start.sweep.name, seen)
    snap = led.snapshot(start.sweep.name)
    print(summary_line(snap), flush=True)
    return 0 if all(c.state in (CellState.FINISHED, CellState.DUPLICATE) for c in snap.cells) else 1


def _print_new(led: Ledger, sweep: str, seen: list[int]) -> None:
    for i, e in led.journal_after(sweep, seen[0]):
        print(f"[{time.strftime('%H:%M:%S', time.localtime(e.t))}] {e.message}", flush=True)
        seen[0] = i


def interrupted(start: Started) -> int:
    """Ctrl-C never launches anything. On a terminal: ask. Without one: a local sweep is stopped (its
    trainers destroyed), a paid one is left to its controller, which goes on watching and capping it."""
    name, led = start.sweep.name, Ledger(start.ledger)
    live = [a for a in led.live_attempts(name) if a.provider_id]
    if sys.stdin.isatty():
        try:
            answer = input(f"\n{len(live)} instance(s) live. [d]etach (the controller goes on) or [s]top "
                           "(destroy them, results kept)? [d/s] ").strip().lower()
        except (EOFError, KeyboardInterrupt):
            answer = "d"   # no answer: the safe choice for money already committed is to keep watching it
        stop = answer.startswith("s")
    else:
        stop = start.sweep.spec.provider.kind == "local"
    if not stop:
        print(f"\ndetached: the controller ({start.holder.describe()}) goes on; follow it with `usim-tui --ledger "
              f"{start.ledger}`, end it with `usim-tui stop --ledger {start.ledger} [--destroy]`", flush=True)
        return 130
    led.enqueue(name, "stop", destroy=True)
    print(f"\nstopping: destroying {len(live)} instance(s) ...", flush=True)
    while daemon.is_held(start.ledger):
        time.sleep(0.3)
    left = [a.label for a in led.live_attempts(name) if a.provider_id]
    print("stopped; nothing left running" if not left else f"stopped; STILL LIVE: {', '.join(left)}", flush=True)
    return 130
