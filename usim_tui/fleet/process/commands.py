"""Headless fleet commands: run, controller, stop, status, destroy, relaunch, keep, stop-early, pause, resume.
Nothing heavy at import time."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path

from usim_core.config import ConfigError
from usim_tui.fleet.store.states import GONE, LIVE, AttemptState, CellState


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="start (or attach to) the sweep's controller and follow it headless",
                       description="Start the sweep's controller as its own process (or attach to the one that "
                       "runs it) and print its progress until the sweep ends. Ctrl-C asks whether to detach "
                       "(the controller goes on) or stop it.")
    p.add_argument("sweep", help="sweep file, e.g. configs/sweeps/demo.yaml")
    _controller_args(p)
    p.add_argument("--headless", action="store_true", help="no app: print progress lines (the only mode here)")
    p.set_defaults(func=_run)

    p = sub.add_parser("controller", help="the controller process itself (started by run and the app)",
                       description="Run the sweep's controller in this process until the sweep ends or a stop "
                       "command arrives. One per ledger: a second exits 2 naming the first.")
    p.add_argument("sweep", help="sweep file")
    _controller_args(p)
    p.set_defaults(func=_controller)

    p = sub.add_parser("stop", help="end the sweep's controller (--destroy: destroy its instances first)",
                       description="Ask the sweep's controller to end, and wait for it. Without --destroy its instances "
                       "go on billing (the line printed lists them); with it, every instance is destroyed first "
                       "(results pulled where there is time). With no controller running, --destroy destroys them "
                       "from here, and exits 1 if any is left.")
    p.add_argument("--destroy", action="store_true", help="destroy every live instance, then end (results of runs "
                   "already pulled are kept; a run still going loses what it had not sent back)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the controller to end")
    _ledger_args(p)
    p.set_defaults(func=_stop)

    p = sub.add_parser("status", help="the sweep's cells, attempts and spend from the ledger",
                       description="One screen from the ledger: spend against the budget, whether a controller "
                       "watches the sweep, and each cell's state, attempts, cost and result (--json: everything).")
    _ledger_args(p)
    p.add_argument("--json", action="store_true", help="the full snapshot as JSON")
    p.set_defaults(func=_status)

    p = sub.add_parser("destroy", help="destroy a cell's live instance (or --all)",
                       description="Destroy a cell's live instance (or every one with --all); its results are pulled "
                       "first on SSH hosts. Queued for the running controller, else done from here.")
    p.add_argument("cell", nargs="?", help="the cell whose live instance goes (as `usim-tui status` names it)")
    p.add_argument("--all", action="store_true", help="every live instance of the sweep")
    _ledger_args(p)
    p.set_defaults(func=_destroy)

    p = sub.add_parser("relaunch", help="destroy a cell's live instance and start it afresh",
                       description="Destroy the cell's live instance, if any, and start it again with a new attempt "
                       "budget (a finished cell's result stays until the new run replaces it).")
    p.add_argument("cell", help="the cell to start again (as `usim-tui status` names it)")
    _ledger_args(p)
    p.set_defaults(func=lambda a: _queue(a, "relaunch", cell=a.cell))

    p = sub.add_parser("keep", help="keep a cell running whatever the sweep's early_stop rule says",
                       description="The stopping rule (the sweep's early_stop:) still records the cell at each rung "
                       "but never stops it; --off lets the rule judge it again from its next rung.")
    p.add_argument("cell", help="the cell to keep (as `usim-tui status` names it)")
    p.add_argument("--off", action="store_true", help="stop keeping it: the rule judges it again")
    _ledger_args(p)
    p.set_defaults(func=lambda a: _queue(a, "keep", cell=a.cell, on=not a.off))

    p = sub.add_parser("stop-early", help="stop a running cell early, as the rule would: its results so far kept",
                       description="End a running cell now as the early-stopping rule does: its results so far "
                       "are pulled back (as a finished cell's), its instance destroyed, and it is not launched "
                       "again; `usim-tui relaunch CELL` starts it afresh. Asks first unless --yes.")
    p.add_argument("cell", help="the running cell to stop (as `usim-tui status` names it)")
    p.add_argument("--yes", action="store_true", help="do not ask")
    _ledger_args(p)
    p.set_defaults(func=_stop_early)

    for name, text in (("pause", "stop launching new instances"), ("resume", "launch again (clears a crash loop)")):
        p = sub.add_parser(name, help=text, description=f"{text[0].upper()}{text[1:]}: queued for the running "
                           "controller, else recorded in the ledger for the next one.")
        _ledger_args(p)
        p.set_defaults(func=lambda a, n=name: _queue(a, n))


def _controller_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", choices=("local", "vast"), help="override the sweep's provider")
    p.add_argument("--ledger", help="ledger path (default runs/<sweep>/ledger.sqlite)")
    p.add_argument("--no-preflight", action="store_true", help="skip `usim-core preflight` per architecture")
    p.add_argument("--poll", type=float, default=None, help="poll interval in seconds (default 2 local, 10 vast)")
    p.add_argument("--runs-root", default="runs", help="where run directories go (default runs/)")
    p.add_argument("--local-command", help="local provider: the trainer command line, with {config} and "
                   "{run_dir} placeholders (default: python -m usim_core train --config {config} --run-dir {run_dir})")


def _ledger_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ledger", help="ledger path (default: the most recent runs/*/ledger.sqlite)")
    p.add_argument("--sweep", help="sweep name inside the ledger (default: its latest)")
    p.add_argument("--runs-root", default="runs", help="where sweeps keep their ledgers (default runs/)")


def _find_ledger(args: argparse.Namespace):
    from usim_tui.fleet.store.ledger import Ledger

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
    from usim_tui.fleet.process import follow

    # Ctrl-C is only noted while the controller starts and while it is followed, and answered between two
    # steps, so no moment of either can turn it into a bare exit that leaves a local sweep running
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        start = follow.start_or_attach(args)
        print(start.line, flush=True)
        code = follow.follow(start, stop_when=lambda: bool(interrupted))
    finally:
        signal.signal(signal.SIGINT, previous)   # the answer's own prompt takes Ctrl-C as usual
    return follow.interrupted(start) if code is None else code


def _controller(args: argparse.Namespace) -> int:
    from usim_tui.fleet.process import follow

    return follow.serve(args)


def _stop(args: argparse.Namespace) -> int:
    from usim_tui.fleet.process import daemon

    led, name = _find_ledger(args)
    if not daemon.is_held(led.path):
        if args.destroy and led.live_attempts(name):   # nobody to ask: destroy them from here
            print(f"no controller runs {name}: destroying its instances directly")
            asyncio.run(_direct(led, name, "destroy", {"all": True}))
        print(f"no controller runs {name}; {_left_running(led, name)}")
        return 1 if args.destroy and led.live_attempts(name) else 0
    led.enqueue(name, "stop", destroy=args.destroy)
    deadline = time.monotonic() + args.timeout
    while daemon.is_held(led.path):
        if time.monotonic() > deadline:
            print(f"the controller has not ended after {args.timeout:.0f}s; it is still working on the stop "
                  f"(log: {daemon.log_path(led.path)})", file=sys.stderr)
            return 1
        time.sleep(0.3)
    print(f"controller of {name} ended; {_left_running(led, name)}")
    return 0


def _controller_line(led, snap) -> str:
    """Whether a controller holds the ledger (the OS lock decides; the heartbeat row may be stale)."""
    from usim_tui.fleet.process import daemon

    if daemon.is_held(led.path):
        age = time.time() - (snap.controller_seen_at or time.time())
        return f"  controller: pid {snap.controller_pid}, last tick {age:.0f}s ago"
    live = [a for a in snap.attempts if a.state in LIVE]
    last = f" (the last one, pid {snap.controller_pid}, is {snap.controller_state or 'gone'})" if snap.controller_pid else ""
    warn = f"; WARNING: {len(live)} live instance(s) unwatched: start it with `usim-tui run SWEEP`" if live else ""
    return f"  controller: none running{last}{warn}"


def _left_running(led, name: str) -> str:
    live = [a for a in led.live_attempts(name) if a.provider_id]
    if not live:
        return "nothing is left running"
    rows = "\n".join(f"  {a.label}  {a.provider_id}  {a.state}  ${a.price_per_hour:.3f}/h" for a in live)
    return (f"LEFT RUNNING, billing until destroyed ({len(live)}; `usim-tui stop --destroy --ledger {led.path}` "
            f"destroys them):\n{rows}")


def _status(args: argparse.Namespace) -> int:
    from usim_tui.fleet.store.snapshot import headline

    led, name = _find_ledger(args)
    snap = led.snapshot(name)
    if args.json:
        print(json.dumps(dataclasses.asdict(snap), indent=2, default=str))
        return 0
    b = snap.budget
    print(f"{snap.sweep} ({snap.provider}) spent ${b.spent:.4f} of ${b.budget:.2f}, committed ${b.committed:.4f}, "
          f"burn ${b.burn_per_hour:.2f}/h{'  PAUSED' if snap.paused else ''}  provider: {snap.provider_status}")
    print(_controller_line(led, snap))
    if b.provider_reported is not None:
        print(f"  provider reports ${b.provider_reported:.4f} spent; estimate - provider = "
              f"${b.spent - b.provider_reported:+.4f}")
    if snap.crash_loop:
        print(f"CRASH LOOP: {snap.crash_loop}")
    width = max((len(c.name) for c in snap.cells), default=4)
    for c in snap.cells:
        m = headline(c.metrics)
        why = f" ({c.reason})" if c.reason and c.state in (CellState.FAILED, CellState.STOPPED_EARLY) else ""
        gpus = f"  [{c.num_gpus} GPUs]" if c.num_gpus > 1 else ""
        kept = "  [kept]" if c.keep else ""
        print(f"  {c.name:<{width}}  {c.state:<9}{why}  attempts {c.attempts}  ${c.cost:.4f}{gpus}{kept}  {m}")
    return 0


def _stop_early(args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"stop-early {args.cell}: pass --yes to confirm (no terminal to ask on)")
        if input(f"stop {args.cell} early (results so far kept, not launched again)? [y/N] ").strip().lower() \
                not in ("y", "yes"):
            print("stop-early: nothing done")
            return 1
    return _queue(args, "stop_early", cell=args.cell)


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
    from usim_tui.fleet.process import daemon

    if daemon.is_held(led.path):
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
    from usim_tui.fleet.process.open import open_sweep
    from usim_tui.fleet.providers.base import ProviderError
    from usim_tui.fleet.providers.offline import Offline

    recorded = led.sweep_row(name).runs_root
    runs_root = Path(recorded) if recorded else led.path.parent.parent   # else runs/<sweep>/ledger.sqlite
    sweep = led.load_sweep(name)
    try:
        opened = open_sweep(sweep, ledger=led.path, runs_root=runs_root, run_preflight=False)
    except ProviderError as exc:   # no key, say: the ledger alone, and never a pretence of having reached it
        if live := _needs_provider(led, name, command, kw):
            ids = ", ".join(f"{a.cell} {a.provider_id or '(create unconfirmed)'}" for a in live)
            print(f"{command}: not done: {len(live)} live instance(s) ({ids}) can only be destroyed through "
                  f"{sweep.spec.provider.kind} ({exc}); nothing changed, they may still be billing")
            return 1
        opened = open_sweep(sweep, ledger=led.path, runs_root=runs_root, run_preflight=False,
                            provider=Offline(str(exc)), log=lambda line: None)   # the line below says it
        result = await opened.controller.command(command, **kw)
        await opened.close()
        print(f"{command}: {result}: recorded in the ledger only (no controller running; {exc}); it takes effect "
              "when `usim-tui run` starts one")
        return 0 if result == "ok" else 1
    ctl = opened.controller
    targets = {a.id for a in _needs_provider(led, name, command, kw)}
    try:
        await ctl.observe()
        result = await ctl.command(command, **kw)
        await ctl.observe()
    finally:
        await opened.close()
    failed = [a for a in led.attempts(name) if a.id in targets and a.state not in GONE | {AttemptState.DESTROYING}]
    if failed:   # the provider refused or did not answer: the instances bill on, and the line says so
        why = ", ".join(f"{a.cell} {a.provider_id or '(create unconfirmed)'}: {a.state}" for a in failed)
        print(f"{command}: not done: {len(failed)} instance(s) not destroyed ({why}); they may still be billing: "
              f"see `usim-tui status --ledger {led.path}`")
        return 1
    hint = " (it launches when `usim-tui run` next runs)" if command in ("relaunch", "resume") else ""
    print(f"{command}: {result}: no controller running, applied directly{hint}")
    return 0


def _needs_provider(led, name: str, command: str, kw: dict) -> list:
    """The live attempts a command would have to destroy (destroy; relaunch of a cell that runs), a create not
    confirmed yet included (its instance may exist)."""
    live = led.live_attempts(name)
    if command == "destroy":
        return [a for a in live if kw.get("all") or a.cell == kw.get("cell")]
    if command in ("relaunch", "stop_early"):
        return [a for a in live if a.cell == kw["cell"]]
    return []
