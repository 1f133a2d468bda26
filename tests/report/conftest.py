"""Hand-built report records: a 2 x 2 lr x warmup round, a capacity round with a seed repeat, failures."""

from __future__ import annotations

import pytest
from report_support import T0, attempt, cell, ev, eval_json, val_ev  # noqa: F401

from usim_tui.report.model import ReportData


@pytest.fixture
def data() -> ReportData:
    lr = "stages.operator.lr"
    wu = "stages.operator.warmup"
    curves = {"operator/train_loss": [(0, 1.0), (10, 0.5), (20, 0.3)],
              "operator/val_loss": [(10, 0.6), (20, 0.4)], "codec/train_loss": [(0, 2.0), (10, 1.0)]}
    cells = [
        cell("round_a_lr1e-3_w0pct", "round_a", "finished", ["lr=1e-3", "warmup=0%"], {lr: 1e-3, wu: 0.0},
             ev(0.30), cost=0.20, curves=curves, train_seconds=1500.0, params={"hidden_dim": 96}),
        cell("round_a_lr1e-3_w10pct", "round_a", "finished", ["lr=1e-3", "warmup=10%"], {lr: 1e-3, wu: 0.1},
             ev(0.34), cost=0.22, curves=curves, params={"hidden_dim": 96}),
        cell("round_a_lr3e-3_w0pct", "round_a", "finished", ["lr=3e-3", "warmup=0%"], {lr: 3e-3, wu: 0.0},
             ev(0.20, mass=0.05), cost=0.21, params={"hidden_dim": 96}),   # best rollout but fails mass gate
        cell("round_a_lr3e-3_w10pct", "round_a", "failed", ["lr=3e-3", "warmup=10%"], {lr: 3e-3, wu: 0.1},
             reason="exited_error", cost=0.05),
        cell("round_b_cap64", "round_b", "finished", ["cap64"], {"model.operator.hidden_dim": 64},
             ev(0.40), cost=0.10, params={"hidden_dim": 64}, config_hash="h64"),
        cell("round_b_cap64_seed18", "round_b", "finished", ["cap64_seed18"],
             {"model.operator.hidden_dim": 64, "seed": 18}, ev(0.42), cost=0.11, params={"hidden_dim": 64}),
        cell("round_b_cap128", "round_b", "pending", ["cap128"], {"model.operator.hidden_dim": 128}),
        cell("round_b_cap96", "round_b", "duplicate", ["cap96"], duplicate_of="round_a_lr1e-3_w0pct"),
    ]
    attempts = [
        attempt(1, "round_a_lr1e-3_w0pct", "finished", 0, 1800, spent=0.20),
        attempt(2, "round_a_lr1e-3_w10pct", "finished", 10, 1900, spent=0.22),
        attempt(3, "round_a_lr3e-3_w0pct", "finished", 20, 1850, spent=0.21),
        attempt(4, "round_a_lr3e-3_w10pct", "exited_error", 30, 100, spent=0.02, error="ImportError: LazyLinear\nx"),
        attempt(5, "round_a_lr3e-3_w10pct", "exited_error", 400, 100, spent=0.03, error="ImportError: LazyLinear",
                attempt_no=2),
        attempt(6, "round_b_cap64", "startup_timeout", 40, 0, spent=0.06, started=False),
        attempt(7, "round_b_cap64", "finished", 1000, 900, spent=0.04, attempt_no=2),
        attempt(8, "round_b_cap64_seed18", "finished", 1100, 900, spent=0.11),
    ]
    return ReportData(sweep="hand", provider="local", now=T0 + 4000, budget=1.0,
                      spent=sum(a.spent for a in attempts), planned_cost_per_cell=0.35, cells=cells,
                      attempts=attempts, crash_loop=None, startup_deadline_s=900)


# ---------------------------------------------------------------- a real ledger, driven like the controller does
@pytest.fixture
def demo_ledger(tmp_path, repo):
    """Build runs/demo/ledger.sqlite under tmp_path through the real Ledger API: `finished` cells ran to `done`
    with eval JSONs in their run dirs, the next one is running, the rest never started. Returns (path, rollouts)."""
    import json

    from usim_core.events import format_event
    from usim_core.sweep import expand
    from usim_tui.fleet.store.ingest import describe
    from usim_tui.fleet.store.ledger import Ledger, event_digest

    def build(finished: int = 4, failed_first: bool = False):
        sweep = expand(repo / "configs/sweeps/demo.yaml")
        path = tmp_path / "runs" / "demo" / "ledger.sqlite"
        led = Ledger(path)
        led.ensure_sweep(sweep)
        rollouts = {}
        t = T0
        for i, c in enumerate(sweep.cells):
            if i > finished:
                break
            attempts = [("exited_error", 1), ("finished", 2)] if failed_first and i == 0 else [("finished", 1)]
            if i == finished:
                attempts = [(None, 1)]  # still running
            for reason, n in attempts:
                run_dir = tmp_path / "runs" / "demo" / c.name / str(n)
                label = f"usim:demo:{c.name}:{n}"
                aid = led.new_attempt("demo", c.name, n, label, str(run_dir), t)
                started = t + 30
                led.set_attempt(aid, state="running", provider_id=f"local-{aid}", machine_id="localhost",
                                gpu="cpu", price_per_hour=0.35, started_at=started)
                led.close_create_intent(aid, "ok", t + 1)

                def event(kind, when, aid=aid, c=c, **fields):
                    e = json.loads(format_event(kind, **fields)[len("@usim "):])
                    e["t"] = when
                    led.add_event("demo", when, kind, describe(e), attempt_id=aid, cell=c.name,
                                  data=e, digest=event_digest(aid, e))

                event("started", started + 1)
                if reason == "exited_error":
                    event("error", started + 5, reason="ImportError: cannot import name 'LazyLinear'")
                    end = started + 10
                    led.set_attempt(aid, state="destroyed", reason=reason, ended_at=end,
                                    error_event="ImportError: cannot import name 'LazyLinear'",
                                    spent=round(0.35 * (end - t) / 3600, 6))
                    t = end
                    continue
                for s, stage in enumerate(("codec", "operator")):
                    event("stage_start", started + 2 + 100 * s, stage=stage)
                    for step in range(0, 50, 10):
                        loss = (1.0 + s) / (1 + step) + 0.01 * i
                        led.add_metrics(aid, step, {f"{stage}/loss": loss}, started + step)
                        if step % 20 == 0:
                            led.add_metrics(aid, step, {f"{stage}/val_loss": 1.1 * loss}, started + step)
                    event("stage_end", started + 90 + 100 * s, stage=stage)
                if reason is None:
                    led.set_attempt(aid, stage="operator", step=40, spent=round(0.35 * 300 / 3600, 6))
                    continue
                rollout = round(0.2 + 0.05 * i, 4)
                rollouts[c.name] = rollout
                (run_dir / "eval").mkdir(parents=True, exist_ok=True)
                for name in ("small", "full"):
                    doc = eval_json(name, rollout if name == "full" else rollout + 0.1, i + 1)
                    (run_dir / "eval" / f"{name}.json").write_text(json.dumps(doc))
                event("eval", started + 250, name="full", metrics={"nrmse_frame": rollout})
                event("done", started + 260)
                end = started + 270
                led.set_attempt(aid, state="destroyed", reason="finished", ended_at=end, done_event=1,
                                spent=round(0.35 * (end - t) / 3600, 6))
                led.set_cell("demo", c.name, state="finished", full_metrics={"nrmse_frame": rollout})
                t = end
        led.close()
        return path, rollouts

    return build
