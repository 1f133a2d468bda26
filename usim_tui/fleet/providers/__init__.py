"""Provider factory. `local` is built here; the Vast engineer adds the `vast` branch."""

from __future__ import annotations

from pathlib import Path

from usim_core.sweep import ProviderSettings
from usim_tui.fleet.clock import Clock
from usim_tui.fleet.providers.base import Provider


def make_provider(settings: ProviderSettings, *, clock: Clock | None = None, root: str | Path = "runs",
                  concurrency: int = 1, sweep: str | None = None, local_command: list[str] | None = None) -> Provider:
    """The provider a sweep's settings name; `local_command` replaces the local trainer command line."""
    if settings.kind == "local":
        from usim_tui.fleet.providers.local import LocalProvider

        # 2 cores shared by several trainers: one thread each, or they thrash
        return LocalProvider(root, settings.price_per_hour, command=local_command,
                             threads=1 if concurrency > 1 else None)
    if settings.kind == "vast":
        from usim_tui.fleet.providers.vast import make_vast_provider

        return make_vast_provider(settings, clock=clock, sweep=sweep)
    raise ValueError(f"unknown provider kind {settings.kind!r}; allowed: local, vast")
