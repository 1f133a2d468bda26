"""What to do with an outbid interruptible instance: raise its bid and wait for it to run again, or move the cell
(destroy it; the next attempt resumes on another host from the cell's last pulled resume point).

Staying costs the raise for the rest of the run (the cell's planned hours less what it trained) and storage while
it waits. Moving costs the work since the last pulled resume point (trained again at the first bid) and the time a
new host takes to start its run (measured on this sweep: every second instances spent before their run started,
stuck ones included, per run started), priced at the first bid (an hour the cell waits is an hour of the night it
does not train; pricing it at storage alone moved cells more often, onto more hosts that never start, and
rehearsed dearer: docs/fleet.md), plus the storage it bills meanwhile. The bid goes up one step (RAISE_STEP) per
poll while staying is the cheaper, never past the instance's cap (provider.max_bid_share of its on-demand price);
a raise that has not run it by the next listing is followed by the next step or by the move. A comeback (raised,
or the market's own) runs the container again empty but with its disk: the controller starts the run again there
with `--resume` (host_runs.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from usim_tui.fleet.providers.base import Provider, ProviderError
from usim_tui.fleet.store.journal import Journal
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.rows import AttemptRow

RAISE_STEP = 1.15          # each raise: the bid in force times this
DEFAULT_START_S = 600.0    # a new host's start-up before any was measured


@dataclass(frozen=True)
class Costs:
    stay: float        # $ of the next raise for the rest of the run, and storage while waiting a poll
    move: float        # $ of the work lost by moving and of a new host's start-up, at the first bid
    bid: float         # the raised bid


def costs(bid: float, first: float, cap: float, *, remaining_h: float, lost_h: float, start_h: float,
          storage_per_hour: float, poll_h: float) -> Costs | None:
    """The next raise's cost against moving; None when the bid is at its cap. start_h: a new instance's hours
    before its run starts."""
    new = min(cap, round(bid * RAISE_STEP, 4))
    if new <= bid + 1e-9:
        return None
    return Costs(stay=(new - first) * remaining_h + storage_per_hour * poll_h,
                 move=first * (lost_h + start_h) + storage_per_hour * start_h, bid=new)


class Bidding:
    def __init__(self, ledger: Ledger, provider: Provider, journal: Journal, sweep: Any, poll_interval: float) -> None:
        self.ledger, self.provider, self.journal, self.sweep = ledger, provider, journal, sweep
        self.poll_interval = poll_interval
        self._first: dict[int, float] = {}     # attempt -> the bid it was rented at
        self._raised_at: dict[int, float] = {}

    async def stays(self, a: AttemptRow, now: float) -> bool:
        """An outbid attempt: True while it stays (its bid just raised, or raised now); False: move it."""
        cap = getattr(self.provider, "bid_cap", lambda _pid: None)(a.provider_id or "")
        if a.bid is None or cap is None or not a.provider_id:
            return False
        first = self._first.setdefault(a.id, a.bid)
        if now - self._raised_at.get(a.id, float("-inf")) < self.poll_interval * 1.5:
            return True   # the last raise gets a listing to show it running
        stopped_at = a.state_since if a.state_since is not None else now
        c = costs(a.bid, first, cap, remaining_h=self._remaining_h(a, stopped_at), lost_h=self._lost_h(a, stopped_at),
                  start_h=self._start_h(), storage_per_hour=a.storage_per_hour, poll_h=self.poll_interval / 3600)
        if c is None or c.stay >= c.move:
            why = "its bid is at its cap" if c is None else (f"staying at ${c.bid:.3f}/h would cost ${c.stay:.3f}, "
                                                             f"moving ${c.move:.3f}")
            self.journal.event(now, "outbid", f"{a.cell} #{a.attempt}: outbid; moving the cell ({why})", a,
                               data={"action": "move", "bid": a.bid, "cap": cap})
            return False
        try:
            await self.provider.change_bid(a.provider_id, c.bid)  # type: ignore[attr-defined]
        except ProviderError as exc:
            self.journal.event(now, "outbid", f"{a.cell} #{a.attempt}: outbid; raising the bid failed ({exc}); "
                               "moving the cell", a)
            return False
        self._raised_at[a.id] = now
        self.ledger.set_attempt(a.id, bid=c.bid, price_per_hour=round(c.bid + a.storage_per_hour, 6),
                                host_started_at=None)
        self.journal.event(now, "outbid", f"{a.cell} #{a.attempt}: outbid; bid raised ${a.bid:.3f} -> ${c.bid:.3f}/h "
                           f"(staying costs ${c.stay:.3f}, moving ${c.move:.3f}); it resumes in place when it runs",
                           a, data={"action": "raise", "bid": c.bid, "stay": c.stay, "move": c.move})
        return True

    def _remaining_h(self, a: AttemptRow, stopped_at: float) -> float:
        """The cell's planned hours less what its attempts trained (at least a tenth of them)."""
        planned = self.sweep.spec.planning.hours_per_cell
        cell = self.ledger.cell(self.sweep.name, a.cell)
        trained = sum(max(0.0, min(b.ended_at or stopped_at, stopped_at) - (b.host_started_at or b.started_at or 0))
                      for b in self.ledger.attempts(self.sweep.name, a.cell)
                      if b.attempt > cell.counted_from and (b.host_started_at or b.started_at) is not None)
        return max(0.1 * planned, planned - trained / 3600)

    @staticmethod
    def _lost_h(a: AttemptRow, stopped_at: float) -> float:
        since = a.checkpoint_at or a.host_started_at or a.started_at or stopped_at
        return max(0.0, stopped_at - since) / 3600

    def _start_h(self) -> float:
        """Hours this sweep's instances spent before their run started, per run started (stuck ones count)."""
        spent, started = 0.0, 0
        for b in self.ledger.attempts(self.sweep.name):
            if b.created_at is None or b.provider_id is None:
                continue
            if b.host_started_at is not None:
                spent, started = spent + b.host_started_at - b.created_at, started + 1
            elif b.ended_at is not None and not b.started_event:   # never started (a raised one did)
                spent += b.ended_at - b.created_at
        return (spent / started if started else DEFAULT_START_S) / 3600
