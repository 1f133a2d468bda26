"""Leaderboard over a sweep dir and the gate against a frozen champion (through the real CLI entry point)."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest

from usim_core.cli import main
from usim_core.eval.schema import validate_report


def place(root: Path, cell: str, attempt: int, name: str, report: dict, nrmse: float, **changes) -> Path:
    rep = copy.deepcopy(report)
    rep["name"] = name
    rep["metrics"]["nrmse_frame"] = nrmse  # the ranked metric (per-frame, the primary one)
    rep["checkpoint"] = f"{root}/{cell}/{attempt}/checkpoints/consistency_distill.pt"
    rep.update(changes)
    path = root / cell / str(attempt) / "eval" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rep))
    return path


@pytest.fixture
def sweep(tmp_path, full_report) -> Path:
    root = tmp_path / "runs" / "demo"
    # issue 16: runs are ranked and chosen on val, so each run has its val (small) eval; lr_f is the best on
    # test but the worst on val, and must never be chosen
    for cell, attempt, test, val in (("lr_a", 0, 0.30, 0.60), ("lr_b", 1, 0.10, 0.40), ("lr_c", 0, 0.20, 0.50),
                                     ("lr_f", 0, 0.08, 0.70)):
        place(root, cell, attempt, "full", full_report, test)
        place(root, cell, attempt, "small", full_report, val, split="val")
    bad = root / "lr_d" / "0" / "eval" / "full.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"metrics": {}}')  # a torn or foreign file: listed as unreadable, not a crash
    return root


def test_leaderboard_ranks_each_eval_by_the_runs_val_metric(sweep, capsys):
    assert main(["leaderboard", str(sweep)]) == 0
    board = json.loads((sweep / "leaderboard.json").read_text())
    full = [r for r in board["rows"] if r["name"] == "full"]
    assert [(r["cell"], r["attempt"], r["rank"]) for r in full] == [("lr_b", "1", 1), ("lr_c", "0", 2), ("lr_a", "0", 3),
                                                                    ("lr_f", "0", 4)]  # best on test, last on val
    small = [r for r in board["rows"] if r["name"] == "small"]
    assert [(r["cell"], r["rank"], r["split"]) for r in small] == [("lr_b", 1, "val"), ("lr_c", 2, "val"),
                                                                    ("lr_a", 3, "val"), ("lr_f", 4, "val")]
    assert full[0]["coarse_nrmse_frame"] is not None and full[0]["model_cpu_s_per_traj"] > 0
    pers = full[0]["persistence_nrmse_frame"]
    assert full[0]["ratio_to_persistence"] == pytest.approx(0.10 / pers)
    assert len(board["unreadable"]) == 1 and "lr_d" in board["unreadable"][0]
    with open(sweep / "leaderboard.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and float(rows[0]["nrmse_frame"]) in (0.10, 0.40)
    # the printed baselines are in the ranked metric, as in the report: never a pooled figure beside a per-frame one
    line = next(x for x in capsys.readouterr().out.splitlines() if " full " in x and "lr_b" in x)
    assert f"persistence {pers:.4g}" in line and f"coarse solver {full[0]['coarse_nrmse_frame']:.4g}" in line
    assert full[0]["coarse_nrmse_rollout"] != full[0]["coarse_nrmse_frame"]


def test_gate_against_a_frozen_champion_never_compares_a_run_with_itself(sweep, tmp_path):
    champ = tmp_path / "champion.json"
    assert main(["leaderboard", str(sweep), "--freeze", str(champ)]) == 0
    frozen = json.loads(champ.read_text())
    assert frozen["cell"] == "lr_b" and frozen["metrics"]["nrmse_frame"] == 0.10

    place(sweep, "lr_e", 0, "full", json.loads((sweep / "lr_a/0/eval/full.json").read_text()), 0.05)
    assert main(["leaderboard", str(sweep), "--champion", str(champ), "--tolerance", "0.5"]) == 0
    rows = {(r["cell"], r["name"]): r["gate"] for r in json.loads((sweep / "leaderboard.json").read_text())["rows"]}
    assert rows[("lr_b", "full")]["status"] == "self"
    assert rows[("lr_e", "full")]["status"] == "pass"  # 0.05 <= 0.10 x 1.5
    assert rows[("lr_c", "full")]["status"] == "fail"  # 0.20 > 0.15: a result, and the command still exits 0
    assert rows[("lr_a", "full")]["status"] == "fail"
    assert rows[("lr_c", "small")]["status"] == "incomparable"  # val subset vs the champion's test split


def test_the_champion_is_never_chosen_without_a_val_eval(tmp_path, full_report, capsys):
    root = tmp_path / "runs" / "noval"
    place(root, "lr_a", 0, "full", full_report, 0.05)
    assert main(["leaderboard", str(root), "--freeze", str(tmp_path / "c.json")]) == 2
    assert "chosen on val only" in capsys.readouterr().err


def test_gate_command_records_a_failure_in_the_eval_json_and_exits_0(sweep, tmp_path, capsys):
    champ = tmp_path / "champion.json"
    main(["leaderboard", str(sweep), "--freeze", str(champ)])
    target = sweep / "lr_a" / "0" / "eval" / "full.json"
    assert main(["gate", str(target), "--champion", str(champ)]) == 0
    rep = json.loads(target.read_text())
    validate_report(rep)
    assert rep["gate"]["status"] == "fail" and rep["gate"]["champion_value"] == 0.10
    assert "gate fail" in capsys.readouterr().out


def test_bad_input_names_the_file_and_the_allowed_values(sweep, tmp_path, capsys):
    assert main(["gate", str(sweep / "lr_a/0/eval/full.json"), "--champion", str(tmp_path / "nope.json")]) == 2
    assert "nope.json: champion file not found" in capsys.readouterr().err
    assert main(["leaderboard", str(sweep), "--metric", "nrmse"]) == 2
    assert "allowed values are nrmse_1step" in capsys.readouterr().err


def test_runs_on_different_domain_lengths_are_never_ranked_together(sweep, tmp_path, capsys):
    # issue 16: a length-2 run (PDEBench's files) beside length-1 ones is a different problem; ranking them
    # together would freeze a champion across problems, so the leaderboard refuses and names both
    rep = json.loads((sweep / "lr_a/0/eval/full.json").read_text())
    for name, split in (("full", "test"), ("small", "val")):
        place(sweep, "pdebench", 0, name, rep, 0.01, split=split, domain={**rep["domain"], "length": 2.0})
    champ = tmp_path / "champion.json"
    assert main(["leaderboard", str(sweep), "--freeze", str(champ)]) == 2
    err = capsys.readouterr().err
    assert "domain length" in err and "pdebench/0" in err and "lr_a/0" in err
    assert not champ.exists() and not (sweep / "leaderboard.json").exists()
