"""The command table: every action a person can ask of a running sweep, with its arguments, in one place.

The app's keys, `usim-tui destroy/relaunch/pause/resume` and the ledger's command queue all send these names and
are checked here; the controller carries them out (fleet/control/actions.py).
"""

from __future__ import annotations

from typing import Any

# command -> (required arguments, optional arguments)
COMMANDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "launch": (frozenset({"cell"}), frozenset()),
    "relaunch": (frozenset({"cell"}), frozenset()),
    "destroy": (frozenset(), frozenset({"attempt_id", "cell", "all", "reason"})),
    "pause": (frozenset(), frozenset()),
    "resume": (frozenset(), frozenset()),
    "auto": (frozenset({"on"}), frozenset()),
    "stop": (frozenset(), frozenset({"destroy"})),   # end the controller; destroy=True tears down first
    "keep": (frozenset({"cell", "on"}), frozenset()),   # the stopping rule never stops a kept cell
    "stop_early": (frozenset({"cell"}), frozenset()),   # end a running cell as the rule would: results kept
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
