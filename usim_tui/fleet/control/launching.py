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
    make_label,
)
from usim_tui.fleet.store import budget
from usim_tui.fleet.store.journal import Journal
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.rows import AttemptRow
from usim_tui.fleet.store.states import AttemptState, EndReason


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
    _budget_note: str = ""

    @property
    def name(self) -> str:
        return self.sweep.name

    async def launch_wanted(self, now: float) -> None:
        row = self.ledger.sweep_row(self.name)
        blocked = bool(row.paused or not row.auto or row.crash_loop or row.budget_stop)
        by_cell: dict[str, list[AttemptRow]] = {}
        for a in self.ledger.attempts(self.name):
            by_cell.setdefault(a.cell, []).append(a)
        spec = self.sweep.spec
        for name in policies.next_launches(self.ledger.cells(self.name), by_cell, now, concurrency=spec.concurrency,
                                           max_attempts=spec.max_attempts, blocked=blocked,
                                           max_machine_faults=spec.max_machine_faults):
            if self.clock.now() - now >= self.poll_interval:
                break   # paced creates (Vast: 4.5 s each) must not starve the polls: the rest go next tick
            if not await self.launch(name, self.clock.now()):
                break

    async def launch(self, cell_name: str, now: float) -> bool:
        """Start the next attempt of one cell if preflight and budget allow; False stops this round of launches."""
        if self.run_preflight and not await preflight.check(self.ledger, self.sweep, self.journal, cell_name,
                                                             self.runs_root, now, self.preflight_cmd):
            return True
        if not self._budget_allows(cell_name, now):
            return False
        attempt = 1 + max((a.attempt for a in self.ledger.attempts(self.name, cell_name)), default=0)
        label = make_label(self.name, cell_name, attempt)
        run_dir = str(self.runs_root / self.name / cell_name / str(attempt))
        aid = self.ledger.new_attempt(self.name, cell_name, attempt, label, run_dir, now)
        settings = self.sweep.spec.provider
        spec = LaunchSpec(label=label, sweep=self.name, cell=cell_name, attempt=attempt,
                          config=self.sweep.cell(cell_name).config, run_dir=run_dir, env=dict(self.env),
                          exclude_machines=self.ledger.excluded_machines(self.name),
                          max_price_per_hour=settings.max_dph if settings.kind != "local" else None)
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
                                status_msg=o.status_msg, created_at=now, billed_until=now)
        self.journal.event(now, "launch", f"{cell_name} #{attempt}: launched {o.provider_id}"
                           + (f" on {o.gpu}" if o.gpu else "") + f" at ${o.price_per_hour:.3f}/h",
                           self.ledger.attempt(aid), data={"provider_id": o.provider_id, "gpu": o.gpu,
                                                           "price_per_hour": o.price_per_hour})
        return True

    def _budget_allows(self, cell_name: str, now: float) -> bool:
        ok, why = budget.can_launch(self.sweep.spec, self.ledger.attempts(self.name), now, self.poll_interval)
        if ok:
            return True
        if why != self._budget_note:
            self._budget_note = why
            self.journal.event(now, "budget", f"not launching {cell_name}: {why}")
        if not self.ledger.live_attempts(self.name):
            self.ledger.set_sweep(self.name, budget_stop=1)
        return False

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
