"""The provider's own account of the spend: its account credit (Vast), read every few minutes.

The first reading is the sweep's baseline, so baseline - now is the spend the provider reports (everything on
the account, not only this sweep). One call per reading."""

from __future__ import annotations

from typing import Any

from usim_tui.fleet.providers.base import Provider, ProviderError
from usim_tui.fleet.store.ledger import Ledger

CREDIT_EVERY_S = 300.0


class CreditReader:
    def __init__(self, ledger: Ledger, sweep: str, provider: Provider) -> None:
        self.ledger, self.sweep = ledger, sweep
        self.credit = getattr(provider, "credit", None)   # providers without an account have none
        self._at = float("-inf")
        self.final_read = False

    async def read(self, now: float, force: bool = False) -> None:
        if self.credit is None or (not force and now - self._at < CREDIT_EVERY_S):
            return
        self._at = now
        try:
            value = float(await self.credit())
        except ProviderError:
            return
        fields: dict[str, Any] = {"credit_now": value, "credit_at": now}
        if self.ledger.sweep_row(self.sweep).credit_start is None:
            fields["credit_start"] = value
        self.ledger.set_sweep(self.sweep, **fields)

    async def read_final(self, now: float) -> None:
        """Once, when the sweep is done: the provider's figure for the whole sweep."""
        if not self.final_read:
            self.final_read = True
            await self.read(now, force=True)
