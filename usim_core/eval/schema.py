"""The eval JSON, as a strict pydantic model (no torch). `validate_report(d)` checks a written report;
`EvalReport.model_json_schema()` is the documented JSON schema (docs/eval.md)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION = 2  # 2: nrmse_frame, domain, selection on val, corrector diagnostics, coarse solver, CPU costs
METRIC_KEYS: tuple[str, ...] = (
    "nrmse_1step", "nrmse_frame", "nrmse_rollout", "rmse", "max_err", "crmse", "brmse",
    "frmse_low", "frmse_mid", "frmse_high", "mass_drift", "energy_violation", "pde_residual",
)
PRIMARY_METRIC = "nrmse_frame"  # PDEBench's per-frame nRMSE: what runs are ranked, gated and selected by


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metrics(Strict):
    """Averages over trajectories of per-trajectory values (definitions in docs/eval.md). Non-negative;
    NaN or inf is written as null (a diverged rollout), never as a number."""

    nrmse_frame: float | None = Field(None, ge=0, description="PDEBench's nRMSE: per-frame ratio averaged over "
                                      "frames and trajectories (the primary metric; absent in schema v1)")
    nrmse_1step: float | None = Field(ge=0)
    nrmse_rollout: float | None = Field(ge=0)
    rmse: float | None = Field(ge=0)
    max_err: float | None = Field(ge=0)
    crmse: float | None = Field(ge=0)
    brmse: float | None = Field(ge=0)
    frmse_low: float | None = Field(ge=0)
    frmse_mid: float | None = Field(ge=0)
    frmse_high: float | None = Field(ge=0)
    mass_drift: float | None = Field(ge=0)
    energy_violation: float | None = Field(ge=0)
    pde_residual: float | None = Field(ge=0)


class TTCResult(Strict):
    mode: str = Field(description="the stochastic mode TTC was applied to")
    candidates: int = Field(ge=1)
    max_evaluations: int = Field(ge=1, description="budget of reward evaluations per trajectory")
    lookahead: int = Field(ge=0)
    evaluations: float = Field(ge=0, description="mean reward evaluations spent per trajectory")
    max_evaluations_spent: int = Field(ge=0, description="most spent by any trajectory (<= budget)")
    scored_steps: int = Field(ge=0)
    distinct_choices: int = Field(ge=0, description="distinct candidate indices chosen across trajectories")
    nrmse_rollout_without: float | None = Field(ge=0)
    nrmse_rollout_with: float | None = Field(ge=0)
    gain: float | None = Field(description="(without - with) / without on the same trajectories; may be <= 0")


class ModeResult(Strict):
    metrics: Metrics
    nrmse_by_horizon: dict[str, float | None] = Field(description="per-frame nRMSE at each horizon (steps)")
    nrmse_curve: list[float | None] = Field(description="per-frame nRMSE for every step 1..T (for plots)")
    ttc: TTCResult | None = None
    cpu_s_per_traj: float | None = Field(None, ge=0, description="process CPU seconds of the rollout per trajectory")


class CoarseGrid(Strict):
    nx: int = Field(ge=1)
    cpu_s_per_traj: float = Field(ge=0)
    nrmse_frame: float | None = Field(ge=0)
    nrmse_rollout: float | None = Field(ge=0)


class CoarseSolver(CoarseGrid):
    """The project's own solver on the grid whose CPU cost per trajectory matches the model's (eval/coarse.py)."""

    matched_to_model: bool = Field(description="false: even the coarsest grid cost more than the model")
    grids: list[CoarseGrid] = Field(description="every measured grid, coarsest first")


class Baselines(Strict):
    persistence: ModeResult
    fno: ModeResult | None = None
    fno_note: str | None = Field(None, description="why the FNO baseline is absent, when it is")
    coarse_solver: CoarseSolver | None = None


class TTCSummary(Strict):
    enabled: bool
    candidates: int = Field(ge=1)
    max_evaluations: int = Field(ge=1)
    evaluations: float = Field(ge=0, description="mean per trajectory, in the primary TTC mode")
    gain: float | None = Field(description="gain of the primary TTC mode; null when TTC did not run")
    mode: str | None = None


class Selection(Strict):
    split: Literal["val"]
    trajectories: int = Field(ge=1)
    nrmse_frame: dict[str, float | None] = Field(description="per-frame rollout nRMSE of each mode on val")
    beats_operator: dict[str, bool] = Field(description="stochastic mode -> lower than the operator on val by more "
                                                        "than MIN_GAIN and than the trajectories' noise")
    gain_over_operator: dict[str, dict[str, float | int | None]] | None = Field(
        None, description="stochastic mode -> {gain, ci95, trajectories}: operator minus mode per-frame nRMSE, mean "
                          "over val trajectories with its paired 95% half-width (absent before 2026-12-05)")
    primary_mode: str | None


class Corrector(Strict):
    """Diagnostics of the stochastic stages on teacher-forced pairs (eval/stages.py); empty before them."""

    pairs: int | None = Field(None, ge=1)
    teacher_r2_first: float | None = None
    teacher_r2_sample: float | None = None
    diffusion_corr: float | None = None
    spread_teacher: float | None = Field(None, ge=0)
    consistency_corr: float | None = None
    student_teacher_err: float | None = Field(None, ge=0)
    spread_student: float | None = Field(None, ge=0)
    spread_ratio: float | None = Field(None, ge=0)


class Domain(Strict):
    length: float = Field(gt=0)
    nx: int = Field(ge=1)
    dx: float = Field(gt=0)
    dt: float = Field(gt=0)


class GateResult(Strict):
    status: Literal["pass", "fail", "self", "incomparable"]
    metric: str
    tolerance: float
    value: float | None
    champion_value: float | None
    champion_source: str
    reason: str


class EvalReport(Strict):
    schema_version: Literal[1, 2] = SCHEMA_VERSION
    name: str = Field(description="small | full | a free label")
    checkpoint: str
    stage: str
    step: int = Field(ge=0)
    config_hash: str = Field(description="config hash of the checkpoint's own run config")
    architecture: str = Field(description="architecture fingerprint of the checkpoint")
    manifest_hash: str = Field(description="hash of the evaluated data's manifest (files, rows per split, settings)")
    checkpoint_manifest_hash: str = Field(description="manifest hash of the data the checkpoint was trained on")
    split: Literal["val", "test"]
    rows_hash: str = Field(description="hash of the evaluated (file hash, row) list")
    trajectories: int = Field(ge=1)
    steps: int = Field(ge=1, description="rollout length (frames after the initial state)")
    horizons: list[int]
    dt: float = Field(gt=0)
    codec_nrmse: float | None = Field(ge=0, description="per-frame nRMSE of decode(encode(u)): the codec's floor")
    pde_residual_true: float | None = Field(ge=0, description="pde_residual of the true frames: the score of a perfect prediction at this dt")
    domain: Domain | None = Field(None, description="length, grid and frame spacing of the evaluated data")
    primary_mode: str = Field(description="the mode whose numbers are in `metrics`, chosen on val")
    selection: Selection | None = Field(None, description="how the primary mode was chosen (val only)")
    model_cpu_s_per_traj: float | None = Field(None, ge=0, description="CPU seconds per trajectory, primary mode")
    corrector: Corrector | None = None
    metrics: Metrics
    modes: dict[str, ModeResult] = Field(description="operator, diffusion, consistency and <mode>+ttc")
    skipped_modes: dict[str, str] = Field(default_factory=dict, description="mode -> why it was not run")
    baselines: Baselines
    ttc: TTCSummary
    pictures: list[str] = Field(default_factory=list, description="PNG files beside the JSON")
    seconds: float = Field(ge=0)
    gate: GateResult | None = Field(None, description="set by `usim-core gate`: comparison with a frozen champion")

    @field_validator("modes")
    @classmethod
    def _at_least_one(cls, v: dict[str, ModeResult]) -> dict[str, ModeResult]:
        if not v:
            raise ValueError("at least one mode must have been evaluated")
        return v


def clean(x: float) -> float | None:
    """NaN/inf -> None, so the JSON stays valid and a diverged run is visible as null."""
    return x if math.isfinite(x) else None


def validate_report(data: dict) -> EvalReport:
    try:
        return EvalReport.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"eval report does not match schema v{SCHEMA_VERSION}:\n{exc}") from None
