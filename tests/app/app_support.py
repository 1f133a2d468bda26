"""A fixed sweep snapshot (fixed clock, seeded data) for the app tests; plain module so tests can import it."""

from __future__ import annotations

import math
import random

from usim_tui.fleet.store.snapshot import AttemptView, BudgetView, CellView, EventView, SweepSnapshot

NOW = 1_761_040_800.0  # 2025-10-21 10:00:00 UTC


def loss_curve(rng: random.Random, n: int, start: float) -> list[tuple[int, float]]:
    return [(s * 10, start * math.exp(-s / 25) * (1 + 0.05 * rng.random())) for s in range(n)]


def make_snapshot(paused: bool = False, spent: float = 2.10) -> tuple[SweepSnapshot, dict, dict]:
    rng = random.Random(0)
    cells, attempts, series, events = [], [], {}, {}
    lrs, warmups = ("2e-4", "3e-4", "4.5e-4"), ("3%", "5%", "6%")
    states = ["finished", "finished", "running", "failed", "running", "launching", "pending", "pending", "duplicate"]
    aid = 0
    for i, (lr, w) in enumerate((a, b) for a in lrs for b in warmups):
        name = f"round_a_lr{lr}_w{w.rstrip('%')}pct"
        state = states[i]
        metrics = {"nrmse_frame": 0.08 + 0.01 * i, "nrmse_rollout": 0.085 + 0.01 * i, "mass_drift": 1e-4 * (i + 1),
                   "energy_violation": 0.0 if i != 1 else 5e-3} if state == "finished" else {}
        cells.append(CellView(name=name, round="round_a", tags=("round-a", f"lr={lr}", f"warmup={w}"),
                              overrides={"stages.operator.lr": float(lr), "stages.operator.warmup": float(w[:-1]) / 100},
                              state=state, attempts=0 if state in ("pending", "duplicate") else 1 + (state == "failed"),
                              duplicate_of="round_a_lr4.5e-4_w5pct" if state == "duplicate" else None,
                              metrics=metrics, cost=0.31 + 0.02 * i if state == "finished" else 0.0,
                              reason="exited_error" if state == "failed" else None))
        n_att = {"finished": 1, "running": 1, "failed": 2, "launching": 1}.get(state, 0)
        for k in range(1, n_att + 1):
            aid += 1
            st = {"finished": "destroyed", "running": "running", "launching": "loading"}[state] if state != "failed" \
                else ("destroyed" if k == 1 else "exited")
            curve = loss_curve(rng, 60 if state != "launching" else 0, 1.0 + i * 0.1)
            series[aid] = {"operator/train_loss": curve, "operator/val_loss": [(s, v * 1.2) for s, v in curve[::5]],
                           "codec/train_loss": [(s, v * 0.5) for s, v in curve[:30]]}
            started = NOW - 3000 + 200 * i if state != "launching" else None
            attempts.append(AttemptView(
                attempt_id=aid, cell=name, attempt=k, state=st,
                reason={"finished": "finished", "failed": "exited_error" if k == 1 else None}.get(state),
                provider_id=f"2710{aid:03d}", label=f"usim:overnight_sota:{name}:{k}", gpu="RTX 4090",
                machine_id=f"m{100 + aid}", price_per_hour=0.30 + 0.01 * aid, created_at=NOW - 3200 + 200 * i,
                started_at=started, ended_at=NOW - 600 if st in ("destroyed", "exited") else None,
                stage=None if state == "launching" else "operator", epoch=None if state == "launching" else 4 + i,
                step=None if state == "launching" else 590, last_loss=curve[-1][1] if curve else None,
                loss_history=tuple(v for _, v in curve), spent=0.1 * aid))
            events[aid] = [EventView(t=NOW - 3000 + 60 * j, attempt_id=aid, cell=name, kind=kind, message=msg)
                           for j, (kind, msg) in enumerate([("started", "host up"), ("stage_start", "codec"),
                                                            ("stage_end", "codec"), ("stage_start", "operator"),
                                                            ("metric", "operator/train_loss 0.0123 step 590")])]
    for rnd, items in (("round_b", ("cap64", "cap96", "cap128")), ("round_c", ("cap128_ttc", "extended", "tokens48"))):
        for j, item in enumerate(items):
            state = "finished" if (rnd, j) == ("round_b", 0) else "pending"
            cells.append(CellView(name=f"{rnd}_{item}", round=rnd, tags=(rnd.replace("_", "-"), item), overrides={},
                                  state=state, attempts=int(state == "finished"),
                                  metrics={"nrmse_frame": 0.075, "nrmse_rollout": 0.08, "mass_drift": 0.02, "energy_violation": 0.0}
                                  if state == "finished" else {}, cost=0.44 if state == "finished" else 0.0))
    budget = BudgetView(budget=5.25, spent=spent, committed=1.05, burn_per_hour=0.96, storage_per_hour=0.012,
                        projected_total=4.70, projected_finish=NOW + 3 * 3600, attempt_price=0.35, attempt_cost=0.35)
    snap = SweepSnapshot(sweep="overnight_sota", provider="vast", now=NOW, paused=paused, auto=True,
                         cells=tuple(cells), attempts=tuple(attempts), budget=budget,
                         events=(EventView(NOW - 30, None, None, "policy", "launching paused: none"),),
                         provider_status="ok", controller_pid=4242, controller_seen_at=NOW - 2,
                         controller_state="running")
    return snap, series, events


SIZE = (160, 50)


async def ready(app, pilot) -> None:
    """Until the first poll has reached the screen (the instances table has rows)."""
    for _ in range(100):
        await pilot.pause(0.02)
        if app.polls and app.main.table.row_count:
            return
    raise AssertionError("the first poll never reached the screen")


def cursor_to(app, key: str) -> None:
    """Put the instances table's cursor on the row with this key (an attempt id, or cell:<name>)."""
    app.main.table.move_cursor(row=app.main.table.get_row_index(key))
