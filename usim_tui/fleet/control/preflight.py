"""Preflight: every distinct architecture is built and run for a few steps of every stage on this machine's
CPU (`usim-core preflight`) before any money is spent on it. One result per architecture fingerprint, kept in
the ledger.

Where this machine cannot import torch (a laptop with only `usim-sweeps[tui]`), the first instance of each
architecture is the canary instead: the rest of that architecture launch only once it has made training
progress (a metric step); if it dies at start-up, every cell of the architecture fails with reason
`preflight` and nothing more of it is paid for."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import yaml

from usim_core.config import RunConfig
from usim_core.sweep import Sweep
from usim_tui.fleet.control import policies
from usim_tui.fleet.store.journal import Journal
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.states import CRASH_REASONS, CellState, EndReason

DEFAULT_COMMAND = [sys.executable, "-m", "usim_core", "preflight", "--config"]
TIMEOUT_S = 900.0


def fingerprint(config: dict) -> str:
    return RunConfig.model_validate(config).architecture_fingerprint()


async def check(ledger: Ledger, sweep: Sweep, journal: Journal, cell: str, runs_root: Path, now: float,
                command: list[str] | None = None) -> bool:
    """Whether `cell`'s architecture passed preflight (running it the first time). A failure fails every cell
    of that architecture, with reason `preflight`."""
    config = sweep.cell(cell).config
    fp = fingerprint(config)
    known = ledger.preflight_result(sweep.name, fp)
    if known is None and not torch_available():
        return _canary(ledger, sweep, journal, fp, now)
    if known is None:
        where = runs_root / sweep.name / "preflight" / fp
        where.mkdir(parents=True, exist_ok=True)
        (where / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        journal.event(now, "preflight", f"preflight of architecture {fp} ({cell}) ...")
        ok, message = await run([*(command or DEFAULT_COMMAND), str(where / "config.yaml")], where)
        ledger.set_preflight(sweep.name, fp, ok, message, now)
        journal.event(now, "preflight", f"preflight {fp}: {'ok' if ok else 'FAILED: ' + message}",
                      data={"fingerprint": fp, "ok": ok, "message": message})
        known = (ok, message)
    if not known[0]:
        _fail_architecture(ledger, sweep, fp)
    return known[0]


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def _fail_architecture(ledger: Ledger, sweep: Sweep, fp: str) -> None:
    for c in sweep.cells:
        if fingerprint(c.config) == fp:
            ledger.set_cell(sweep.name, c.name, state=CellState.FAILED, reason=EndReason.PREFLIGHT)


def _canary(ledger: Ledger, sweep: Sweep, journal: Journal, fp: str, now: float) -> bool:
    """No torch here: the architecture's first attempt is its preflight. True lets this launch go ahead (it is
    the canary, or the canary trained); False holds it (the canary is still starting, or it failed)."""
    cells = {c.name for c in sweep.cells if fingerprint(c.config) == fp}
    attempts = [a for a in ledger.attempts(sweep.name) if a.cell in cells]
    if any(a.step is not None or a.done_event for a in attempts):
        ledger.set_preflight(sweep.name, fp, True, "canary: the first instance made training progress", now)
        journal.event(now, "preflight", f"preflight {fp}: ok (canary instance trained)", data={"fingerprint": fp,
                      "ok": True, "canary": True})
        return True
    crashed = next((a for a in attempts if a.reason in CRASH_REASONS), None)
    if crashed is not None:
        message = f"canary {crashed.label} died at start-up: {crashed.error_event or crashed.message or crashed.reason}"
        ledger.set_preflight(sweep.name, fp, False, message, now)
        journal.event(now, "preflight", f"preflight {fp}: FAILED: {message}", data={"fingerprint": fp, "ok": False,
                      "message": message, "canary": True})
        _fail_architecture(ledger, sweep, fp)
        return False
    if any(a.live for a in attempts):
        return False   # the canary is still on its way: the rest of the architecture waits
    if not any(a.provider_id for a in attempts):
        journal.event(now, "preflight", f"no torch on this machine: the first instance of architecture {fp} is "
                      "its preflight (the canary)", data={"fingerprint": fp, "canary": True})
    return True


async def run(cmd: list[str], cwd: Path, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    """Run one preflight command; (ok, one line on why not). Its whole output goes to preflight.log."""
    try:
        proc = await asyncio.create_subprocess_exec(*cmd, cwd=str(cwd), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
    except OSError as exc:
        return False, f"cannot run {cmd[0]}: {exc}"
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False, f"preflight timed out after {timeout:.0f}s"
    text = out.decode(errors="replace")
    (cwd / "preflight.log").write_text(text)
    if proc.returncode == 0:
        return True, ""
    return False, f"exit {proc.returncode}: {policies.error_line(text) or 'no output'} (log: {cwd / 'preflight.log'})"
