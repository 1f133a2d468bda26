"""Real subprocesses: kill -9 mid-stage, --resume, and the result equals an uninterrupted run (CPU, same
seed); SIGTERM ends a run with an `error` event and exit 143."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from usim_core.events import read_events

SCRIPT = Path(__file__).with_name("synthetic_train.py")
ENV = {**os.environ, "USIM_THREADS": "1"}


def _start(run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), str(run_dir), *extra], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(run_dir: Path, pred, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(pred(e) for e in read_events(run_dir)):
            return
        assert proc.poll() is None, f"run ended early: {proc.stderr.read()}"
        time.sleep(0.05)
    raise AssertionError("timed out waiting for an event")


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    ref = _start(straight)  # runs alongside the killed one
    proc = _start(killed)
    _wait_for(killed, lambda e: e["kind"] == "metric" and e["stage"] == "operator" and e["epoch"] >= 1
              and "val/operator/loss" in e["metrics"], proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "checkpoints" / "operator.last.pt").exists()
    assert not (killed / "checkpoints" / "operator.pt").exists(), "killed too late: the stage had finished"

    resumed = _start(killed, "--resume")
    assert resumed.wait(timeout=180) == 0, resumed.stderr.read()
    assert ref.wait(timeout=180) == 0, ref.stderr.read()

    events = read_events(killed)
    starts = [e for e in events if e["kind"] == "stage_start" and e["stage"] == "operator"]
    assert starts[0]["steps_per_epoch"] <= starts[-1]["resumed_at_step"] < starts[0]["steps"]
    assert any(e["kind"] == "stage_end" and e["stage"] == "codec" and e.get("skipped") for e in events)
    assert events[-1]["kind"] == "done"

    a = torch.load(straight / "checkpoints" / "consistency_distill.pt", weights_only=True)
    b = torch.load(killed / "checkpoints" / "consistency_distill.pt", weights_only=True)
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs after resume"
    assert a["step"] == b["step"] and a["extra"]["loop"]["best_val"] == b["extra"]["loop"]["best_val"]


@pytest.mark.slow
def test_sigterm_ends_with_error_event_and_143(tmp_path):
    proc = _start(tmp_path)
    _wait_for(tmp_path, lambda e: e["kind"] == "started", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    last = read_events(tmp_path)[-1]
    assert last["kind"] == "error" and last["reason"] == "terminated"
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["kind"] == "error"


@pytest.mark.slow
def test_sigterm_to_a_main_thread_stuck_in_native_code_still_ends_with_one_error_event(tmp_path):
    """The main thread cannot run Python's handler while it waits in native code (NCCL after a peer died); the
    watcher reports `terminated` after its grace period and ends the process, long before the wait would."""
    from usim_core.train.guard import GRACE_S

    proc = subprocess.Popen([sys.executable, str(SCRIPT.with_name("stuck_main.py")), str(tmp_path)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path, lambda e: e["kind"] == "started", proc)
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    assert GRACE_S <= time.monotonic() - t < 120  # the store's wait would have lasted 300 s
    kinds = [e["kind"] for e in read_events(tmp_path)]
    assert kinds == ["started", "error"]
    last = read_events(tmp_path)[-1]
    assert last["reason"] == "terminated" and "stuck in native code" in last["frame"]  # the watcher wrote it
