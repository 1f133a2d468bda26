"""Launching: which cells start this poll, and starting one attempt (preflight, budget, create intent, the
provider call, its outcome). A create whose outcome is unknown is settled by label at the next listing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from usim_core.sweep import Sweep
from usim_tui.fleet.clock import Clock
from usim_tui.fleet.control import policies, preflight
from usim_tui.fleet.providers.base import (
    AuthError,
    LaunchSpec,
    NoCapacity,
    Provider,
    ProviderError,
    RateLimited,
    make_label,
)
from usim_tui.fleet.store import budget
from usim_tui.fleet.store.journal import Journal
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.rows import AttemptRow, CellRow
from usim_tui.fleet.store.states import AttemptState, CellState, EndReason


@dataclass
class Launcher:
    ledger: Ledger
    provider: Provider
    sweep: Sweep
    journal: Journal
    clock: Clock
    poll_interval: float
    runs_root: Path
    env: Mapping[str, str] = field(default_factory=dict)   # passed to instances only (secrets: never the ledger)
    run_preflight: bool = True
    preflight_cmd: list[str] | None = None
    _budget_notes: dict[int, str] = field(default_factory=dict)   # num_gpus -> the refusal last said

    @property
    def name(self) -> str:
        return self.sweep.name

    async def launch_wanted(self, now: float) -> None:
        row = self.ledger.sweep_row(self.name)
        blocked = bool(row.paused or not row.auto or row.crash_loop or row.budget_stop)
        attempts = self.ledger.attempts(self.name)
        by_cell: dict[str, list[AttemptRow]] = {}
        for a in attempts:
            by_cell.setdefault(a.cell, []).append(a)
        spec = self.sweep.spec
        cells = self.ledger.cells(self.name)
        if not blocked:   # a cell on more GPUs costs more: those that do not fit wait, the others go ahead
            fits = self._affordable(cells, attempts, now)
            cells = [c for c in cells if c.num_gpus in fits]
        for name in policies.next_launches(cells, by_cell, now, concurrency=spec.concurrency,
                                           max_attempts=spec.max_attempts, blocked=blocked,
                                           max_machine_faults=spec.max_machine_faults):
            if self.clock.now() - now >= self.poll_interval:
                break   # paced creates (Vast: 4.5 s each) must not starve the polls: the rest go next tick
            if not await self.launch(name, self.clock.now()):
                break

    def _affordable(self, cells: list[CellRow], attempts: list[AttemptRow], now: float) -> set[int]:
        """The GPU counts of pending cells a new attempt fits the budget for (each said once when not). With
        nothing live and no pending cell that fits, nothing ever will: the sweep stops at its budget."""
        fits = set()
        for n in sorted({c.num_gpus for c in cells if c.state == CellState.PENDING}):
            ok, why = budget.can_launch(self.sweep.spec, attempts, now, self.poll_interval, n)
            if ok:
                fits.add(n)
            else:
                self._say_budget(n, why, now)
        if not fits and any(c.state == CellState.PENDING for c in cells) and not any(a.live for a in attempts):
            self.ledger.set_sweep(self.name, budget_stop=1)
        return fits

    def _falls_back(self, cell_name: str, now: float) -> bool:
        """interruptible-fallback: whether the market has taken this cell's host fallback_after_outbids times
        since it was last relaunched, so its next attempt rents on demand (said once per relaunch, in the ledger)."""
        settings = self.sweep.spec.provider
        if settings.pricing != "interruptible-fallback":
            return False
        cell = self.ledger.cell(self.name, cell_name)
        since = [a for a in self.ledger.attempts(self.name, cell_name) if a.attempt > cell.counted_from]
        outbid = [a for a in since if a.reason == EndReason.OUTBID]
        if len(outbid) < settings.fallback_after_outbids:
            return False
        if not self.ledger.has_event("fallback", [a.id for a in since]):   # a restarted controller too
            n = len(outbid)
            self.journal.event(now, "fallback", f"{cell_name}: outbid on {n} host{'s' * (n > 1)}: rents on demand "
                               "from now (pricing: interruptible-fallback)", outbid[-1], data={"outbids": n})
        return True

    async def launch(self, cell_name: str, now: float) -> bool:
        """Start the next attempt of one cell if preflight and budget allow; False stops this round of launches."""
        if self.run_preflight and not await preflight.check(self.ledger, self.sweep, self.journal, cell_name,
                                                             self.runs_root, now, self.preflight_cmd):
            return True
        cell = self.sweep.cell(cell_name)
        ok, why = budget.can_launch(self.sweep.spec, self.ledger.attempts(self.name), now, self.poll_interval,
                                    cell.num_gpus)
        if not ok:
            self._say_budget(cell.num_gpus, f"{why} ({cell_name})", now)
            return False
        attempt = 1 + max((a.attempt for a in self.ledger.attempts(self.name, cell_name)), default=0)
        label = make_label(self.name, cell_name, attempt)
        run_dir = str(self.runs_root / self.name / cell_name / str(attempt))
        aid = self.ledger.new_attempt(self.name, cell_name, attempt, label, run_dir, now, num_gpus=cell.num_gpus)
        settings = self.sweep.spec.provider
        spec = LaunchSpec(label=label, sweep=self.name, cell=cell_name, attempt=attempt,
                          config=cell.config, run_dir=run_dir, env=dict(self.env),
                          exclude_machines=self.ledger.excluded_machines(self.name), num_gpus=cell.num_gpus,
                          max_price_per_hour=budget.reserve_price(self.sweep.spec, cell.num_gpus)
                          if settings.kind != "local" else None, on_demand=self._falls_back(cell_name, now))
        try:
            o = await self.provider.create(spec)
        except NoCapacity as exc:
            self._not_created(aid, cell_name, EndReason.NO_CAPACITY, str(exc), now)
            return False
        except AuthError as exc:
            self._not_created(aid, cell_name, None, str(exc), now)
            self.ledger.set_sweep(self.name, paused=1)
            self.journal.status(f"auth failed: {exc}", now)
            return False
        except RateLimited as exc:   # answered 429: nothing was created, the cell waits its back-off only
            self._not_created(aid, cell_name, None, str(exc), now)
            return False
        except ProviderError as exc:
            # the outcome is unknown (a timeout may hide a success): the listings settle it by label, within
            # provider.create_settle_s where they lag; the attempt stays live meanwhile, so nothing buys again
            self.ledger.set_attempt(aid, message=f"create error: {exc}")
            self.journal.event(now, "create_error", f"{cell_name} #{attempt}: create got no clear answer ({exc}); "
                               f"not buying again: the listing settles it by label", self.ledger.attempt(aid),
                               data={"error": str(exc)[:300]})
            self.ledger.set_cell(self.name, cell_name, not_before=now + policies.backoff_s(1, self.poll_interval))
            return False
        now = self.clock.now()   # a paced create may have waited: the instance (and its deadline) starts now
        if unanswered := o.raw.get("create_unanswered"):
            self.journal.event(now, "create_error", f"{cell_name} #{attempt}: create got no answer ({unanswered}); "
                               f"its instance {o.provider_id} was found by label", self.ledger.attempt(aid),
                               data={"error": str(unanswered)[:300]})
        self.ledger.close_create_intent(aid, "created", now, o.provider_id)
        self.ledger.set_attempt(aid, at=now, state=o.state, provider_id=o.provider_id, machine_id=o.machine_id, gpu=o.gpu,
                                price_per_hour=o.price_per_hour, storage_per_hour=o.storage_per_hour,
                                status_msg=o.status_msg, created_at=now, billed_until=now, **o.bid_fields())
        on = f"{cell.num_gpus}x " if cell.num_gpus > 1 else ""
        self.journal.event(now, "launch", f"{cell_name} #{attempt}: launched {o.provider_id}"
                           + (f" on {on}{o.gpu}" if o.gpu else "") + f" at ${o.price_per_hour:.3f}/h",
                           self.ledger.attempt(aid), data={"provider_id": o.provider_id, "gpu": o.gpu,
                                                           "num_gpus": cell.num_gpus,
                                                           "price_per_hour": o.price_per_hour})
        return True

    def _say_budget(self, num_gpus: int, why: str, now: float) -> None:
        if why != self._budget_notes.get(num_gpus):   # a refusal repeated word for word is said once
            self._budget_notes[num_gpus] = why
            self.journal.event(now, "budget", f"not launching: {why}")

    def _not_created(self, aid: int, cell: str, reason: EndReason | None, message: str, now: float) -> None:
        self.ledger.close_create_intent(aid, reason or "error", now, message)
        self.ledger.set_attempt(aid, at=now, state=AttemptState.NOT_CREATED, reason=reason, message=message, ended_at=now)
        streak = 0
        for a in reversed(self.ledger.attempts(self.name, cell)):
            if a.state != AttemptState.NOT_CREATED:
                break
            streak += 1
        self.ledger.set_cell(self.name, cell, not_before=now + policies.backoff_s(streak, self.poll_interval))
        self.journal.event(now, reason or "create_error", f"{cell}: not created: {message}", self.ledger.attempt(aid))
