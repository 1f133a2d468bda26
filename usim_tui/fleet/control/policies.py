"""Policies: pure functions from observations + ledger state + the time to decisions. No I/O.

The controller feeds them ledger rows (mappings) and provider observations and carries out what they return.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from usim_core.sweep import ProviderSettings
from usim_tui.fleet.providers.base import Observed
from usim_tui.fleet.store.rows import AttemptRow, CellRow
from usim_tui.fleet.store.states import (
    CRASH_REASONS,
    FREE_REASONS,
    HOST_REASONS,
    MACHINE_REASONS,
    AttemptState,
    CellState,
    EndReason,
)

A, R = AttemptState, EndReason
OCI_FAILURE = "OCI runtime create failed"


@dataclass(frozen=True)
class Verdict:
    outcome: str                 # "finished" (the result is kept) or "failed"
    reason: EndReason
    message: str = ""
    exclude_machine: bool = False


def error_line(text: str) -> str:
    """The line that best explains a failure: the last traceback-style `SomethingError: ...` line, else the
    last non-empty line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("@usim ")]
    for ln in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*", ln) or "Error:" in ln:
            return ln[:300]
    return lines[-1][:300] if lines else ""


def signature(reason: str, message: str) -> str:
    """What two failures must share to count as the same crash: reason + the message with numbers, hex ids
    and paths blurred."""
    m = re.sub(r"0x[0-9a-fA-F]+|\b[0-9a-f]{8,}\b", "#", message)
    m = re.sub(r"(/[\w.\-]+)+", "<path>", m)
    m = re.sub(r"\d+(\.\d+)?", "N", m)
    return f"{reason}: {m.strip()[:200]}"


def assess(attempt: AttemptRow, obs: Observed | None, now: float, settings: ProviderSettings,
           log_tail: str = "") -> Verdict | None:
    """Is this live attempt finished, failed (and why), or fine for now?"""
    if attempt.done_event:
        return Verdict("finished", R.FINISHED)
    if attempt.error_event:
        return Verdict("failed", R.EXITED_ERROR, attempt.error_event)
    if obs is None:
        return None
    msg = obs.status_msg or ""
    if OCI_FAILURE in msg:
        return Verdict("failed", R.CONTAINER_ERROR, msg[:300], exclude_machine=True)
    if obs.state == A.FAILED:
        return Verdict("failed", R.CONTAINER_ERROR, msg[:300] or "instance failed to start", exclude_machine=True)
    if obs.state == A.OFFLINE:
        if now - (attempt.state_since if attempt.state_since is not None else now) < settings.offline_grace_s:
            return None   # Vast lists a host that missed a heartbeat as offline/unknown: it often comes back
        return Verdict("failed", R.OFFLINE, msg[:300] or "host offline / no heartbeat", exclude_machine=True)
    if obs.state == A.STOPPED:
        # the market's doing, not the machine's: it is not excluded (its offer now asks the price that outbid it)
        return Verdict("failed", R.OUTBID, msg[:300] or "stopped (outbid): storage still billing")
    if obs.state == A.EXITED:
        line = error_line(log_tail)
        code = f"exit code {obs.exit_code}" if obs.exit_code is not None else "exited"
        return Verdict("failed", R.EXITED_ERROR, f"{code} without a done event" + (f": {line}" if line else ""))
    created = now if attempt.created_at is None else attempt.created_at
    if not attempt.started_event and now - created > settings.startup_deadline_s:
        return Verdict("failed", R.STARTUP_TIMEOUT,
                       f"no started event within {settings.startup_deadline_s:.0f}s (state {obs.state}"
                       + (f": {msg}" if msg else "") + ")", exclude_machine=True)
    begun = created if attempt.started_at is None else attempt.started_at
    if obs.state == A.RUNNING and now - begun > settings.max_runtime_s:
        return Verdict("failed", R.MAX_RUNTIME, f"ran past max_runtime_s={settings.max_runtime_s:.0f}")
    return None


@dataclass(frozen=True)
class Failure:
    cell: str
    reason: str
    message: str
    t: float
    early: bool = True           # before any training progress (no metric step): a start-up crash


def is_early(attempt: AttemptRow) -> bool:
    """Did this attempt die before any training progress? Progress is a metric step read from its events
    (the final log tail is always read at exit, so a finished stage is never missed)."""
    return attempt.step is None


def crash_loop(failures: Iterable[Failure], now: float, window_s: float = 900.0, min_cells: int = 3,
               min_failures: int = 3) -> str | None:
    """The shared error when attempts died the same way at start-up (before any training progress) within the
    window, across at least `min_cells` cells, or `min_failures` times across at least two cells (one broken
    import kills every relaunch: stop paying for it). Late failures (an eval exiting non-zero after hours of
    training) are independent, however alike their messages: they never count."""
    cells_by_sig: dict[str, set[str]] = {}
    count: dict[str, int] = {}
    example: dict[str, str] = {}
    for f in failures:
        if f.reason not in CRASH_REASONS or not f.early or now - f.t > window_s:
            continue
        sig = signature(f.reason, f.message)
        cells_by_sig.setdefault(sig, set()).add(f.cell)
        count[sig] = count.get(sig, 0) + 1
        example[sig] = f"{f.reason}: {f.message}"
    for sig, cells in cells_by_sig.items():
        if len(cells) >= min_cells or (len(cells) >= 2 and count[sig] >= min_failures):
            return f"{len(cells)} cells failed the same way within {window_s / 60:.0f} min: {example[sig]}"
    return None


def sweep_crash_loop(attempts: Sequence[AttemptRow], cells: Sequence[CellRow], cleared_at: float,
                     now: float) -> str | None:
    """The sweep's crash loop, if its attempts ended since `cleared_at` (a person's resume) show one; a sweep of
    two cells needs both."""
    failures = [Failure(r.cell, r.reason or "", r.message or "", r.ended_at or now, early=is_early(r))
                for r in attempts if r.reason in CRASH_REASONS and (r.ended_at or now) > cleared_at]
    n_cells = sum(1 for c in cells if not c.duplicate_of)
    return crash_loop(failures, now, min_cells=max(2, min(3, n_cells)))


def host_loop(attempts: Sequence[AttemptRow], cleared_at: float) -> str | None:
    """Why launching should pause when the last two hosts failed alike to be reached or set up over SSH and no
    host created since the first of them was: two machines failing the same way with none working around them
    is the setup's fault (usim's key, a proxy, the image), not theirs. A host that answered in that time makes
    the dead ones bad luck."""
    failed = sorted((a for a in attempts if a.reason in HOST_REASONS and a.ended_at is not None
                     and a.ended_at > cleared_at), key=lambda a: (a.ended_at, a.id))
    if len(failed) < 2:
        return None
    first, last = failed[-2:]
    if signature(first.reason or "", first.message or "") != signature(last.reason or "", last.message or ""):
        return None
    began = min(x for x in (first.created_at, last.created_at, first.ended_at) if x is not None)
    if any(a.host_started_at is not None and a.host_started_at >= began for a in attempts):
        return None
    what = "SSH did not answer" if last.reason == R.SSH_UNREACHABLE else "setting the host up failed"
    return (f"{what} the same way on 2 hosts with none working since: {last.message} (docs/vast.md, first real "
            "night)")


def attempts_used(attempts: Sequence[AttemptRow], counted_from: int = 0) -> int:
    """Attempts that count against max_attempts: every created attempt except those ended by a machine fault
    or for reasons outside the cell (a live attempt counts: it may yet fail)."""
    return sum(1 for a in attempts if a.attempt > counted_from and a.state != A.NOT_CREATED
               and a.reason not in FREE_REASONS and a.reason not in MACHINE_REASONS)


def machine_faults_used(attempts: Sequence[AttemptRow], counted_from: int = 0) -> int:
    """Attempts lost to the machine or the market (they count against max_machine_faults). An outbid after a
    resume point was pulled from the run does not: it is expected of an interruptible instance, and the next
    attempt resumes further on than this one started (each such outbid banks at least checkpoint_every_s of
    training; the budget bounds what they cost). One before counts: a market that never lets a run keep
    anything must not be paid again and again."""
    return sum(1 for a in attempts if a.attempt > counted_from and a.reason in MACHINE_REASONS
               and not (a.reason == R.OUTBID and a.checkpoint_at is not None))


def exhausted(attempts: Sequence[AttemptRow], counted_from: int, max_attempts: int,
              max_machine_faults: int) -> str | None:
    """Why the cell may not be launched again (a limit used up), else None."""
    used = attempts_used(attempts, counted_from)
    if used >= max_attempts:
        return f"{used} failed runs (max_attempts={max_attempts})"
    faults = machine_faults_used(attempts, counted_from)
    if faults >= max_machine_faults:
        return f"{faults} machine faults (max_machine_faults={max_machine_faults})"
    return None


def next_launches(cells: Sequence[CellRow], attempts_by_cell: Mapping[str, Sequence[AttemptRow]],
                  now: float, *, concurrency: int, max_attempts: int, blocked: bool,
                  max_machine_faults: int = 10) -> list[str]:
    """Cells to start now: pending, no live attempt (a leaked or unconfirmed destroy counts as live: never
    relaunch over it), attempts and machine faults left, past any back-off, within concurrency; fresh cells
    before relaunches."""
    if blocked:
        return []
    live = sum(1 for atts in attempts_by_cell.values() for a in atts if a.live)
    out: list[str] = []
    tried = {c.name: attempts_used(attempts_by_cell.get(c.name, ()), c.counted_from)
             + machine_faults_used(attempts_by_cell.get(c.name, ()), c.counted_from) for c in cells}
    for c in sorted(cells, key=lambda c: tried[c.name]):
        if live + len(out) >= concurrency:
            break
        atts = attempts_by_cell.get(c.name, ())
        if c.state != CellState.PENDING or c.not_before > now or any(a.live for a in atts):
            continue
        if exhausted(atts, c.counted_from, max_attempts, max_machine_faults):
            continue
        out.append(c.name)
    return out


def surplus_live(attempts: Sequence[AttemptRow]) -> list[int]:
    """Attempt ids to destroy when one cell has more than one live attempt: keep the one that has started
    (else the earliest)."""
    live = [a for a in attempts if a.live and a.state not in (A.DESTROYING, A.LEAKED) and a.provider_id]
    if len(live) < 2:
        return []
    keep = max(live, key=lambda a: (bool(a.started_event), -a.attempt))
    return [a.id for a in live if a.id != keep.id]


def backoff_s(consecutive_not_created: int, poll_interval: float) -> float:
    return min(900.0, max(60.0, 6 * poll_interval) * 2 ** max(0, consecutive_not_created - 1))
