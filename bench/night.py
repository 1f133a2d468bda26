"""The first real night, rehearsed: overnight_sota under the seed night's faults with its build fixed, against the
emulator's real-Vast unkindness (listings that lag creates, creates answered late, SSH refused after running
and dead on some hosts, the bare SSH environment), and what each of issue 32's fixes saves: the same nights
with one fix put back to the earlier fleet's behaviour at a time, paired by seed.

Run: .venv/bin/python bench/night.py [--seeds N] [--out FILE.json]   (default 10 seeds, about a minute)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stats import interval, paired_bootstrap  # noqa: E402  (bench/ is the script's own directory)

from usim_core.sweep import Sweep, expand  # noqa: E402
from usim_tui.emulator import rehearse  # noqa: E402
from usim_tui.emulator.faults import load_faults  # noqa: E402
from usim_tui.fleet.control import policies, reconcile  # noqa: E402
from usim_tui.fleet.vast.provider import CreateUnconfirmed, VastProvider  # noqa: E402


class RetryingCreate(VastProvider):
    """The earlier create: a 20 s timeout, then one more purchase under the same label when none is listed."""

    async def create(self, spec):  # type: ignore[no-untyped-def]
        try:
            return await super().create(spec)
        except CreateUnconfirmed:
            return await super().create(spec)


@contextlib.contextmanager
def double_buy(sweep: Sweep) -> Iterator[Sweep]:
    """The create retried after 20 s, and the listing keyed by label (a second instance under it never seen)."""
    old = rehearse.VastProvider, reconcile._by_label
    rehearse.VastProvider = RetryingCreate   # type: ignore[misc]
    reconcile._by_label = lambda observed, known: ({o.label: o for o in observed}, [])
    try:
        yield with_provider(sweep, create_timeout_s=20.0)
    finally:
        rehearse.VastProvider, reconcile._by_label = old   # type: ignore[misc]


@contextlib.contextmanager
def no_listing_patience(sweep: Sweep) -> Iterator[Sweep]:
    yield with_provider(sweep, create_settle_s=1e-6)   # an unlisted new instance is taken as gone at once


@contextlib.contextmanager
def ssh_on_the_startup_deadline(sweep: Sweep) -> Iterator[Sweep]:
    old = policies.host_loop
    policies.host_loop = lambda attempts, cleared_at: None   # no pause for SSH failing on host after host
    try:
        yield with_provider(sweep, ssh_deadline_s=1e9)    # dead SSH waits for the start-up deadline
    finally:
        policies.host_loop = old


def with_provider(sweep: Sweep, **fields: float) -> Sweep:
    spec = sweep.spec.model_copy(update={"provider": sweep.spec.provider.model_copy(update=fields)})
    return Sweep(spec=spec, path=sweep.path, cells=sweep.cells)


@contextlib.contextmanager
def all_of_them(sweep: Sweep) -> Iterator[Sweep]:
    with double_buy(sweep) as s1, no_listing_patience(s1) as s2, ssh_on_the_startup_deadline(s2) as s3:
        yield s3


@contextlib.contextmanager
def today(sweep: Sweep) -> Iterator[Sweep]:
    yield sweep


Variant = Callable[[Sweep], contextlib.AbstractContextManager[Sweep]]
# (scenario, hours of night, the faults over seed_night_fixed, the variants to compare)
SCENARIOS: list[tuple[str, float, dict, dict[str, Variant]]] = [
    ("the seed night, its build fixed", 12.0, {}, {
        "today": today, "create retry + label-keyed reconcile put back": double_buy,
        "no patience with lagging listings": no_listing_patience, "the earlier fleet (all three)": all_of_them}),
    ("... and SSH dead on every host (usim's key not on the account)", 2.0, {"vast": {"ssh_dead": {"p": 1.0}}}, {
        "today": today, "SSH left to the start-up deadline": ssh_on_the_startup_deadline}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="nights per variant, seeds 0..N-1 (default 5)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    sweep = expand(ROOT / "configs/sweeps/overnight_sota.yaml")
    base_faults = load_faults(ROOT / "configs/faults/seed_night_fixed.yaml")
    out = {"command": " ".join(["python", "bench/night.py", *sys.argv[1:]]), "sweep": sweep.name,
           "faults": base_faults.name, "seeds": list(range(args.seeds)), "scenarios": {}}
    for title, hours, extra, variants in SCENARIOS:
        night = type(base_faults).model_validate({**base_faults.model_dump(), **extra})
        t0 = time.time()
        rows = {name: [run_night(variant, sweep, night, seed, hours) for seed in range(args.seeds)]
                for name, variant in variants.items()}
        print(f"\n== {title}: overnight_sota, {hours:g} h, hostile emulator, {args.seeds} seeds "
              f"({time.time() - t0:.0f} s)")
        out["scenarios"][title] = summary(rows, hours)
    print("\n(Δ: mean per-seed difference [95% paired bootstrap over seeds]; $ per finished = total spent / total finished)")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, default=float) + "\n")
        print(f"wrote {args.out}")


def run_night(variant: Variant, sweep: Sweep, night, seed: int, hours: float) -> dict:
    with variant(sweep) as s:
        # every cell to the end, as these figures were first measured: what the rule changes is bench/early_stop.py's
        return asyncio.run(rehearse.rehearse_usim(s, night, seed, night_h=hours, early_stop=False)).to_dict()


def summary(rows: dict[str, list[dict]], hours: float) -> dict:
    print(f"{'':48}{'finished':>9}{'spent $':>9}{'$/finished':>11}{'instances':>10}{'Δ spent vs today [95%]':>26}")
    base, out = rows["today"], {"night_h": hours}
    for name, rs in rows.items():
        spent, fin = [r["spent"] for r in rs], [r["finished"] for r in rs]
        delta = paired_bootstrap([r["spent"] - b["spent"] for r, b in zip(rs, base, strict=True)])
        cpf = sum(spent) / sum(fin) if sum(fin) else None
        out[name] = {"finished": interval(fin), "spent": interval(spent), "cost_per_finished": cpf,
                     "instances": interval([r["instances"] for r in rs]), "spent_minus_today": delta,
                     "every_finishable_finished": sum(r["finished"] == r["finishable"] for r in rs),
                     "per_seed": [{k: r[k] for k in ("finished", "finishable", "spent", "instances", "faults", "note")}
                                  for r in rs]}
        d = "" if name == "today" else f"{delta['mean']:+.3f} [{delta['ci95'][0]:+.3f}, {delta['ci95'][1]:+.3f}]"
        shown = f"{cpf:11.3f}" if cpf is not None else f"{'-':>11}"
        print(f"{name:48}{sum(fin) / len(fin):9.2f}{sum(spent) / len(spent):9.3f}{shown}"
              f"{sum(r['instances'] for r in rs) / len(rs):10.1f}{d:>26}")
    return out


if __name__ == "__main__":
    main()
