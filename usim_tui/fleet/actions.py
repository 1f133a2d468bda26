"""The command table: every action a person can ask of a running sweep, with its arguments, in one place.

The app's keys, `usim-tui destroy/relaunch/pause/resume` and the ledger's command queue all send these names;
the controller carries them out through `dispatch`, whether the sender is in its process or queued a row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from usim_tui.fleet.controller import Controller

# command -> (required arguments, optional arguments)
COMMANDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "launch": (frozenset({"cell"}), frozenset()),
    "relaunch": (frozenset({"cell"}), frozenset()),
    "destroy": (frozenset(), frozenset({"attempt_id", "cell", "all", "reason"})),
    "pause": (frozenset(), frozenset()),
    "resume": (frozenset(), frozenset()),
    "auto": (frozenset({"on"}), frozenset()),
}


def check_command(command: str, args: dict[str, Any]) -> None:
    """ValueError naming what is wrong: an unknown command, a missing or an unexpected argument."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; allowed: {', '.join(COMMANDS)}")
    required, optional = COMMANDS[command]
    if missing := required - args.keys():
        raise ValueError(f"{command}: missing {', '.join(sorted(missing))}")
    if extra := args.keys() - required - optional:
        raise ValueError(f"{command}: unexpected {', '.join(sorted(extra))}; "
                         f"allowed: {', '.join(sorted(required | optional)) or 'none'}")
    if command == "destroy" and not ({"attempt_id", "cell", "all"} & args.keys()):
        raise ValueError("destroy: name attempt_id, cell or all")


async def dispatch(ctl: Controller, command: str, **args: Any) -> str:
    """Carry out one command; returns the result line ("ok", or why nothing happened)."""
    check_command(command, args)
    handlers: dict[str, Callable[[], Awaitable[str]]] = {
        "launch": lambda: _launch(ctl, args["cell"]),
        "relaunch": lambda: _done(ctl.relaunch(args["cell"])),
        "destroy": lambda: _destroy(ctl, args),
        "pause": lambda: _sync(ctl.pause),
        "resume": lambda: _sync(ctl.resume),
        "auto": lambda: _sync(lambda: ctl.set_auto(bool(args["on"]))),
    }
    return await handlers[command]()


async def _launch(ctl: Controller, cell: str) -> str:
    return "ok" if await ctl.launch(cell) else "not launched"


async def _done(call: Awaitable[Any]) -> str:
    await call
    return "ok"


async def _sync(call: Callable[[], Any]) -> str:
    call()
    return "ok"


async def _destroy(ctl: Controller, args: dict[str, Any]) -> str:
    reason = args.get("reason", "user")
    if "attempt_id" in args:
        await ctl.destroy(int(args["attempt_id"]), reason=reason)
        return "ok"
    for a in ctl.ledger.live_attempts(ctl.name):
        if args.get("all") or a.cell == args.get("cell"):
            await ctl.destroy(a.id, reason=reason)
    return "ok"
