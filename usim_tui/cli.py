"""`usim-tui`: the researcher's side.

`usim-tui [SWEEP] [--provider local|vast] [--ledger PATH] [--read-only] [--rehearse PROFILE]` opens the app
(no SWEEP: the demo sweep on the local provider). Subcommands run headless: run, status, destroy, relaunch,
pause, resume, rehearse, report. Each concept registers its own (`register(subparsers)` in the modules of COMMAND_MODULES).
"""

from __future__ import annotations

import argparse
import sys

from usim_core.cli import add_commands, dispatch

COMMAND_MODULES = (
    "usim_tui.fleet.process.commands",  # run, controller, stop, status, destroy, relaunch, pause, resume
    "usim_tui.emulator.commands",  # rehearse, emulator
    "usim_tui.report.commands",    # report
)
APP_MODULE = "usim_tui.app.commands"  # the interactive app (default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usim-tui",
        description="Run a hyperparameter sweep of the usim surrogate on rented GPUs within a budget.",
        epilog="With no command, opens the app: usim-tui [SWEEP] [--provider local|vast] [--ledger PATH]. "
               "Try: usim-tui rehearse configs/sweeps/overnight_sota.yaml --faults configs/faults/seed_night.yaml",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_commands(sub, (*COMMAND_MODULES, APP_MODULE))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    known = set(parser._subparsers._group_actions[0].choices) if parser._subparsers else set()  # type: ignore[union-attr]
    if not argv or (argv[0] not in known and argv[0] not in ("-h", "--help")):
        argv = ["app", *argv]  # the default command: the interactive app
    return dispatch(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
