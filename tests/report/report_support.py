"""Hand-built report records and eval JSONs for the report tests; plain module so tests can import it."""

from __future__ import annotations

from usim_tui.report.model import AttemptRecord, CellRecord, EvalRecord, Phase

T0 = 1_700_000_000.0


def ev(rollout: float, one: float = 0.01, mass: float = 0.001, energy: float = 0.0, gain: float | None = 0.02):
    return EvalRecord(split="full", metrics={"nrmse_frame": rollout, "nrmse_rollout": rollout + 0.01, "nrmse_1step": one, "mass_drift": mass,
                                             "energy_violation": energy},
                      baselines={"persistence": {"nrmse_frame": 0.64, "nrmse_rollout": 0.65, "nrmse_1step": 0.05},
                                 "fno": {"nrmse_frame": 0.31, "nrmse_rollout": 0.32}}, ttc_gain=gain, source="hand")


def val_ev(rollout: float, **kw) -> EvalRecord:
    """The small eval on val, as every run writes beside its full (test) eval."""
    e = ev(rollout, **kw)
    e.split = "small"
    return e


def cell(name, rnd, state, tags=(), overrides=None, metrics=None, cost=0.0, **kw) -> CellRecord:
    """`metrics` is the full (test) eval; a val eval with the same numbers rides beside it."""
    val = EvalRecord(**{**metrics.__dict__, "split": "small"}) if metrics else None
    return CellRecord(name=name, round=rnd, state=state, tags=[rnd.replace("_", "-"), *tags],
                      overrides=overrides or {}, evals=[metrics, val] if metrics else [], cost=cost,
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


METRIC_KEYS = ("nrmse_1step", "nrmse_frame", "nrmse_rollout", "rmse", "max_err", "crmse", "brmse", "frmse_low", "frmse_mid",
               "frmse_high", "mass_drift", "energy_violation", "pde_residual")


def eval_json(name: str, rollout: float, seed: int) -> dict:
    """An eval report in the schema of usim_core/eval/schema.py (validated by the tests)."""
    metrics = {k: round(0.001 * (i + 1) + 0.0001 * seed, 6) for i, k in enumerate(METRIC_KEYS)}
    metrics["nrmse_frame"] = rollout  # the ranked (primary) metric
    persistence = {k: 0.5 for k in METRIC_KEYS}

    def mode(m: dict) -> dict:
        return {"metrics": m, "nrmse_by_horizon": {"1": m["nrmse_1step"], "16": m["nrmse_rollout"]},
                "nrmse_curve": [m["nrmse_1step"], m["nrmse_rollout"]]}

    return {"schema_version": 1, "name": name, "checkpoint": "checkpoints/consistency_distill.pt",
            "stage": "consistency_distill", "step": 60, "config_hash": "c" * 12, "architecture": "a" * 12,
            "manifest_hash": "m" * 12, "checkpoint_manifest_hash": "k" * 12, "split": "test" if name == "full" else "val", "rows_hash": "r" * 12,
            "trajectories": 4, "steps": 40, "horizons": [1, 16], "dt": 0.05, "primary_mode": "consistency",
            "metrics": metrics, "modes": {"consistency": mode(metrics)},
            "baselines": {"persistence": mode(persistence), "fno": None, "fno_note": "no FNO checkpoint"},
            "ttc": {"enabled": True, "candidates": 4, "max_evaluations": 40, "evaluations": 12.0,
                    "gain": 0.01 * seed, "mode": "diffusion"},
            "codec_nrmse": 0.01, "pde_residual_true": 0.5, "pictures": [], "seconds": 3.0}
