"""The headless CLI as a user runs it: real `usim-tui` subprocesses, a real SIGKILL of the controller."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from usim_tui.fleet.process import daemon
from usim_tui.fleet.store.ledger import Ledger

REPO = Path(__file__).resolve().parents[2]
TUI = str(Path(sys.executable).parent / "usim-tui")
FAKE = Path(__file__).parent / "data" / "fake_trainer.py"


def run(args, cwd, env=None, timeout=120, **kw):
    return subprocess.run([TUI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **kw)


def status(cwd):
    out = run(["status", "--json"], cwd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def quick_demo(tmp: Path) -> Path:
    """demo.yaml with its grid cut to 2 cells and the real trainer cut to a few steps and a one-trajectory eval."""
    sweep = yaml.safe_load((REPO / "configs/sweeps/demo.yaml").read_text())
    sweep["base"] = str(REPO / "configs/sweeps" / sweep["base"])
    sweep["set"] = {"stages.codec.max_steps": 6, "stages.operator.max_steps": 6,
                    "stages.diffusion_residual.max_steps": 4, "stages.consistency_distill.max_steps": 4,
                    "data.generate.n": 12, "eval.small.trajectories": 1, "eval.small.horizons": [1, 4],
                    "eval.small.modes": ["operator"], "eval.full.enabled": False}
    sweep["rounds"][0]["grid"][0]["values"] = [1.0e-3]
    sweep["provider"]["startup_deadline_s"] = 600     # torch's import alone can take a minute on a busy machine
    path = tmp / "demo_quick.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


@pytest.mark.slow
def test_run_headless_real_trainer_then_status_json(tmp_path):
    out = run(["run", str(quick_demo(tmp_path)), "--provider", "local", "--headless", "--no-preflight",
               "--poll", "1"], tmp_path, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "finished" in out.stdout and "launched" in out.stdout
    snap = status(tmp_path)
    assert len(snap["cells"]) == 2
    for c in snap["cells"]:   # the real `usim-core train`: its eval metrics and a cost reached the ledger
        assert c["state"] == "finished" and c["metrics"]["nrmse_1step"] >= 0 and c["cost"] > 0, c
    for a in snap["attempts"]:
        assert a["reason"] == "finished" and len(a["loss_history"]) >= 2 and a["last_loss"] > 0
    text = run(["status"], tmp_path).stdout
    assert "finished" in text and "spent $" in text
    assert "no cell 'nope'" in run(["relaunch", "nope"], tmp_path).stderr


@pytest.mark.slow
def test_sigkill_controller_then_restart_reattaches(tmp_path):
    cmd = f"{sys.executable} {FAKE} --config {{config}}"
    args = ["run", str(REPO / "configs/sweeps/demo.yaml"), "--headless", "--no-preflight", "--poll", "0.3",
            "--local-command", cmd]
    env = {**os.environ, "FAKE_STEP_S": "0.8"}
    proc = subprocess.Popen([TUI, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    ledger = tmp_path / "runs/demo/ledger.sqlite"
    deadline = time.time() + 30
    while time.time() < deadline and not list((tmp_path / "runs/demo").glob("*/1/instance.json")):
        time.sleep(0.1)
    time.sleep(0.5)
    controller = daemon.holder(Ledger(ledger)).pid   # the detached controller process, not the follower
    os.kill(controller, signal.SIGKILL)
    proc.wait(timeout=30)                            # the follower sees the lock released and ends
    assert ledger.exists() and not daemon.is_held(ledger)
    out = run(args, tmp_path, env={"FAKE_STEP_S": "0.8"})
    assert out.returncode == 0, out.stdout
    snap = status(tmp_path)
    assert all(c["state"] == "finished" for c in snap["cells"])
    per_cell = {}
    for a in snap["attempts"]:
        per_cell.setdefault(a["cell"], []).append(a)
    # the instances launched before the kill were re-attached, not relaunched beside a second copy
    assert all(len(v) == 1 for v in per_cell.values()), per_cell


def test_a_vast_sweep_naming_the_laptops_data_files_is_refused_before_anything_is_written(tmp_path):
    """A Vast host runs in its own directory and the laptop's files are not copied there: a relative
    data.files would fail on every host after it was paid for. The CLI refuses it in one line, naming the key."""
    sweep = yaml.safe_load(quick_demo(tmp_path).read_text())
    sweep["provider"] = {"kind": "vast", "max_dph": 0.5}
    sweep["set"]["data.files"] = ["burgers_nu0.01.h5"]
    sweep["set"]["data.nu"] = [0.01]
    path = tmp_path / "vast_files.yaml"
    path.write_text(yaml.safe_dump(sweep))
    out = run(["run", str(path), "--headless"], tmp_path, env={"VAST_API_KEY": "not-a-real-key"})
    assert out.returncode != 0
    assert "data.files" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not list(tmp_path.glob("runs/*/ledger.sqlite"))


@pytest.mark.slow
def test_keep_and_stop_early_reach_the_running_controller(tmp_path):
    """`usim-tui keep` and `usim-tui stop-early` (confirmed) on a running sweep: the stopped cell keeps its reason,
    its process is ended, and it is not launched again."""
    cmd = f"{sys.executable} {FAKE} --config {{config}}"
    args = ["run", str(REPO / "configs/sweeps/demo.yaml"), "--headless", "--no-preflight", "--poll", "0.3",
            "--local-command", cmd]
    env = {**os.environ, "FAKE_MODE": "hang"}
    proc = subprocess.Popen([TUI, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not any(a["state"] == "running" for a in _attempts(tmp_path)):
            time.sleep(0.3)
        cell = next(a["cell"] for a in _attempts(tmp_path) if a["state"] == "running")
        out = run(["keep", cell], tmp_path)
        assert out.returncode == 0 and out.stdout.strip() == "keep: ok", out.stdout + out.stderr
        (line,) = [x for x in run(["status"], tmp_path).stdout.splitlines() if f" {cell} " in x]
        assert "[kept]" in line
        refused = run(["stop-early", cell], tmp_path, stdin=subprocess.DEVNULL)
        assert refused.returncode == 2 and "pass --yes" in refused.stderr, refused.stderr
        out = run(["stop-early", cell, "--yes"], tmp_path)
        assert out.returncode == 0 and out.stdout.strip() == "stop_early: ok", out.stdout + out.stderr
        snap = status(tmp_path)
        (c,) = [c for c in snap["cells"] if c["name"] == cell]
        assert c["state"] == "stopped_early" and c["reason"].startswith("stopped early by a person")
        assert "stopped_early (stopped early by a person" in run(["status"], tmp_path).stdout
        mine = [a for a in snap["attempts"] if a["cell"] == cell]
        assert len(mine) == 1 and mine[0]["reason"] == "stopped_early"
    finally:
        run(["stop", "--destroy"], tmp_path)
        proc.wait(timeout=60)


def _attempts(cwd):
    if not (cwd / "runs/demo/ledger.sqlite").exists():
        return []
    out = run(["status", "--json"], cwd)
    return json.loads(out.stdout)["attempts"] if out.returncode == 0 else []
