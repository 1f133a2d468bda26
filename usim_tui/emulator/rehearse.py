"""`usim-tui rehearse`: one night on the virtual clock, the real controller against the emulator over HTTP,
and the naive policy on an identical emulator (same seed, same faults per cell and attempt).

Spend is what the emulator bills (the truth), not the controller's estimate; both are reported.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usim_core.eval.schema import PRIMARY_METRIC
from usim_core.sweep import Sweep
from usim_tui.emulator.faults import FaultProfile
from usim_tui.emulator.market import is_outbid_stop
from usim_tui.emulator.naive import naive_onstart, run_naive
from usim_tui.emulator.offers import catalogue
from usim_tui.emulator.replay import Curves
from usim_tui.emulator.server import serve
from usim_tui.emulator.simssh import SimSSH
from usim_tui.emulator.state import Emulator
from usim_tui.fleet.clock import VirtualClock
from usim_tui.fleet.control.controller import Controller
from usim_tui.fleet.hosts.keys import ensure_key
from usim_tui.fleet.process.open import open_sweep
from usim_tui.fleet.providers.base import make_label, parse_label
from usim_tui.fleet.store.rows import CellRow
from usim_tui.fleet.store.states import CellState
from usim_tui.fleet.vast.provider import VastProvider

KEY = "rehearsal-key"   # the emulator's own key: not a secret


@dataclass
class PolicyResult:
    policy: str
    cells: int
    budget: float
    finished: int = 0
    finishable: int = 0      # cells that can finish by design: not duplicates, not the profile's bad build
    spent: float = 0.0
    estimated: float | None = None
    provider_reported: float | None = None
    instances: int = 0
    hours: float = 0.0
    api_calls: int = 0
    polls: int = 0
    stuck: list[float | None] = field(default_factory=list)   # seconds from a stuck instance to its replacement
    reasons: dict[str, int] = field(default_factory=dict)     # how attempts ended (usim: from its ledger)
    faults: dict[str, int] = field(default_factory=dict)
    note: str = ""
    champion: str | None = None              # the finished cell best on val (PRIMARY_METRIC of its small eval)
    champion_metric: float | None = None
    stopped_early: int = 0                   # cells the stopping rule (or a person) stopped
    finals: dict[str, float] = field(default_factory=dict)   # finished cell -> its val PRIMARY_METRIC
    lost_results: int | None = None   # cells whose run finished on a host but never came home (usim's ledger)
    outbids: int = 0           # times a bid instance was outbid while alive

    @property
    def cost_per_finished(self) -> float | None:
        return self.spent / self.finished if self.finished else None

    @property
    def overshoot(self) -> float:
        return max(0.0, self.spent - self.budget)

    def to_dict(self) -> dict[str, Any]:
        replaced = [s for s in self.stuck if s is not None]
        return {
            "policy": self.policy, "finished": self.finished, "finishable": self.finishable, "cells": self.cells, "spent": round(self.spent, 4),
            "budget": self.budget, "cost_per_finished": None if self.cost_per_finished is None
            else round(self.cost_per_finished, 4), "overshoot": round(self.overshoot, 4),
            "estimated_spend": None if self.estimated is None else round(self.estimated, 4),
            "provider_reported_spend": None if self.provider_reported is None else round(self.provider_reported, 4),
            "instances": self.instances, "night_hours": round(self.hours, 2), "api_calls": self.api_calls,
            "polls": self.polls, "stuck_instances": len(self.stuck), "stuck_replaced": len(replaced),
            "stuck_to_replacement_s": {"median": round(statistics.median(replaced), 1) if replaced else None,
                                       "max": round(max(replaced), 1) if replaced else None,
                                       "never": len(self.stuck) - len(replaced)},
            "faults": self.faults, "reasons": self.reasons, "note": self.note,
            "champion": self.champion, "champion_metric": self.champion_metric, "stopped_early": self.stopped_early,
            "finals": self.finals, "lost_results": self.lost_results, "outbids": self.outbids,
        }


def _summarise(emu: Emulator, res: PolicyResult, t0: float, home: set[str] | None = None) -> None:
    """`home`: the cells whose results came home (finished or stopped early in the ledger); None: not known."""
    res.spent = emu.spent()
    res.instances = len(emu.instances)
    res.hours = (emu.clock.now() - t0) / 3600
    res.api_calls = emu.calls.total
    by_cell: dict[str, list[Any]] = {}
    now = emu.clock.now()
    for inst in emu.instances.values():
        for f in inst.plan.faults:
            res.faults[f] = res.faults.get(f, 0) + 1
        end = inst.alive_until(now)
        res.outbids += sum(1 for ph in inst.plan.phases if ph.at <= end and is_outbid_stop(ph.msg))
        parsed = parse_label(inst.label)
        if parsed:
            by_cell.setdefault(parsed[1], []).append(inst)
    if home is not None:   # the naive policy keeps no ledger: not known
        res.lost_results = sum(1 for cell, insts in by_cell.items() if cell not in home and any(
            _trained_to_the_end(i, now) for i in insts))
    for insts in by_cell.values():
        insts.sort(key=lambda i: i.created_at)
        for i, inst in enumerate(insts):
            if "stuck_loading" in inst.plan.faults:
                nxt = insts[i + 1] if i + 1 < len(insts) else None
                res.stuck.append(None if nxt is None else nxt.created_at - inst.created_at)


def _trained_to_the_end(inst: Any, now: float) -> bool:
    """Its trainer wrote `done` while the instance was alive (what a fleet must bring home)."""
    end = inst.alive_until(now)
    lines = inst.plan.events or inst.plan.logs
    return any(at <= end and '"kind":"done"' in line for at, line in lines)


def _emulator(sweep: Sweep, profile: FaultProfile, seed: int, per_gpu: int,
              clock: VirtualClock | None = None, curves: Curves | None = None) -> Emulator:
    emu = Emulator(clock or VirtualClock(), faults=profile, seed=seed, api_keys=(KEY,),
                   machines=catalogue(seed, per_gpu), curves=curves)
    emu.register_sweep(sweep.name, [c.name for c in sweep.cells])
    return emu


def _finishable(sweep: Sweep, emu: Emulator) -> int:
    return sum(1 for c in sweep.cells
               if not c.duplicate_of and not emu.is_bad_build(make_label(sweep.name, c.name, 1)))


async def rehearse_usim(sweep: Sweep, profile: FaultProfile, seed: int = 0, *, night_h: float = 12.0,
                        poll_interval: float = 30.0, per_gpu: int = 120, root: str | Path | None = None,
                        early_stop: bool = True, clock: VirtualClock | None = None,
                        on_tick: Callable[[Controller, Emulator], None] | None = None,
                        curves: Curves | None = None) -> PolicyResult:
    """The real controller against the emulator for one night on a virtual clock (a PacedClock plays it at a
    watchable speed); `on_tick(controller, emulator)` after every poll. `curves`: hosts replay these recorded
    learning curves (replay.py) where they have the cell."""
    emu = _emulator(sweep, profile, seed, per_gpu, clock, curves)
    clock = emu.clock
    t0 = clock.now()
    res = PolicyResult("usim", len(sweep.cells), sweep.spec.budget, finishable=_finishable(sweep, emu))
    home: set[str] | None = None

    def count(ctl: Controller) -> None:
        res.polls += 1
        if on_tick:
            on_tick(ctl, emu)

    with tempfile.TemporaryDirectory(prefix="usim-rehearse-") as tmp:
        base = Path(root or tmp)
        wheel = Path(tmp) / "usim_sweeps-rehearsal-py3-none-any.whl"   # simulated hosts install nothing
        wheel.touch()
        async with serve(emu) as url:
            # hosts over SSH (install: wheel) are simulated on the clock: the bring-up is the real one
            provider = VastProvider(sweep.spec.provider, clock=clock, api_key=KEY, base_url=url, sweep=sweep.name,
                                    seed=seed, ssh_key=ensure_key(Path(tmp) / "ssh" / "id_ed25519"),
                                    ssh_session=SimSSH(emu))
            opened = open_sweep(sweep, provider=provider, ledger=base / "ledger.sqlite", runs_root=base / "runs",
                                clock=clock, poll_interval=poll_interval, run_preflight=False, log=lambda msg: None,
                                env={}, wheel=wheel, early_stop=early_stop)
            ledger = opened.ledger
            try:
                why = await opened.controller.run(until=t0 + night_h * 3600, on_tick=count)
                res.note = f"night over after {night_h:g} h" if why == "until" else "" if why == "done" else why
                rows = ledger.attempts(sweep.name)
                cells = ledger.cells(sweep.name)
                res.finished = sum(1 for c in cells if c.state == CellState.FINISHED)
                home = {c.name for c in cells if c.state in (CellState.FINISHED, CellState.STOPPED_EARLY)}
                res.stopped_early = sum(1 for c in cells if c.state == CellState.STOPPED_EARLY)
                res.finals = _finals(cells)
                res.champion = min(res.finals, key=res.finals.__getitem__, default=None)
                res.champion_metric = res.finals.get(res.champion) if res.champion else None
                res.estimated = sum(a.spent for a in rows)
                for a in rows:
                    if a.reason:
                        res.reasons[a.reason] = res.reasons.get(a.reason, 0) + 1
                res.provider_reported = ledger.provider_reported(sweep.name, rows)
            finally:
                _morning(emu)
                await opened.close()
                ledger.close()
    _summarise(emu, res, t0, home)
    return res


async def rehearse_naive(sweep: Sweep, profile: FaultProfile, seed: int = 0, *, night_h: float = 12.0,
                         poll_interval: float = 300.0, per_gpu: int = 120, curves: Curves | None = None
                         ) -> PolicyResult:
    emu = _emulator(sweep, profile, seed, per_gpu, curves=curves)
    clock = emu.clock
    t0 = clock.now()
    res = PolicyResult("naive", len(sweep.cells), sweep.spec.budget, finishable=_finishable(sweep, emu))
    async with serve(emu) as url:
        provider = VastProvider(sweep.spec.provider, clock=clock, api_key=KEY, base_url=url, sweep=sweep.name,
                                seed=seed, onstart=naive_onstart, ssh=False)
        try:
            out = await run_naive(provider, sweep, clock, until=t0 + night_h * 3600, poll_interval=poll_interval)
            res.finished = len(out.finished)
            res.polls = -1
        finally:
            _morning(emu)
            await provider.close()
    _summarise(emu, res, t0)
    return res


def _finals(cells: list[CellRow]) -> dict[str, float]:
    """Each finished cell's val score (its small eval's PRIMARY_METRIC): the champion is the lowest, as the
    report ranks them."""
    return {c.name: c.small_metrics[PRIMARY_METRIC] for c in cells
            if c.state == CellState.FINISHED and PRIMARY_METRIC in c.small_metrics}


def _morning(emu: Emulator) -> None:
    """Whatever is still alive when the rehearsal ends is destroyed now (and billed up to now)."""
    for inst in list(emu.instances.values()):
        emu.destroy(inst.id)


async def rehearse(sweep: Sweep, profile: FaultProfile, seed: int = 0, **kw: Any) -> dict[str, dict[str, Any]]:
    night_h = kw.pop("night_h", 12.0)
    t = time.process_time()
    usim = await rehearse_usim(sweep, profile, seed, night_h=night_h, **kw)
    cpu_usim = time.process_time() - t
    curves = kw.get("curves")
    naive = await rehearse_naive(sweep, profile, seed, night_h=night_h, per_gpu=kw.get("per_gpu", 120), curves=curves)
    out = {"usim": usim.to_dict(), "naive": naive.to_dict()}
    out["usim"]["cpu_s"] = round(cpu_usim, 2)
    replayed = sorted({c.name for c in sweep.cells} & set(curves.cells)) if curves else []
    out["meta"] = {"sweep": sweep.name, "faults": profile.name, "seed": seed, "night_h": night_h,
                   "pricing": sweep.spec.provider.pricing,
                   "early_stop": bool(kw.get("early_stop", True) and sweep.spec.early_stop),
                   "curves": str(curves.path) if curves else None, "replayed_cells": len(replayed),
                   "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    return out


def run(sweep: Sweep, profile: FaultProfile, seed: int = 0, **kw: Any) -> dict[str, dict[str, Any]]:
    return asyncio.run(rehearse(sweep, profile, seed, **kw))
