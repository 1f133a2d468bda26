"""Fleet bench: the earlier night rehearsed over 20 seeds (usim vs naive), a 1000-cell sweep with 200
concurrent instances (API calls, controller CPU per poll, memory), and the budget cap at 200 instances (what the
emulator bills past a $30 budget, against one poll's burn). Run: .venv/bin/python bench/fleet.py
[--seeds N] [--out FILE.json] [--cells N] [--concurrency N] [--polls N] [--skip-night] [--skip-scale] [--skip-cap]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stats import interval, paired_bootstrap  # noqa: E402  (bench/ is the script's own directory)

from usim_core.sweep import Cell, expand  # noqa: E402
from usim_tui.emulator.faults import load_faults  # noqa: E402
from usim_tui.emulator.rehearse import rehearse_naive, rehearse_usim  # noqa: E402


def night(seeds: int, out: str | None) -> None:
    sweep = expand(ROOT / "configs/sweeps/overnight_sota.yaml")
    prof = load_faults(ROOT / "configs/faults/seed_night.yaml")
    rows = {"usim": [], "naive": []}
    t = time.time()
    for seed in range(seeds):
        rows["usim"].append(asyncio.run(rehearse_usim(sweep, prof, seed)).to_dict())
        rows["naive"].append(asyncio.run(rehearse_naive(sweep, prof, seed)).to_dict())
    print(f"== overnight_sota under seed_night, {seeds} seeds ({time.time() - t:.0f} s)")
    print(f"{'':26}{'usim':>12}{'naive':>12}{'naive/usim':>12}")
    stats = {}
    for name, key in (("finished /15 (mean)", "finished"), ("spent $ (mean)", "spent"),
                      ("overshoot $ (mean)", "overshoot")):
        u = statistics.mean(r[key] for r in rows["usim"])
        n = statistics.mean(r[key] for r in rows["naive"])
        stats[key] = (u, n)
        print(f"{name:26}{u:12.2f}{n:12.2f}{(n / u if u else float('nan')):12.2f}")
    for p in rows:   # the spread over seeds: mean ± half-width of the 95% interval
        f, s = interval([r["finished"] for r in rows[p]]), interval([r["spent"] for r in rows[p]])
        print(f"{p}: finished {f['mean']:.2f} ± {f['ci95']:.2f}, spent ${s['mean']:.2f} ± {s['ci95']:.2f} "
              f"(95% interval over {f['n']} seeds)")
    cpf = {p: sum(r["spent"] for r in rows[p]) / max(1, sum(r["finished"] for r in rows[p])) for p in rows}
    print(f"{'$ per finished config':26}{cpf['usim']:12.3f}{cpf['naive']:12.3f}{cpf['naive'] / cpf['usim']:12.2f}")
    for p in rows:
        over = sum(r["overshoot"] > 0 for r in rows[p])
        worst = max(r["finished"] for r in rows[p]), min(r["finished"] for r in rows[p])
        full = sum(r["finished"] == r["finishable"] for r in rows[p])
        print(f"{p}: seeds over budget {over}/{seeds}; finished range {worst[1]}..{worst[0]}; every finishable "
              f"cell finished (not a duplicate, not the bad build) in {full}/{seeds} seeds")
    delays = [r["stuck_to_replacement_s"]["median"] for r in rows["usim"] if r["stuck_to_replacement_s"]["median"]]
    if delays:
        print(f"usim stuck->replacement median over seeds: {statistics.median(delays) / 60:.1f} min")
    paired = {k: paired_bootstrap([n[k] - u[k] for u, n in zip(rows["usim"], rows["naive"], strict=True)])
              for k in ("finished", "spent")}
    for k, d in paired.items():
        print(f"naive - usim, {k}: {d['mean']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] "
              "(95% paired bootstrap over seeds)")
    if out:
        keep = ("finished", "finishable", "spent", "overshoot", "instances", "note")
        doc = {"command": " ".join(["python", "bench/fleet.py", *sys.argv[1:]]), "sweep": sweep.name,
               "faults": prof.name, "seeds": list(range(seeds)),
               "summary": {p: {"finished": interval([r["finished"] for r in rows[p]]),
                               "spent": interval([r["spent"] for r in rows[p]]), "cost_per_finished": cpf[p],
                               "seeds_over_budget": sum(r["overshoot"] > 0 for r in rows[p]),
                               "every_finishable_finished": sum(r["finished"] == r["finishable"] for r in rows[p])}
                           for p in rows},
               "naive_minus_usim": paired,
               "per_seed": {p: [{k: r.get(k) for k in keep} for r in rows[p]] for p in rows}}
        Path(out).write_text(json.dumps(doc, indent=1, default=float) + "\n")
        print(f"wrote {out}")
    notes = {r["note"] for r in rows["usim"] if r["note"]}
    if notes:
        print("usim notes:", "; ".join(sorted(notes)))


def scale(cells: int, concurrency: int, polls: int) -> None:
    base = expand(ROOT / "configs/sweeps/overnight_sota.yaml")
    sweep = copy.copy(base)
    sweep.spec = base.spec.model_copy(update={"name": "scale", "concurrency": concurrency, "budget": 1e6})
    template = base.cells[0]
    sweep.cells = [Cell(name=f"c{i:04d}", round="r", tags=[], overrides={}, config=template.config,
                        config_hash=f"{i:016x}") for i in range(cells)]
    prof = load_faults(ROOT / "configs/faults/none.yaml")
    slow = {k: (5 * lo, 5 * hi) for k, (lo, hi) in prof.stages.model_dump().items()}   # runs outlast the budget
    prof = prof.model_copy(update={"stages": prof.stages.model_copy(update=slow)})
    samples: list[tuple[int, float, int, dict[str, int]]] = []
    last: dict = {"calls": 0, "cpu": time.process_time(), "groups": {}}

    def on_tick(ctl, emu) -> None:
        now_cpu = time.process_time()
        live = sum(1 for i in emu.instances.values() if i.destroyed_at is None)
        groups = dict(emu.calls.by_group)
        delta = {g: n - last["groups"].get(g, 0) for g, n in groups.items() if n - last["groups"].get(g, 0)}
        samples.append((emu.calls.total - last["calls"], now_cpu - last["cpu"], live, delta))
        last["calls"], last["cpu"], last["groups"] = emu.calls.total, now_cpu, groups
        if len(samples) >= polls:
            raise _Stop

    t = time.time()
    try:
        asyncio.run(rehearse_usim(sweep, prof, 0, per_gpu=max(120, 3 * concurrency), poll_interval=30.0,
                                  on_tick=on_tick))
    except _Stop:
        pass
    steady = [s for s in samples if s[2] >= concurrency * 0.95] or samples[-3:]
    calls = statistics.median(s[0] for s in steady)
    cpu = statistics.median(s[1] for s in steady)
    list_calls = math.ceil(concurrency / 25)
    groups = sorted({g for s in steady for g in s[3]})
    per_group = ", ".join(f"{g} {statistics.median(s[3].get(g, 0) for s in steady):g}" for g in groups)
    print(f"== scale: {cells} cells, {concurrency} concurrent, {len(samples)} polls ({time.time() - t:.0f} s)")
    print(f"API calls per steady poll: {calls:.0f} (max {max(s[0] for s in steady)}); ceil(N/25) = {list_calls}; "
          f"calls - ceil(N/25) = {calls - list_calls:.0f}")
    print(f"  median per group: {per_group}")
    print(f"controller+emulator CPU per steady poll: {cpu * 1000:.0f} ms; max RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


class _Stop(Exception):
    pass


def cap(instances: int = 200, budget: float = 30.0, poll: float = 30.0) -> None:
    """`instances` cells all running at once with a budget they cross within the hour, the emulator pacing
    destroys as Vast does (3 s each): the bill past the budget against one poll interval of their burn."""
    base = expand(ROOT / "configs/sweeps/overnight_sota.yaml")
    sweep = copy.copy(base)
    # a planning guess far too low (1 min per cell), so every cell launches and the cap, not the launch check,
    # is what stops the spend
    planning = base.spec.planning.model_copy(update={"hours_per_cell": 1 / 60})
    provider = base.spec.provider.model_copy(update={"max_dph": 1.0, "min_reliability": 0.0})  # enough offers
    sweep.spec = base.spec.model_copy(update={"name": "cap", "concurrency": instances, "budget": budget,
                                              "planning": planning, "provider": provider})
    sweep.cells = [Cell(name=f"c{i:04d}", round="r", tags=[], overrides={}, config=base.cells[0].config,
                        config_hash=f"{i:016x}") for i in range(instances)]
    prof = load_faults(ROOT / "configs/faults/none.yaml")
    slow = {k: (5 * lo, 5 * hi) for k, (lo, hi) in prof.stages.model_dump().items()}   # runs outlast the budget
    prof = prof.model_copy(update={"stages": prof.stages.model_copy(update=slow)})
    at_cap: dict[str, float] = {}

    def on_tick(ctl, emu) -> None:   # once the cap fired: how many it destroyed, and when the provider took them
        if "n" not in at_cap and ctl.ledger.sweep_row(ctl.name).budget_stop:
            capped = [a for a in ctl.ledger.attempts(ctl.name) if a.reason == "budget"]
            fired = next(e.t for e in ctl.ledger.snapshot(ctl.name).events if e.kind == "budget")
            at_cap.update(n=len(capped), took=max(a.ended_at or fired for a in capped) - fired)

    t = time.time()
    res = asyncio.run(rehearse_usim(sweep, prof, 0, per_gpu=instances + 20, poll_interval=poll, night_h=3.0,
                                    on_tick=on_tick))
    burn = instances * sweep.spec.provider.max_dph * poll / 3600   # the most one poll of all of them can cost
    over = max(0.0, res.spent - budget)
    print(f"== cap: {instances} cells at once, budget ${budget:.2f}, poll {poll:.0f} s ({time.time() - t:.0f} s)")
    print(f"billed by the emulator ${res.spent:.2f} ({(res.spent / budget - 1) * 100:+.1f}%); overshoot ${over:.2f} "
          f"= {over / burn:.2f} x one poll's burn at max_dph (${burn:.2f}); ledger estimate ${res.estimated:.2f}")
    if "n" in at_cap:
        print(f"the cap destroyed {at_cap['n']:.0f} instances; the provider had taken every destroy "
              f"{at_cap['took']:.1f} virtual s after the cap fired")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--out", help="write the night's figures (per seed and summarised) as JSON here")
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--polls", type=int, default=45)
    ap.add_argument("--skip-night", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-cap", action="store_true")
    a = ap.parse_args()
    if not a.skip_night:
        night(a.seeds, a.out)
    if not a.skip_scale:
        scale(a.cells, a.concurrency, a.polls)
    if not a.skip_cap:
        cap()
