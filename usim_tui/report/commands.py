"""`usim-tui report [SWEEP|--ledger PATH] --out DIR [--format md|html]`: the sweep's analysis, at any moment."""

from __future__ import annotations

import argparse
from pathlib import Path

from usim_core.config import ConfigError

FORMATS = ("md", "html")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the sweep's analysis (report.md + PNG figures) from the ledger",
                       description="Write DIR/report.md (and report.html with --format html) with PNG figures "
                                   "beside it, from the ledger and the eval JSONs of the run directories. "
                                   "Works at any moment of a sweep; a half-finished sweep says what is missing.")
    p.add_argument("sweep", nargs="?", help="sweep file (configs/sweeps/*.yaml) or sweep name; "
                                            "default: the most recent sweep of the ledger")
    p.add_argument("--ledger", help="ledger file (default: runs/<sweep>/ledger.sqlite, else the most recent)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--format", default="md", help="md (default) or html (writes both)")
    p.add_argument("--runs", "--runs-root", action="append", default=[],
                   help="extra root for relative run directories (the --runs-root a run used)")
    p.set_defaults(func=run)


def resolve(sweep: str | None, ledger: str | None, runs: Path = Path("runs")) -> tuple[Path, str | None]:
    """(ledger path, sweep name or None for the ledger's most recent sweep)."""
    name = None
    if sweep:
        path = Path(sweep)
        if path.suffix in (".yaml", ".yml") or path.is_file():
            from usim_core.sweep import load_sweep_spec

            if not path.is_file():
                raise ConfigError(f"sweep file {path} does not exist")
            name = load_sweep_spec(path).name
        else:
            name = sweep
    if ledger:
        found = Path(ledger)
    elif name:
        found = runs / name / "ledger.sqlite"
    else:
        candidates = sorted(runs.glob("*/ledger.sqlite"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise ConfigError(f"no ledger found under {runs}/*/ledger.sqlite; pass --ledger PATH or a SWEEP")
        found = candidates[-1]
    if not found.is_file():
        raise ConfigError(f"ledger {found} does not exist (run the sweep first, or pass --ledger PATH)")
    return found, name


def run(args: argparse.Namespace) -> int:
    if args.format not in FORMATS:
        raise ConfigError(f"--format: {args.format!r} is not allowed; allowed values: {', '.join(FORMATS)}")
    path, name = resolve(args.sweep, args.ledger)
    from usim_tui.fleet.store.ledger import Ledger
    from usim_tui.report.data import gather
    from usim_tui.report.render import write_report

    ledger = Ledger(path)
    try:
        try:
            data = gather(ledger, name, runs_roots=[Path(r) for r in args.runs])
        except LookupError as exc:
            raise ConfigError(str(exc)) from None
    finally:
        ledger.close()
    try:
        files = write_report(data, args.out, args.format)
    except OSError as exc:  # a read-only or missing place: one line naming it, not a traceback
        reason = exc.strerror or type(exc).__name__
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(args.out) else ""
        raise ConfigError(f"--out {args.out}: cannot write the report there: {reason}{where}") from None
    for f in files:
        print(f)
    return 0
