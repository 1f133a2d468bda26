"""The default subcommand `app`: `usim-tui [SWEEP] [--provider local|vast] [--ledger PATH] [--read-only]
[--rehearse PROFILE]`. Imports nothing heavy at import time; Textual and the fleet load in the handler."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="the interactive app (the default: usim-tui [SWEEP] [options])", description="The interactive app (the default command).")
    p.add_argument("sweep", nargs="?", help="sweep file to run (default: the demo sweep, unless --ledger attaches)")
    p.add_argument("--provider", choices=("local", "vast"), help="override the sweep's provider")
    p.add_argument("--ledger", help="ledger file; alone: attach to a sweep a controller runs or ran elsewhere")
    p.add_argument("--read-only", action="store_true", help="view only: every action is disabled")
    p.add_argument("--dangerous", action="store_true", help="`D` destroys without asking (k9s' kill); `d` always asks")
    p.add_argument("--rehearse", metavar="PROFILE", help="show a rehearsal on the emulator's virtual clock")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between ledger reads (default 1)")
    p.add_argument("--controller-poll", type=float, help="seconds between provider listings (default: 2 local, 10 vast)")
    p.add_argument("--no-preflight", action="store_true", help="skip `usim-core preflight` per architecture")
    p.add_argument("--runs", "--runs-root", default="runs", help="root of the local run directories (default: runs)")
    p.set_defaults(func=run_app)


def run_app(args: argparse.Namespace) -> int:
    from usim_tui.app.launch import build

    app = build(args)
    app.run()
    return 0
