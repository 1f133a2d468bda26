"""Hand-built report records: a 2 x 2 lr x warmup round, a capacity round with a seed repeat, failures."""

from __future__ import annotations

import pytest

from usim_tui.report.model import AttemptRecord, CellRecord, EvalRecord, Phase, ReportData

T0 = 1_700_000_000.0


def ev(rollout: float, one: float = 0.01, mass: float = 0.001, energy: float = 0.0, gain: float | None = 0.02):
    return EvalRecord(split="full", metrics={"nrmse_rollout": rollout, "nrmse_1step": one, "mass_drift": mass,
                                             "energy_violation": energy},
                      baselines={"persistence": {"nrmse_rollout": 0.64, "nrmse_1step": 0.05},
                                 "fno": {"nrmse_rollout": 0.31}}, ttc_gain=gain, source="hand")


def cell(name, rnd, state, tags=(), overrides=None, metrics=None, cost=0.0, **kw) -> CellRecord:
    return CellRecord(name=name, round=rnd, state=state, tags=[rnd.replace("_", "-"), *tags],
                      overrides=overrides or {}, evals=[metrics] if metrics else [], cost=cost,
                      attempts=1 if state != "pending" else 0, **kw)


def attempt(i, cell_name, reason, start, run_s, price=0.4, spent=None, started=True, error=None, attempt_no=1):
    created = T0 + start
    started_at = created + 60 if started else None
    ended = created + 60 + run_s if reason else None
    phases = [Phase("loading", created, started_at or ended or created + 60)]
    if started_at:
        phases.append(Phase("running", started_at, ended or started_at + run_s))
    return AttemptRecord(attempt_id=i, cell=cell_name, attempt=attempt_no, state="destroyed" if reason else "running",
                         reason=reason, price_per_hour=price, created_at=created, started_at=started_at,
                         ended_at=ended, spent=spent if spent is not None else price * (run_s + 60) / 3600,
                         gpu="RTX 4090", machine_id=f"m{i}", error=error, phases=phases)


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
