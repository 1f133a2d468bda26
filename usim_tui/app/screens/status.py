"""Lines for the status bar and header that say what is going on: the sweep has ended (and what next), a
controller heartbeat, a queued command nobody will take."""

from __future__ import annotations

from typing import Any

from usim_tui.app.format import state_word
from usim_tui.app.widgets.leaderboard import RANK_BY, ranked
from usim_tui.fleet.store.snapshot import SweepSnapshot
from usim_tui.fleet.store.states import CELL_ENDED, LIVE

STALE_POLLS = 3     # a heartbeat older than this many controller polls (or app polls): no controller attached
STALE_MIN_S = 15.0  # and never less: a tick at scale (200 instances) can take seconds


def sweep_ended(snap: SweepSnapshot) -> bool:
    """Every cell finished, failed, stopped early or duplicate, and nothing live."""
    return bool(snap.cells) and all(c.state in CELL_ENDED for c in snap.cells) \
        and not any(a.state in LIVE for a in snap.attempts)


def report_command(snap: SweepSnapshot, source: Any) -> str:
    """`usim-tui report …` for this sweep: by its sweep file when the source knows it, else by its ledger."""
    sweep_file = getattr(source, "sweep_file", None)
    ledger = getattr(getattr(source, "ledger", None), "path", None)
    target = str(sweep_file) if sweep_file else f"--ledger {ledger}" if ledger else snap.sweep
    return f"usim-tui report {target} --out reports/{snap.sweep}"


def ended_line(snap: SweepSnapshot, source: Any) -> str | None:
    """What next once the sweep has ended: the counts, the best cell, the report command; None while it runs."""
    if not sweep_ended(snap):
        return None
    counts: dict[str, int] = {}
    for c in snap.cells:
        counts[c.state] = counts.get(c.state, 0) + 1
    parts = ", ".join(f"{n} {state_word(s)}" for s, n in counts.items())
    board = ranked(snap.cells)
    best = f" · best {board[0].name} ({RANK_BY} {board[0].metrics[RANK_BY]:.3g})" if board else " · no finished result"
    return f"sweep ended: {parts}{best} · next: {report_command(snap, source)}"


def controller_age(snap: SweepSnapshot | None) -> float | None:
    """Seconds since the controller's last heartbeat; None when the ledger records none (or never one)."""
    seen = getattr(snap, "controller_seen_at", None)
    return None if snap is None or seen is None else max(0.0, snap.now - seen)


def controller_attached(snap: SweepSnapshot | None, poll_interval: float) -> bool | None:
    """True / False by the ledger's controller lock where the source probed it, else by the heartbeat; None
    where the snapshot carries no heartbeat field at all."""
    if snap is None or not hasattr(snap, "controller_seen_at"):
        return None
    held = getattr(snap, "controller_held", None)
    if held is not None:
        return held
    age = controller_age(snap)
    every = max(poll_interval, getattr(snap, "controller_poll", None) or 0.0, 1.0)
    return age is not None and age <= max(STALE_POLLS * every, STALE_MIN_S)


def heartbeat(snap: SweepSnapshot | None, poll_interval: float, can_start: bool = True) -> str | None:
    """The header's controller part: `controller pid N seen 2s ago`, `no controller (last seen 5m ago) · C starts
    one` (`can_start`: `C` would start one, not in read-only), or None."""
    attached = controller_attached(snap, poll_interval)
    if attached is None:
        return None
    age = controller_age(snap)
    if attached:
        pid = getattr(snap, "controller_pid", None)
        return f"controller{f' pid {pid}' if pid else ''} seen {age:.0f}s ago"
    return "no controller" + (f" (last seen {age:.0f}s ago)" if age is not None else " attached") + \
        (" · C starts one" if can_start else "")


def queued_hint(snap: SweepSnapshot | None, poll_interval: float) -> str:
    """Appended to a queued command's status: whether anything will take it."""
    attached = controller_attached(snap, poll_interval)
    if attached:
        return ""
    if attached is None:
        return " (runs when a controller takes the queue)"
    return " · no controller is attached: the command waits in the queue until one starts (usim-tui run SWEEP)"
