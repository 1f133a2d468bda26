"""Issue 16 on a real tiny run: exact mass in every mode, the primary mode chosen on val only, every stochastic
stage's diagnostics, the coarse-solver reference with CPU costs, and no evaluation across domains."""

from __future__ import annotations

import copy

import pytest

from usim_core.config import ConfigError
from usim_core.eval.evaluate import evaluate_checkpoint
from usim_core.eval.selection import MIN_GAIN


def test_mass_is_conserved_to_round_off_in_every_mode(full_report):
    for mode, res in full_report["modes"].items():
        assert res["metrics"]["mass_drift"] <= 1e-6, mode
        assert res["metrics"]["energy_violation"] == pytest.approx(0, abs=1e-6), mode


def test_primary_mode_is_chosen_on_val_with_the_val_numbers(trained, full_report):
    ckpt, bundle = trained
    sel = full_report["selection"]
    assert sel["split"] == "val" and full_report["split"] == "test"
    val = evaluate_checkpoint(ckpt, "val", bundle=bundle, pictures=False)
    for mode, score in sel["nrmse_frame"].items():  # the very numbers a val evaluation reports
        assert score == pytest.approx(val["modes"][mode]["metrics"]["nrmse_frame"], rel=1e-6)
    op = sel["nrmse_frame"]["operator"]
    gains = sel["gain_over_operator"]
    for mode, g in gains.items():  # operator minus mode, paired over the same val trajectories
        assert g["gain"] == pytest.approx(op - sel["nrmse_frame"][mode], rel=1e-6, abs=1e-12)
        assert g["trajectories"] == sel["trajectories"]
    winners = [m for m, g in gains.items() if g["gain"] > MIN_GAIN * op and g["gain"] - g["ci95"] > 0]
    assert sel["beats_operator"] == {m: m in winners for m in ("diffusion", "consistency")}
    expected = min(winners, key=sel["nrmse_frame"].get) if winners else "operator"
    assert full_report["primary_mode"] == val["primary_mode"] == expected


def test_each_stochastic_stage_reports_its_diagnostics(full_report):
    c = full_report["corrector"]
    for key in ("teacher_r2_first", "teacher_r2_sample", "diffusion_corr", "consistency_corr",
                "student_teacher_err", "spread_teacher", "spread_student", "spread_ratio"):
        assert c[key] is not None, key
    assert -1 <= c["diffusion_corr"] <= 1 and -1 <= c["consistency_corr"] <= 1
    assert c["spread_ratio"] == pytest.approx(c["spread_student"] / c["spread_teacher"])


def test_coarse_solver_reference_and_cpu_costs_sit_beside_the_model(full_report):
    ref = full_report["baselines"]["coarse_solver"]
    grids = ref["grids"]
    assert [g["nx"] for g in grids] == sorted(g["nx"] for g in grids) and grids[-1]["nx"] == full_report["domain"]["nx"]
    assert all(g["cpu_s_per_traj"] > 0 for g in grids)
    model_cpu = full_report["model_cpu_s_per_traj"]
    assert model_cpu > 0
    if ref["matched_to_model"]:
        assert ref["cpu_s_per_traj"] <= model_cpu
        assert all(g["cpu_s_per_traj"] > model_cpu for g in grids if g["nx"] > ref["nx"])
    # the solver on the data's own grid is far better than persistence
    pers = full_report["baselines"]["persistence"]["metrics"]["nrmse_frame"]
    assert grids[-1]["nrmse_frame"] < 0.1 * pers


def test_a_checkpoint_is_never_evaluated_on_another_domain(trained):
    ckpt, bundle = trained
    other = copy.copy(bundle)
    other.length = 2.0
    with pytest.raises(ConfigError, match="length 1 .* length 2"):
        evaluate_checkpoint(ckpt, "test", bundle=other, pictures=False)
