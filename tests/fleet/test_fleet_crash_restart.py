"""Kill the controller at random side-effect boundaries (before and after provider calls), restart a fresh
Controller over the same SQLite file, and check: no instance the ledger does not know, never two live
attempts of one cell, and the sweep still completes with nothing left billing."""

from __future__ import annotations

import random

from usim_tui.fleet.clock import VirtualClock
from usim_tui.fleet.process.open import open_sweep
from usim_tui.fleet.providers.base import LOADING, PENDING, RUNNING
from usim_tui.fleet.providers.sim import Script, SimProvider
from usim_tui.fleet.store.ledger import Ledger


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the controller can catch it."""


class Crashing:
    """Wraps a provider; raises Killed just before or just after the n-th call."""

    def __init__(self, inner: SimProvider, rng: random.Random) -> None:
        self.inner, self.rng, self.name = inner, rng, "sim"
        self.calls, self.crashes = 0, 0
        self.arm()

    def arm(self) -> None:
        self.at = self.calls + self.rng.randint(1, 12)
        self.after = self.rng.random() < 0.5

    async def _call(self, name, *args, **kw):
        self.calls += 1
        hit = self.calls == self.at
        if hit and not self.after:
            self.crashes += 1
            self.arm()
            raise Killed(name)
        result = await getattr(self.inner, name)(*args, **kw)
        if hit:
            self.crashes += 1
            self.arm()
            raise Killed(name)
        return result

    async def list(self):
        return await self._call("list")

    async def create(self, spec):
        return await self._call("create", spec)

    async def destroy(self, pid):
        return await self._call("destroy", pid)

    async def logs(self, pid, tail=1000):
        return await self._call("logs", pid, tail=tail)

    async def close(self):
        return None


def check_invariants(led: Ledger, sim: SimProvider) -> None:
    known = {a.label for a in led.attempts("demo")}
    live_per_cell: dict[str, int] = {}
    for inst in sim.alive():
        assert inst.label in known, f"instance {inst.id} ({inst.label}) unknown to the ledger"
        state = inst.phase(sim.clock.now())[0]
        if state in (PENDING, LOADING, RUNNING):
            cell = inst.label.split(":")[2]
            live_per_cell[cell] = live_per_cell.get(cell, 0) + 1
    assert all(n <= 1 for n in live_per_cell.values()), live_per_cell


async def test_kill_and_restart_at_random_points(tmp_path, demo_sweep):
    total_crashes = 0
    for seed in range(8):
        rng = random.Random(seed)
        clock = VirtualClock()
        sim = SimProvider(clock, lambda spec, rng=rng: Script(rng.choice(["done", "done", "crash", "stuck"]),
                                                              run_s=rng.uniform(15, 60)))
        prov = Crashing(sim, rng)
        path = tmp_path / f"l{seed}.sqlite"

        def fresh(path=path, prov=prov, clock=clock):
            return open_sweep(demo_sweep, provider=prov, ledger=path, runs_root=tmp_path / "runs", clock=clock,
                              poll_interval=5.0, run_preflight=False, log=lambda m: None, env={}).controller
        ctl = fresh()
        for _ in range(600):
            try:
                await ctl.tick()
            except Killed:
                ctl.ledger.close()
                ctl = fresh()          # a restarted process: new connection, no memory
            check_invariants(ctl.ledger, sim)
            if ctl.done:
                break
            clock.advance(5.0)
        assert ctl.done, f"seed {seed}: sweep did not settle"
        assert not sim.alive(), f"seed {seed}: instances left billing"
        total_crashes += prov.crashes
    assert total_crashes >= 50
