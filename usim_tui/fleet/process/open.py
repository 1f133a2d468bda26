"""One way to open a sweep for running: the app, `usim-tui run`, the rehearsal and the tests all call
`open_sweep`, so they agree on the poll interval, what reaches the instances and where the ledger lives."""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from usim_core.sweep import ProviderSettings, Sweep, expand
from usim_tui.fleet.clock import Clock, RealClock
from usim_tui.fleet.control.controller import Controller
from usim_tui.fleet.providers.base import Provider
from usim_tui.fleet.store.ledger import Ledger

POLL_S = {"local": 2.0, "vast": 10.0}   # seconds between provider listings, per provider kind
# What a trainer may need from the researcher's environment: W&B's key and mode. Passed to instances only.
INSTANCE_ENV = ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL")


@dataclass
class OpenSweep:
    sweep: Sweep
    ledger: Ledger
    provider: Provider
    controller: Controller

    async def close(self) -> None:
        """Close the provider's sessions and the host calls in flight; the ledger stays open for the caller."""
        await self.controller.host_runs.close()
        await self.provider.close()


def make_provider(settings: ProviderSettings, *, clock: Clock | None = None, root: str | Path = "runs",
                  concurrency: int = 1, sweep: str | None = None, local_command: list[str] | None = None) -> Provider:
    """The provider a sweep's settings name; `local_command` replaces the local trainer command line."""
    if settings.kind == "local":
        from usim_tui.fleet.providers.local import LocalProvider

        # 2 cores shared by several trainers: one thread each, or they thrash
        return LocalProvider(root, settings.price_per_hour, command=local_command,
                             threads=1 if concurrency > 1 else None, priced_gpus=settings.num_gpus)
    if settings.kind == "vast":
        from usim_tui.fleet.vast.provider import make_vast_provider

        return make_vast_provider(settings, clock=clock, sweep=sweep)
    raise ValueError(f"unknown provider kind {settings.kind!r}; allowed: local, vast")


def default_ledger(sweep_name: str, runs_root: str | Path = "runs") -> Path:
    return Path(runs_root) / sweep_name / "ledger.sqlite"


def instance_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in INSTANCE_ENV if k in environ}


def open_sweep(sweep: str | Path | Sweep, *, kind: str | None = None, provider: Provider | None = None,
               ledger: str | Path | None = None, runs_root: str | Path = "runs",
               env: Mapping[str, str] | None = None, clock: Clock | None = None, poll_interval: float | None = None,
               run_preflight: bool = True, log: Callable[[str], None] = print, local_command: str | None = None,
               preflight_cmd: list[str] | None = None, wheel: Path | None = None,
               early_stop: bool = True) -> OpenSweep:
    """The sweep (a file, expanded here, or already expanded), its ledger (default
    runs/<sweep>/ledger.sqlite), a provider (`kind` overrides the sweep's; `provider` supplies one outright, as
    the rehearsal and tests do) and the controller over them. `env` defaults to the W&B variables of this
    process's environment; secrets in it reach instances only, never the ledger. `wheel`: what SSH hosts install
    (default: built from this checkout). `early_stop=False`: every cell trains to the end whatever the sweep says."""
    sw = sweep if isinstance(sweep, Sweep) else expand(sweep)
    if kind:   # a copy: the caller's sweep is not changed behind its back
        sw = dataclasses.replace(sw, spec=sw.spec.model_copy(
            update={"provider": sw.spec.provider.model_copy(update={"kind": kind})}))
    clock = clock or RealClock()
    if provider is None:
        provider = make_provider(sw.spec.provider, clock=clock, root=runs_root, concurrency=sw.spec.concurrency,
                                 sweep=sw.name, local_command=shlex.split(local_command) if local_command else None)
    led = Ledger(ledger or default_ledger(sw.name, runs_root))
    ctl = Controller(led, provider, sw, clock, poll_interval=poll_interval or POLL_S.get(sw.spec.provider.kind, 10.0),
                     run_preflight=run_preflight, log=log, runs_root=runs_root,
                     env=instance_env() if env is None else env, preflight_cmd=preflight_cmd, wheel=wheel,
                     early_stop=early_stop)
    return OpenSweep(sw, led, provider, ctl)
