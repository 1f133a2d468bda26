"""The simulated provider on a virtual clock behind a real controller and ledger, for the fleet's tests."""

from __future__ import annotations

from usim_tui.fleet.clock import VirtualClock
from usim_tui.fleet.process.open import open_sweep
from usim_tui.fleet.providers.sim import SimProvider


def make(tmp_path, sweep, script_for=None, poll=5.0, early_stop=True, **kw):
    """(clock, provider, ledger, controller) over a fresh ledger in tmp_path."""
    clock = VirtualClock()
    prov = SimProvider(clock, script_for, **kw)
    opened = open_sweep(sweep, provider=prov, ledger=tmp_path / "l.sqlite", runs_root=tmp_path / "runs", clock=clock,
                        poll_interval=poll, run_preflight=False, log=lambda m: None, env={}, early_stop=early_stop)
    return clock, prov, opened.ledger, opened.controller


async def ticks(ctl, clock, n):
    """n polls, the clock moving one poll interval after each."""
    for _ in range(n):
        await ctl.tick()
        clock.advance(ctl.poll_interval)
