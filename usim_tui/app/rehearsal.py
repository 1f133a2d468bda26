"""`--rehearse PROFILE`: the real controller against the Vast emulator on a virtual clock, paced so a night
plays in about a minute, rendered from the rehearsal's own ledger like any live sweep."""

from __future__ import annotations

import asyncio
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

from usim_tui.app.source import LedgerSource
from usim_tui.fleet.clock import RealClock
from usim_tui.fleet.snapshot import SweepSnapshot

PACE_S = 0.05  # real seconds per controller poll (30 virtual seconds by default)


class FollowClock:
    """The rehearsal's virtual clock once it exists (real time before)."""

    def __init__(self) -> None:
        self.inner: Any = RealClock()

    def now(self) -> float:
        return self.inner.now()

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class RehearsalSource(LedgerSource):
    def __init__(self, rehearse_usim: Any, sweep: Any, profile: Any) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="usim-rehearsal-"))
        self.path = self.root / "ledger.sqlite"
        super().__init__(None, sweep.name, log=deque([f"rehearsal ledger: {self.path}"], maxlen=200))
        self.rehearse_usim, self.sweep_obj, self.profile = rehearse_usim, sweep, profile
        self.clock = FollowClock()
        self.controller: Any = None
        self.in_process = True

    def snapshot(self, now: float | None = None) -> SweepSnapshot:
        if self.ledger is None:
            if not self.path.exists():
                raise FileNotFoundError("the rehearsal is starting")
            from usim_tui.fleet.ledger import Ledger
            self.ledger = Ledger(self.path)
        return super().snapshot(now)

    def _on_tick(self, ctl: Any, emu: Any, provider: Any) -> None:
        if self.controller is None:  # first tick: follow its clock and pace its sleeps
            self.controller = ctl
            clock = emu.clock
            self.clock.inner = clock

            async def paced(seconds: float) -> None:
                clock.advance(seconds)
                await asyncio.sleep(PACE_S)

            clock.sleep = paced

    async def run(self) -> None:
        res = await self.rehearse_usim(self.sweep_obj, self.profile, root=self.root, on_tick=self._on_tick)
        self.log.append(f"rehearsal over: {res.finished}/{res.cells} finished, ${res.spent:.2f} billed "
                        f"(budget ${res.budget:.2f}); {res.note or ''}".strip())
