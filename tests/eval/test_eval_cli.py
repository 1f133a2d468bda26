"""`usim-core baseline fno` and `usim-core eval` through the CLI entry point, on the session's real run
(in process: a subprocess would pay the torch + neuralop + matplotlib imports again, ~20 s on this machine)."""

from __future__ import annotations

import json

import pytest
import torch

from usim_core.cli import main
from usim_core.eval.schema import validate_report


def test_baseline_fno_command_trains_on_the_config_data(tmp_path, tiny_config_file, capsys):
    run = tmp_path / "run"
    assert main(["baseline", "fno", "--config", str(tiny_config_file), "--run-dir", str(run), "--budget-s", "1"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["steps"] >= 1 and info["budget_s"] == 1.0
    # the FNO's own recipe: the run's operator lr and unroll by default, its own when given
    from usim_core.config import load_config

    op = load_config(tiny_config_file).stages.operator
    assert (info["lr"], info["unroll"]) == (op.lr, op.unroll)
    assert main(["baseline", "fno", "--config", str(tiny_config_file), "--run-dir", str(run), "--budget-s", "1",
                 "--lr", "0.0042", "--unroll", "1"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (info["lr"], info["unroll"]) == (0.0042, 1) and op.unroll != 1
    blob = torch.load(run / "baselines" / "fno.pt", weights_only=False)
    assert len(blob["train_rows"]) == 12 and blob["dt"] > 0
    # no --budget-s and no finished training in the run dir: a clear error, exit 2
    assert main(["baseline", "fno", "--config", str(tiny_config_file), "--run-dir", str(tmp_path / "x")]) == 2
    assert "pass --budget-s SECONDS" in capsys.readouterr().err


def test_eval_command_prepares_the_data_of_the_checkpoint_config(trained, tmp_path, capsys):
    ckpt, bundle = trained
    out = tmp_path / "cli" / "full.json"
    assert main(["eval", "--checkpoint", str(ckpt), "--split", "test", "--no-ttc", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    rep = validate_report(json.loads(out.read_text()))
    assert rep.split == "test" and rep.trajectories == len(bundle.test.rows)
    assert rep.manifest_hash == rep.checkpoint_manifest_hash == bundle.manifest_hash  # found again by hash
    assert rep.baselines.fno is not None and not rep.ttc.enabled
    assert "persistence" in stdout and "fno" in stdout
    assert (out.parent / "full_fields.png").exists() and (out.parent / "full_error.png").exists()


def test_eval_command_bad_input(trained, tmp_path, capsys):
    ckpt, _ = trained
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--checkpoint", str(ckpt), "--split", "train"])
    assert exit_info.value.code == 2 and "invalid choice: 'train'" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt: checkpoint not found" in capsys.readouterr().err


def test_fno_default_budget_is_the_runs_own_training_cpu_time(trained):
    """Issue 16: budgets are process CPU seconds (machine load does not move them), not wall-clock."""
    import os

    from usim_core.events import read_events
    from usim_core.train.checkpoint import load_checkpoint
    from usim_core.train.run import training_cpu_seconds

    ckpt, _ = trained
    run = ckpt.parent.parent
    per_stage = [load_checkpoint(p)["extra"]["cpu_s"] for p in sorted((run / "checkpoints").glob("*.pt"))]
    assert len(per_stage) == 4 and all(c > 0 for c in per_stage)
    assert training_cpu_seconds(run) == pytest.approx(sum(per_stage))
    events = read_events(run)
    wall = [e["t"] for e in events if e["kind"] == "stage_end"][-1] - next(e["t"] for e in events
                                                                          if e["kind"] == "started")
    assert sum(per_stage) <= wall * (os.cpu_count() or 1) + 0.5
