"""Carrying out a person's commands (the table of names and arguments: fleet/store/command_table.py) on a running
controller, whether the sender is in its process or queued a row. The handlers see the controller through the
`Commanded` protocol: what they use of it, and nothing that would make this module import the controller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from usim_core.config import RunConfig
from usim_core.sweep import Sweep
from usim_tui.fleet.clock import Clock
from usim_tui.fleet.control.launching import Launcher
from usim_tui.fleet.store.command_table import check_command
from usim_tui.fleet.store.journal import Journal
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.rows import AttemptRow
from usim_tui.fleet.store.states import UNSETTLED, CellState, EndReason


class Commanded(Protocol):
    """What the handlers use of the controller (fleet/control/controller.py: Controller)."""

    name: str
    sweep: Sweep
    ledger: Ledger
    journal: Journal
    clock: Clock
    launcher: Launcher

    def request_stop(self, mode: str) -> None: ...

    async def end_attempt(self, a: AttemptRow, reason: str, message: str, now: float) -> None: ...

    async def end_attempts(self, attempts: list[AttemptRow], reason: str, message: str, now: float) -> None: ...

    async def stop_early(self, a: AttemptRow, reason: str, now: float) -> None: ...


async def dispatch(ctl: Commanded, command: str, **args: Any) -> str:
    """Carry out one command; returns the result line ("ok", or why nothing happened)."""
    check_command(command, args)
    handlers: dict[str, Callable[[], Awaitable[str]]] = {
        "launch": lambda: launch(ctl, args["cell"]),
        "relaunch": lambda: relaunch(ctl, args["cell"]),
        "destroy": lambda: destroy(ctl, args),
        "pause": lambda: pause(ctl),
        "resume": lambda: resume(ctl),
        "auto": lambda: set_auto(ctl, bool(args["on"])),
        "stop": lambda: stop(ctl, bool(args.get("destroy"))),
        "keep": lambda: keep(ctl, args["cell"], bool(args["on"])),
        "stop_early": lambda: stop_early(ctl, args["cell"]),
    }
    return await handlers[command]()


async def pause(ctl: Commanded) -> str:
    ctl.ledger.set_sweep(ctl.name, paused=1)
    ctl.journal.event(ctl.clock.now(), "user", "paused: no new launches")
    return "ok"


async def resume(ctl: Commanded) -> str:
    """Launch again; a crash loop is cleared (its failures so far are forgiven)."""
    now = ctl.clock.now()
    ctl.ledger.set_sweep(ctl.name, paused=0, crash_loop=None, crash_loop_cleared_at=now)
    ctl.journal.event(now, "user", "resumed")
    return "ok"


async def stop(ctl: Commanded, destroy: bool) -> str:
    """End the controller: at once, leaving instances as they are, or after destroying every one of them (their
    cells stay pending: starting the sweep again picks them up; finished results are kept)."""
    ctl.request_stop("destroy" if destroy else "leave")
    live = [a.label for a in ctl.ledger.live_attempts(ctl.name) if a.provider_id]
    ctl.journal.event(ctl.clock.now(), "user", "stop requested: " + (
        f"destroying {len(live)} instance(s)" if destroy else f"leaving {len(live)} instance(s) running"
        if live else "nothing is running"), data={"destroy": destroy, "live": live})
    return "ok"


async def set_auto(ctl: Commanded, on: bool) -> str:
    ctl.ledger.set_sweep(ctl.name, auto=int(on))
    return "ok"


async def launch(ctl: Commanded, cell: str) -> str:
    """Start the cell now (a new attempt budget if it had ended); nothing while it has a live attempt."""
    ctl.sweep.cell(cell)  # KeyError naming the cells when unknown
    atts = ctl.ledger.attempts(ctl.name, cell)
    if any(a.live for a in atts):
        return "not launched"
    if ctl.ledger.cell(ctl.name, cell).state != CellState.PENDING:
        ctl.ledger.set_cell(ctl.name, cell, state=CellState.PENDING, reason=None,
                            counted_from=max((a.attempt for a in atts), default=0))
    ctl.ledger.set_cell(ctl.name, cell, not_before=0)
    launched = await ctl.launcher.launch(cell, ctl.clock.now()) and any(
        a.live for a in ctl.ledger.attempts(ctl.name, cell))
    return "ok" if launched else "not launched"


async def destroy(ctl: Commanded, args: dict[str, Any]) -> str:
    """One attempt (attempt_id), a cell's live attempts (cell) or every live attempt (all)."""
    reason = args.get("reason", EndReason.USER)
    if "attempt_id" in args:
        targets = [ctl.ledger.attempt(int(args["attempt_id"]))]
        if targets[0] is None or targets[0].sweep != ctl.name:
            raise KeyError(f"no attempt {args['attempt_id']} in sweep {ctl.name}")
    else:
        targets = [a for a in ctl.ledger.live_attempts(ctl.name) if args.get("all") or a.cell == args.get("cell")]
    now = ctl.clock.now()
    ending = []
    for a in targets:
        assert a is not None
        ending.append(a)
        if reason == EndReason.USER and not a.done_event:
            # a finished result is never lost by a later action: a cell that finished before stays finished
            finished = any(x.reason == EndReason.FINISHED for x in ctl.ledger.attempts(ctl.name, a.cell))
            ctl.ledger.set_cell(ctl.name, a.cell, state=CellState.FINISHED if finished else CellState.FAILED,
                                reason=EndReason.FINISHED if finished else EndReason.USER)
        ctl.journal.event(now, "user", f"{a.cell} #{a.attempt}: destroy ({reason})", a)
    await ctl.end_attempts(ending, reason, f"destroyed by {reason}", now)
    return "ok"


async def relaunch(ctl: Commanded, cell: str) -> str:
    """Destroy the cell's live attempt (if any) and start it afresh with a new attempt budget; the launch
    itself waits until the destroy is confirmed."""
    ctl.sweep.cell(cell)
    now = ctl.clock.now()
    for a in ctl.ledger.live_attempts(ctl.name):
        if a.cell == cell:
            await ctl.end_attempt(a, EndReason.USER, "relaunched by user", now)
    atts = ctl.ledger.attempts(ctl.name, cell)
    fingerprint = RunConfig.model_validate(ctl.sweep.cell(cell).config).architecture_fingerprint()
    ctl.ledger.forget_failed_preflight(ctl.name, fingerprint)   # a person's relaunch tries preflight again
    ctl.ledger.set_cell(ctl.name, cell, state=CellState.PENDING, reason=None, not_before=0,
                        counted_from=max((a.attempt for a in atts), default=0))
    ctl.ledger.set_sweep(ctl.name, budget_stop=0)
    ctl.journal.event(now, "user", f"{cell}: relaunch requested")
    return "ok"


async def keep(ctl: Commanded, cell: str, on: bool) -> str:
    """Keep a cell running whatever the stopping rule says (on), or let the rule judge it again (off)."""
    ctl.sweep.cell(cell)
    ctl.ledger.set_cell(ctl.name, cell, keep=int(on))
    if ctl.sweep.spec.early_stop is None:
        said = "kept (the sweep has no early_stop: rule: nothing would stop it)" if on else "no longer kept"
    else:
        said = "kept: the stopping rule will not stop it" if on else "no longer kept: the stopping rule judges it"
    ctl.journal.event(ctl.clock.now(), "user", f"{cell}: {said}")
    return "ok"


async def stop_early(ctl: Commanded, cell: str) -> str:
    """End a running cell as the rule would (results so far pulled, the cell not launched again)."""
    ctl.sweep.cell(cell)
    running = [a for a in ctl.ledger.live_attempts(ctl.name) if a.cell == cell and a.provider_id
               and a.state not in UNSETTLED and not a.done_event]
    if not running or ctl.ledger.cell(ctl.name, cell).state != CellState.PENDING:
        return "not running"
    a = running[0]
    where = f" at {a.stage} epoch {a.epoch}" if a.stage and a.epoch is not None else ""
    await ctl.stop_early(a, f"stopped early by a person{where}", ctl.clock.now())
    return "ok"
