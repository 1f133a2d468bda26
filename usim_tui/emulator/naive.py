"""The naive policy the rehearsal compares against: what the earlier night did.

Launch every cell once with a plain `set -e; install; train; poweroff` onstart (no trap: a script that dies
leaves its container running and billing), no startup deadline, no budget guard, no crash-loop detection.
It destroys an instance only when its logs show a `done` event, and everything else in the morning.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from usim_core.events import parse_lines
from usim_core.sweep import Sweep
from usim_tui.fleet.clock import Clock
from usim_tui.fleet.providers.base import LaunchSpec, ProviderError, make_label


def naive_onstart(spec: LaunchSpec) -> str:
    return ("#!/bin/bash\nset -euo pipefail\npip install -q usim\n"
            f"usim-core train --config config.yaml --run-dir {shlex.quote(spec.run_dir)}\npoweroff\n")


@dataclass
class NaiveResult:
    finished: set[str] = field(default_factory=set)
    launched: int = 0
    not_launched: list[str] = field(default_factory=list)


async def run_naive(provider, sweep: Sweep, clock: Clock, *, until: float, poll_interval: float = 300.0) -> NaiveResult:
    out = NaiveResult()
    cells = [c for c in sweep.cells if not c.duplicate_of]
    for c in cells:
        spec = LaunchSpec(label=make_label(sweep.name, c.name, 1), sweep=sweep.name, cell=c.name, attempt=1,
                          config=c.config, run_dir=f"runs/{sweep.name}/{c.name}/1")
        try:
            await provider.create(spec)
            out.launched += 1
        except ProviderError:
            out.not_launched.append(c.name)
    while clock.now() < until and len(out.finished) < out.launched:
        try:
            observed = await provider.list()
        except ProviderError:
            observed = []
        for o in observed:
            if o.state not in ("running", "exited"):
                continue
            try:
                text = await provider.logs(o.provider_id)
            except ProviderError:
                continue
            if any(e.get("kind") == "done" for e in parse_lines(text)):
                out.finished.add(o.label.split(":")[2])
                await _destroy(provider, o.provider_id)
        await clock.sleep(poll_interval)
    return out


async def _destroy(provider, provider_id: str) -> None:
    try:
        await provider.destroy(provider_id)
    except ProviderError:
        pass
