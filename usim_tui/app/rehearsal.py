"""`--rehearse PROFILE`: the real controller against the Vast emulator on a virtual clock, paced so a night
plays in about a minute, rendered from the rehearsal's own ledger like any live sweep."""

from __future__ import annotations

import tempfile
from collections import deque
from pathlib import Path
from typing import Any

from usim_tui.app.source import LedgerSource
from usim_tui.fleet.clock import PacedClock
from usim_tui.fleet.store.snapshot import SweepSnapshot

PACE_S = 0.05  # real seconds per controller poll (30 virtual seconds by default)


class RehearsalSource(LedgerSource):
    def __init__(self, rehearse_usim: Any, sweep: Any, profile: Any, curves: Any = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="usim-rehearsal-"))
        self.path = self.root / "ledger.sqlite"
        super().__init__(None, sweep.name, log=deque([f"rehearsal ledger: {self.path}"], maxlen=200))
        self.rehearse_usim, self.sweep_obj, self.profile, self.curves = rehearse_usim, sweep, profile, curves
        self.clock = PacedClock(PACE_S)
        self.controller: Any = None
        self.in_process = True

    def snapshot(self, now: float | None = None) -> SweepSnapshot:
        if self.ledger is None:
            if not self.path.exists():
                raise FileNotFoundError("the rehearsal is starting")
            from usim_tui.fleet.store.ledger import Ledger
            self.ledger = Ledger(self.path)
        return super().snapshot(now)

    def _on_tick(self, ctl: Any, emu: Any) -> None:
        self.controller = ctl   # commands go to it once it runs

    async def run(self) -> None:
        res = await self.rehearse_usim(self.sweep_obj, self.profile, root=self.root, clock=self.clock,
                                       on_tick=self._on_tick, curves=self.curves)
        estimate = f"the controller's estimate ${self.snapshot().budget.spent:.2f} (the header's), " \
            if self.ledger is not None else ""
        stopped = f", {res.stopped_early} stopped early" if res.stopped_early else ""
        self.log.append(f"rehearsal over: {res.finished}/{res.cells} finished{stopped}; the provider billed "
                        f"${res.spent:.2f}, "
                        f"{estimate}budget ${res.budget:.2f}; {res.note or ''}".strip())
