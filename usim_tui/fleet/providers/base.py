"""The provider interface every backend implements (local subprocesses, Vast.ai REST, the emulator).

All calls are async. `list` is one listing of this sweep's instances (for Vast: one paged sweep of
GET /api/v1/instances/, never a call per instance). `destroy` is idempotent: an instance that is already
gone counts as destroyed. Errors are raised as ProviderError subclasses, never swallowed into "no instances".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from usim_tui.fleet.store.states import PROVIDER_STATES, AttemptState

# Normalised instance states (Vast's actual_status values map onto these): see fleet/store/states.py.
PENDING, LOADING, RUNNING, STOPPED, EXITED, OFFLINE, FAILED = PROVIDER_STATES   # short names for providers


class ProviderError(RuntimeError):
    """A provider call failed."""


class AuthError(ProviderError):
    """The key was refused: trying again will not help (launching pauses)."""


class RateLimited(ProviderError):
    def __init__(self, message: str, threshold_s: float | None = None) -> None:
        super().__init__(message)
        self.threshold_s = threshold_s


class BulkUnsupported(ProviderError):
    """The provider has no bulk call for this (its endpoint is missing): make the calls one by one."""


class NoCapacity(ProviderError):
    """No offer matches the sweep's filters (or every match was excluded)."""


@dataclass
class PullResult:
    """What `HostProvider.pull` brought back into the local run dir.

    files: paths relative to it; skipped: one line each with why (e.g. a checkpoint over the size limit);
    bytes: the total size of `files`."""

    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes: int = 0


# Variables of LaunchSpec.env that are secrets: a host reached over SSH gets them in its start's 0600 env file
# only, never in the create payload (Vast keeps that as the instance's extra_env and lists it).
SECRET_ENV = frozenset({"WANDB_API_KEY"})


@dataclass
class LaunchSpec:
    """What to start: one attempt of one cell."""

    label: str                      # usim:<sweep>:<cell>:<attempt>, the key that repairs a crash
    sweep: str
    cell: str
    attempt: int
    config: dict[str, Any]          # the cell's fully resolved run config
    run_dir: str                    # local: runs/<sweep>/<cell>/<attempt>; remote: path on the host
    env: dict[str, str] = field(default_factory=dict)        # secrets go here, never into scripts or labels
    exclude_machines: frozenset[str] = frozenset()
    max_price_per_hour: float | None = None                   # for the whole host (its num_gpus GPUs)
    num_gpus: int = 1               # GPUs of the host: an offer with exactly this many; one trainer per GPU
    on_demand: bool = False         # rent on demand whatever the pricing (the market took this cell's hosts)


@dataclass
class Observed:
    """One instance as the provider reports it now."""

    provider_id: str
    label: str
    state: AttemptState             # one of PROVIDER_STATES
    status_msg: str = ""
    machine_id: str | None = None
    gpu: str | None = None
    price_per_hour: float = 0.0     # all-in $/h while running
    storage_per_hour: float = 0.0   # $/h billed while the instance exists (stopped included)
    created_at: float | None = None
    started_at: float | None = None  # reached running
    exit_code: int | None = None
    cost: float | None = None       # the provider's own billed total for this instance, where it reports one
    raw: dict[str, Any] = field(default_factory=dict)

    def bid_fields(self) -> dict[str, Any]:
        """The ledger's `bid` and `on_demand_per_hour` of an instance rented at a bid (raw's), {} on demand."""
        if self.raw.get("bid") is None:
            return {}
        return {"bid": self.raw["bid"], "on_demand_per_hour": self.raw.get("on_demand_per_hour")}


@runtime_checkable
class Provider(Protocol):
    name: str

    async def list(self) -> list[Observed]: ...

    async def create(self, spec: LaunchSpec) -> Observed: ...

    async def destroy(self, provider_id: str) -> None: ...

    async def logs(self, provider_id: str, tail: int = 1000) -> str: ...   # vast: also daemon=False

    async def close(self) -> None: ...


@runtime_checkable
class HostProvider(Protocol):
    """Optional: a provider whose instances are reached over SSH once they run (Vast). Local and simulated
    providers do not implement it; test with `isinstance(provider, HostProvider)`.

    Remote paths are relative to the SSH login's home directory (`/root` on Vast) unless absolute; run dirs
    are `hosts/run_script.py: host_run_dir` = `runs/<sweep>/<cell>/<attempt>`. Every method has a timeout and
    raises a ProviderError subclass (fleet/hosts/ssh.py: SSHUnreachable, HostCommandFailed, PullFailed) with one
    clear line. The whole bring-up sequence (wheel, config, install, start) is `fleet/hosts/bring_up.py: bring_up`.
    """

    async def push(self, provider_id: str, files: dict[str, Path]) -> None:
        """Copy local files to the host: {remote path: local path}; each is renamed into place when whole."""
        ...

    async def start(self, provider_id: str, command: str, env: dict[str, str]) -> None:
        """Start `command` detached (nohup setsid, stdin from /dev/null): a dropped connection does not end
        it. `env` reaches it through a 0600 file on the host, never the command line."""
        ...

    async def read_events(self, provider_id: str, run_dir: str, offset: int) -> tuple[str, int]:
        """Text of `<run_dir>/events.jsonl` from byte `offset` up to the last whole line, and the new offset
        (('', offset) while the file does not exist)."""
        ...

    async def pull(self, provider_id: str, run_dir: str, dest: Path, max_checkpoint_bytes: int) -> PullResult:
        """config.yaml, events.jsonl, metrics.jsonl, train.log, host.log, eval/*.json and *.png into `dest`
        first (a temp dir beside it, then renamed: they are whole or absent), then the last checkpoint
        (skipped, and said so, when over `max_checkpoint_bytes` or when it does not come: what arrived stays)."""
        ...

    async def pull_resume(self, provider_id: str, run_dir: str, dest: Path, max_checkpoint_bytes: int) -> PullResult:
        """The run's resume point during training (every checkpoint in `<run_dir>/checkpoints/`, then events and
        metrics) into `dest`, which it replaces only once all of it came (ProviderError otherwise)."""
        ...


def parse_label(label: str | None) -> tuple[str, str, int] | None:
    """(sweep, cell, attempt) from a usim label, or None for instances that are not ours."""
    if not label or not label.startswith("usim:"):
        return None
    parts = label.split(":")
    if len(parts) != 4 or not parts[3].isdigit():
        return None
    return parts[1], parts[2], int(parts[3])


def make_label(sweep: str, cell: str, attempt: int) -> str:
    return f"usim:{sweep}:{cell}:{attempt}"
