"""W&B tracking: the environment's WANDB_MODE wins over the config's mode, and a W&B failure never fails the
run (it degrades to offline, or stops logging to W&B, with a warning event). No test reaches the network: the
outage is a refused loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from usim_core.config import load_config
from usim_core.events import read_events
from usim_core.train.tracking import Tracker, effective_mode

ROOT = Path(__file__).resolve().parents[2]


def cfg(mode: str = "disabled"):
    return load_config(ROOT / "configs/runs/burgers_tiny.yaml", {"tracking.wandb.mode": mode})


def test_environment_wins_over_the_config():
    assert effective_mode("disabled", {"WANDB_MODE": "online"}) == "online"
    assert effective_mode("online", {"WANDB_MODE": "disabled"}) == "disabled"
    assert effective_mode("online", {"WANDB_MODE": "dryrun"}) == "offline"
    assert effective_mode("offline", {}) == "offline"
    assert effective_mode("offline", {"WANDB_MODE": "bogus"}) == "offline"


def test_env_offline_turns_on_a_disabled_config_and_a_log_failure_only_warns(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    t = Tracker(cfg("disabled"), tmp_path)
    assert t.mode == "offline" and t.run is not None
    t.log({"step": 1, "train/codec/loss": 0.5})
    assert list((tmp_path / "wandb").glob("offline-run-*")), "an offline run for `wandb sync`"
    t.run.finish()          # W&B goes away under the tracker: the next log fails for real
    t.log({"step": 2, "train/codec/loss": 0.4})
    t.log({"step": 3, "train/codec/loss": 0.3})
    assert t.run is None
    warnings = [e for e in read_events(tmp_path) if e["kind"] == "warning"]
    assert len(warnings) == 1 and "W&B log failed" in warnings[0]["reason"]
    t.finish(0)


def test_env_disabled_wins_over_an_online_config(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    t = Tracker(cfg("online"), tmp_path)
    assert t.run is None and not (tmp_path / "wandb").exists()


OUTAGE = """
import sys
from pathlib import Path
from usim_core.config import load_config
from usim_core.train.tracking import Tracker
t = Tracker(load_config(sys.argv[1], {"tracking.wandb.mode": "offline"}), Path(sys.argv[2]))
assert t.mode == "offline" and t.run is not None and not t.online, t.mode
t.log({"step": 1, "train/codec/loss": 0.5})
t.finish(0)
"""


def test_an_online_outage_at_init_degrades_to_offline(tmp_path):
    """In its own process (as the trainer is), so W&B's service starts with this environment."""
    key = "k" * 40
    env = {**os.environ, "WANDB_MODE": "online", "WANDB_API_KEY": key, "WANDB_SILENT": "true",
           "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_INIT_TIMEOUT": "3"}   # refused: W&B is "down"
    proc = subprocess.run([sys.executable, "-c", OUTAGE, str(ROOT / "configs/runs/burgers_tiny.yaml"),
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (warning,) = [e for e in read_events(tmp_path) if e["kind"] == "warning"]
    assert "online init failed" in warning["reason"] and "offline" in warning["reason"]
    assert list((tmp_path / "wandb").glob("offline-run-*"))
    assert key not in (tmp_path / "events.jsonl").read_text() and key not in proc.stdout + proc.stderr
