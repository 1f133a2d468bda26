"""Destroying instances: the intent recorded before each call, its outcome after; many at once in one call
where the provider has a bulk destroy (at the budget cap, hundreds of instances must go within one poll, and
Vast paces single destroys at one per 3 s). A failed destroy marks the attempt leaked: it is retried every poll
and its cell is never relaunched over it. Nothing here raises: a failing provider never blocks the tick."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from usim_tui.fleet.clock import Clock
from usim_tui.fleet.providers.base import BulkUnsupported, Provider, ProviderError
from usim_tui.fleet.store import budget
from usim_tui.fleet.store.journal import Journal
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.rows import AttemptRow
from usim_tui.fleet.store.states import GONE, AttemptState

A = AttemptState


class Teardown:
    def __init__(self, ledger: Ledger, provider: Provider, journal: Journal, sweep: str, clock: Clock) -> None:
        self.ledger, self.provider, self.journal, self.sweep, self.clock = ledger, provider, journal, sweep, clock

    async def destroy(self, attempts: Sequence[AttemptRow], reason: str, message: str, now: float) -> set[int]:
        """Destroy these attempts' instances; returns the ids whose destroy the provider accepted. An attempt
        without a provider id is a create in flight: the next listing adopts or closes it."""
        todo = [a for a in attempts if a.state not in GONE and a.state != A.DESTROYING and a.provider_id]
        if not todo:
            return set()
        intents = {}
        for a in todo:
            self.ledger.set_attempt(a.id, reason=a.reason or reason, message=a.message or message or None)
            intents[a.id] = self.ledger.intent(self.sweep, "destroy", now, a.id, a.label, a.provider_id)
        errors = await self._calls([a.provider_id or "" for a in todo], now)
        end = self.clock.now()   # paced calls take time: it billed until the provider took the destroy
        done = set()
        for a in todo:
            error = errors.get(a.provider_id or "")
            if error is None:
                self.ledger.outcome(intents[a.id], "ok", end)
                self.ledger.set_attempt(a.id, at=end, state=A.DESTROYING, ended_at=end, destroy_failures=0,
                                        spent=budget.billed(a, a.state, end), billed_until=end)
                done.add(a.id)
                continue
            self.ledger.outcome(intents[a.id], "error", now, error)
            self.ledger.set_attempt(a.id, at=now, state=A.LEAKED, destroy_failures=a.destroy_failures + 1)
            self.journal.event(now, "leaked", f"ALERT destroy of {a.label} ({a.provider_id}) failed: {error}; "
                               "retrying every poll, the cell is not relaunched; terminate it manually if this "
                               "persists", a, data={"from": a.state, "to": A.LEAKED, "error": error})
        return done

    async def _calls(self, ids: list[str], now: float) -> dict[str, str]:
        """provider id -> why its destroy failed (absent: accepted). One bulk call where the provider has one
        and several must go (a failed one leaves them all leaked, retried next poll: a failing provider costs
        one call per poll, never one per instance); one call each, concurrently, only where the provider has
        no bulk endpoint."""
        bulk = getattr(self.provider, "destroy_many", None)
        if bulk is not None and len(ids) > 1:
            try:
                await bulk(ids)
                return {}
            except BulkUnsupported as exc:
                self.journal.event(now, "provider", f"no bulk destroy ({exc}); destroying one by one")
            except ProviderError as exc:
                return {i: str(exc) for i in ids}
        results = await asyncio.gather(*(self._one(i) for i in ids))
        return {i: r for i, r in zip(ids, results, strict=True) if r is not None}

    async def _one(self, provider_id: str) -> str | None:
        try:
            await self.provider.destroy(provider_id)
        except ProviderError as exc:
            return str(exc)
        return None
