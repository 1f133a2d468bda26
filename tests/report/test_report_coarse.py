"""The report shows the coarse-solver reference and the model's CPU cost beside the champion (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

from report_support import eval_json

from usim_core.eval.schema import validate_report
from usim_tui.report.data import read_eval


def test_read_eval_carries_the_coarse_solver_and_the_models_cpu_cost(tmp_path: Path) -> None:
    rep = eval_json("full", 0.2, seed=1)
    rep["schema_version"] = 2
    rep["model_cpu_s_per_traj"] = 0.03
    grid = {"nx": 64, "cpu_s_per_traj": 0.01, "nrmse_frame": 0.012, "nrmse_rollout": 0.011}
    rep["baselines"]["coarse_solver"] = {**grid, "matched_to_model": True, "grids": [grid]}
    validate_report(rep)
    (tmp_path / "full.json").write_text(json.dumps(rep))
    rec = read_eval(tmp_path / "full.json")
    assert rec.baselines["coarse_solver"] == {"nx": 64.0, "cpu_s_per_traj": 0.01, "nrmse_frame": 0.012,
                                              "nrmse_rollout": 0.011}
    assert rec.metrics["model_cpu_s_per_traj"] == 0.03
