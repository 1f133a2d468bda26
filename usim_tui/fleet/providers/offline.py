"""A provider that cannot be reached (no API key, say): every call raises why. With it a person's command can
still change the ledger alone (pause, resume, a relaunch with nothing live), and nothing pretends to have
reached the provider."""

from __future__ import annotations

from usim_tui.fleet.providers.base import LaunchSpec, Observed, ProviderError


class Offline:
    name = "offline"

    def __init__(self, why: str) -> None:
        self.why = why

    async def list(self) -> list[Observed]:
        raise ProviderError(self.why)

    async def create(self, spec: LaunchSpec) -> Observed:
        raise ProviderError(self.why)

    async def destroy(self, provider_id: str) -> None:
        raise ProviderError(self.why)

    async def logs(self, provider_id: str, tail: int = 1000) -> str:
        raise ProviderError(self.why)

    async def close(self) -> None:
        return None
