"""evaluate_checkpoint end to end on a checkpoint from a real (tiny, step-capped) training run."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from usim_core.config import ConfigError, EvalSetConfig, load_config
from usim_core.eval.evaluate import evaluate_checkpoint
from usim_core.eval.schema import METRIC_KEYS, EvalReport, validate_report


def test_full_eval_report_is_complete_and_valid(trained, full_report, tiny_config_file):
    ckpt, bundle = trained
    NT = bundle.test.u.shape[1]
    rep = full_report
    out = ckpt.parent.parent / "eval" / "full.json"
    assert json.loads(out.read_text()) == rep
    validate_report(rep)
    assert rep["trajectories"] == len(bundle.test.rows) == 4 and rep["steps"] == NT - 1
    assert rep["horizons"] == [1, 4, NT - 1]  # 99 is beyond the trajectory: dropped; the end is always there
    assert set(rep["modes"]) == {"operator", "diffusion", "consistency", "diffusion+ttc", "consistency+ttc"}
    assert rep["codec_nrmse"] is not None and rep["codec_nrmse"] > 0  # a trained, imperfect codec
    # the solver's data nearly solves the PDE; persistence (a frozen field) does not
    assert rep["pde_residual_true"] < rep["baselines"]["persistence"]["metrics"]["pde_residual"]
    # the primary mode is chosen on val (issue 16), no longer "the richest mode"; its numbers are the headline
    assert rep["primary_mode"] == rep["selection"]["primary_mode"]
    assert rep["metrics"] == rep["modes"][rep["primary_mode"]]["metrics"]
    assert rep["manifest_hash"] == bundle.manifest_hash
    assert rep["config_hash"] == load_config(tiny_config_file).config_hash()
    for res in (*rep["modes"].values(), rep["baselines"]["persistence"], rep["baselines"]["fno"]):
        assert set(res["metrics"]) == set(METRIC_KEYS)
        assert all(v is not None and v >= 0 for v in res["metrics"].values())
        assert list(res["nrmse_by_horizon"]) == ["1", "4", str(NT - 1)]
    for name in rep["pictures"]:
        assert (out.parent / name).stat().st_size > 1000
    assert len(rep["pictures"]) == 2


def test_persistence_baseline_matches_a_hand_computation(trained, full_report):
    _, bundle = trained
    u = bundle.test.u.astype(np.float64)
    err = u[:, 1:] - u[:, :1]
    den = np.maximum(np.sqrt((u[:, 1:] ** 2).mean(axis=(1, 2))), 1e-2 * np.sqrt((u[:, 0] ** 2).mean(-1)))
    expected = (np.sqrt((err**2).mean(axis=(1, 2))) / den).mean()
    got = full_report["baselines"]["persistence"]["metrics"]["nrmse_rollout"]
    assert got == pytest.approx(expected, rel=1e-6)
    assert full_report["baselines"]["persistence"]["metrics"]["mass_drift"] == pytest.approx(0, abs=1e-9)


def test_ttc_is_reported_per_trajectory_within_budget(full_report):
    for mode in ("diffusion", "consistency"):
        t = full_report["modes"][f"{mode}+ttc"]["ttc"]
        assert t["max_evaluations_spent"] <= t["max_evaluations"] == 10
        assert t["scored_steps"] >= 1
        without = full_report["modes"][mode]["metrics"]["nrmse_rollout"]
        assert t["nrmse_rollout_without"] == without
        assert t["gain"] == pytest.approx((without - t["nrmse_rollout_with"]) / without)
    assert full_report["ttc"]["enabled"] and full_report["ttc"]["mode"] == "consistency"


def test_small_eval_uses_the_val_subset_and_can_drop_ttc(trained):
    ckpt, bundle = trained
    rep = evaluate_checkpoint(ckpt, "val", bundle=bundle, ttc=False)
    assert rep["split"] == "val" and rep["trajectories"] == 3
    assert "diffusion+ttc" not in rep["modes"] and "diffusion+ttc" in rep["skipped_modes"]
    assert not rep["ttc"]["enabled"] and rep["ttc"]["gain"] is None
    assert rep["baselines"]["fno"] is not None  # same rows, same dt: the saved FNO is included


def test_an_earlier_stage_checkpoint_runs_only_its_modes(trained):
    ckpt, bundle = trained
    es = EvalSetConfig(split="val", trajectories=2, horizons=[2])
    rep = evaluate_checkpoint(ckpt.parent / "operator.pt", "val", eval_set=es, bundle=bundle)
    assert set(rep["modes"]) == {"operator"} and rep["primary_mode"] == "operator"
    assert set(rep["skipped_modes"]) == {"diffusion", "consistency"}


def test_eval_refuses_rows_that_were_in_the_training_data(trained):
    ckpt, bundle = trained
    leaky = copy.copy(bundle)
    test = bundle.test
    # the earlier pipeline's bug: "test" rows taken from the training shard
    leaky.test = SimpleNamespace(u=test.u, nu=test.nu, rows=[bundle.train.rows[7], *test.rows[1:]])
    with pytest.raises(ConfigError, match=r"1 of the 4 test trajectories were in its training data"):
        evaluate_checkpoint(ckpt, "test", bundle=leaky)


def test_eval_refuses_when_disjointness_cannot_be_proven(trained, tmp_path):
    ckpt, bundle = trained
    blob = torch.load(ckpt, weights_only=True)
    blob["extra"].pop("manifest")  # an older checkpoint: only the manifest hash
    bare = tmp_path / "bare.pt"
    torch.save(blob, bare)
    assert evaluate_checkpoint(bare, "test", bundle=bundle)["trajectories"] == 4  # same data hash: provable
    other = copy.copy(bundle)
    other.manifest_hash = "some-other-data"
    with pytest.raises(ConfigError, match="cannot prove"):
        evaluate_checkpoint(bare, "test", bundle=other)


def test_schema_rejects_missing_and_unknown_keys(full_report):
    bad = copy.deepcopy(full_report)
    del bad["metrics"]["pde_residual"]
    with pytest.raises(ValueError, match="pde_residual"):
        validate_report(bad)
    bad = copy.deepcopy(full_report)
    bad["metrics"]["nrmse"] = 0.1
    with pytest.raises(ValueError, match="nrmse"):
        validate_report(bad)
    assert "metrics" in EvalReport.model_json_schema()["required"]
