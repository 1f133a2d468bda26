"""`usim-core train` as a real subprocess: fresh host (data generated), stages, small eval, done; bad input
exits 2 with an error event; W&B offline writes a syncable run into the run dir."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from train_support import tiny_config

from usim_core.events import EventLog, parse_lines, read_events

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin" / "usim-core"
STEPS2 = {"epochs": 1, "max_steps": 2, "batch_size": 8}


def _config(tmp_path: Path) -> Path:
    tree = {
        "include": str(REPO / "configs/runs/burgers_tiny.yaml"),
        "data": {"cache_dir": str(tmp_path / "data"), "generate": {"n": 6, "nx": 64, "nt": 9},
                 "splits": {"train": 0.5, "val": 0.25, "test": 0.25}},
        "stages": {s: STEPS2 for s in ("codec", "operator", "diffusion_residual", "consistency_distill")},
        "eval": {"small": {"trajectories": 1, "horizons": [1, 2], "modes": ["operator", "consistency"]},
                 "full": {"enabled": False}, "ttc": {"enabled": False}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


@pytest.mark.slow
def test_train_cli_fresh_host_to_done(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run([str(BIN), "train", "--config", str(_config(tmp_path)), "--run-dir", str(run_dir),
                           "--device", "cpu"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "USIM_THREADS": "1"}, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = parse_lines(proc.stdout)
    stored = read_events(run_dir)
    assert [e["kind"] for e in printed] == [e["kind"] for e in stored]
    assert stored[0]["kind"] == "started" and stored[-1]["kind"] == "done"
    evals = [e for e in stored if e["kind"] == "eval"]
    assert [e["name"] for e in evals] == ["small"] and evals[0]["metrics"]
    # issue 16's figures travel as flat keys of the eval event: primary metric, costs, coarse solver, corrector
    assert {"nrmse_frame", "model_cpu_s_per_traj", "coarse_solver/nrmse_frame", "coarse_solver/cpu_s_per_traj",
            "corrector/diffusion_corr", "corrector/spread_ratio"} <= set(evals[0]["metrics"])
    assert (run_dir / "eval" / "small.json").exists() and not (run_dir / "eval" / "full.json").exists()
    assert any((tmp_path / "data").iterdir())  # the data engine generated the files
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["generate"]["n"] == 6


def test_train_cli_bad_config_exits_2_with_error_event(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  operator:\n    warmup_epochs: 1\n")
    run_dir = tmp_path / "run"
    proc = subprocess.run([str(BIN), "train", "--config", str(bad), "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "warmup_epochs" in proc.stderr and str(bad) in proc.stderr
    last = read_events(run_dir)[-1]
    assert last["kind"] == "error" and "warmup_epochs" in last["reason"]


def test_wandb_offline_run_lands_in_run_dir(tmp_path, bundle, monkeypatch):
    from usim_core.train.run import train_run

    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = tiny_config(**{f"stages.{s}.max_steps": 1 for s in ("codec", "operator", "diffusion_residual",
                                                              "consistency_distill")},
                      **{"tracking.wandb": {"mode": "offline", "run_id": "cell-abc", "run_name": "cell",
                                            "group": "sweep1", "tags": ["t1"]}})
    run_dir = tmp_path / "run"
    train_run(cfg, run_dir, bundle=bundle, events=EventLog(run_dir, stream=io.StringIO()), quiet=True)
    runs = list((run_dir / "wandb").glob("offline-run-*-cell-abc"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_resume_refuses_a_different_config_and_stage_needs_earlier_checkpoints(tmp_path, bundle):
    from usim_core.config import ConfigError, save_config
    from usim_core.train.run import train_run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_config(tiny_config(**{"stages.operator.lr": 1e-4}), run_dir / "config.yaml")
    events = EventLog(run_dir, stream=io.StringIO())
    with pytest.raises(ConfigError, match="different config"):
        train_run(tiny_config(), run_dir, resume=True, bundle=bundle, events=events, quiet=True)
    with pytest.raises(ConfigError, match=r"codec\.pt.*needed by --stage operator"):
        train_run(tiny_config(), tmp_path / "other", stage="operator", bundle=bundle, events=events, quiet=True)
