"""The provider interface every backend implements (local subprocesses, Vast.ai REST, the emulator).

All calls are async. `list` is one listing of this sweep's instances (for Vast: one paged sweep of
GET /api/v1/instances/, never a call per instance). `destroy` is idempotent: an instance that is already
gone counts as destroyed. Errors are raised as ProviderError subclasses, never swallowed into "no instances".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from usim_tui.fleet.states import PROVIDER_STATES, AttemptState

# Normalised instance states (Vast's actual_status values map onto these): see fleet/states.py.
PENDING, LOADING, RUNNING, STOPPED, EXITED, OFFLINE, FAILED = PROVIDER_STATES   # short names for providers


class ProviderError(RuntimeError):
    """A provider call failed."""


class AuthError(ProviderError):
    """The key was refused: trying again will not help (launching pauses)."""


class RateLimited(ProviderError):
    def __init__(self, message: str, threshold_s: float | None = None) -> None:
        super().__init__(message)
        self.threshold_s = threshold_s


class NoCapacity(ProviderError):
    """No offer matches the sweep's filters (or every match was excluded)."""


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
    max_price_per_hour: float | None = None


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


@runtime_checkable
class Provider(Protocol):
    name: str

    async def list(self) -> list[Observed]: ...

    async def create(self, spec: LaunchSpec) -> Observed: ...

    async def destroy(self, provider_id: str) -> None: ...

    async def logs(self, provider_id: str, tail: int = 1000) -> str: ...

    async def close(self) -> None: ...


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
