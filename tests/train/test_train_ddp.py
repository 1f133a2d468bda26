"""Data-parallel training under torchrun, as real subprocesses on the CPU (gloo): two processes train what one
does (losses equal up to float summation order) and write one run directory as one process does; a failure on
rank 1 ends the run with exactly one `error` event naming it and a non-zero exit; a checkpoint written by two
processes resumes on one.

The config makes the split uneven on purpose: batches of 7 over 2 ranks (3 + 4 rows), an epoch's last codec
batch of 1 row (one rank computes on a padded row with weight 0), and accumulation over 2 micro-batches."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from usim_core.events import EventLog, parse_lines, read_events

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
FAULT = str(Path(__file__).with_name("ddp_fault.py"))
SLOW = str(Path(__file__).with_name("ddp_slow.py"))
ENV = {**os.environ, "USIM_THREADS": "1", "USIM_DIST_TIMEOUT_S": "120", "WANDB_MODE": "disabled"}
RTOL = 1e-4  # measured: 6e-7 (float32 sums in another order); a real difference in the batch is ~1e-2
STAGES = ("codec", "operator", "diffusion_residual", "consistency_distill")
TIMEOUT = 420  # seconds per run: a hang fails the test instead of the suite


def _config(tmp: Path) -> Path:
    tree = {
        "include": str(REPO / "configs/runs/burgers_tiny.yaml"),
        "data": {"cache_dir": str(tmp / "data"), "generate": {"n": 8, "nx": 64, "nt": 9},
                 "splits": {"train": 0.5, "val": 0.25, "test": 0.25}},
        # without its linear path the codec has something to learn here (with it, it is lossless at the start
        # and picking its best epoch would compare float noise)
        "model": {"codec": {"linear_path": False}},
        "stages": {
            "codec": {"epochs": 2, "batch_size": 7, "max_steps": 8},
            "operator": {"epochs": 2, "batch_size": 7, "accum_steps": 2},
            "diffusion_residual": {"epochs": 1, "batch_size": 7, "max_steps": 3},
            "consistency_distill": {"epochs": 1, "batch_size": 7, "max_steps": 3},
        },
        "eval": {"small": {"enabled": False}, "full": {"enabled": False}},
        "tracking": {"wandb": {"mode": "disabled"}},
    }
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _train(launcher: list[str], cfg: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*launcher, "train", "--config", str(cfg), "--run-dir", str(run_dir), "--device", "cpu",
                             *extra], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"{proc.args[:3]} hung past {TIMEOUT}s") from None
    return proc.returncode, out, err


ONE = [PYTHON, "-m", "usim_core"]
TWO = [TORCHRUN, "--standalone", "--nproc-per-node=2", "-m", "usim_core"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The same config trained by two processes (torchrun) and, meanwhile, by one (in this process: the real
    driver, without paying another torch start-up)."""
    from usim_core.config import load_config
    from usim_core.train.run import train_run

    tmp = tmp_path_factory.mktemp("ddp")
    cfg = _config(tmp)
    two = _train(TWO, cfg, tmp / "two")  # its two ranks and this process generate the data under the cache lock
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        train_run(load_config(cfg), tmp / "one", device="cpu", quiet=True,
                  events=EventLog(tmp / "one", stream=io.StringIO()))
    rc2, out2, err2 = _finish(two)
    assert rc2 == 0, err2[-3000:]
    (tmp / "two.stdout").write_text(out2)
    return {"tmp": tmp, "cfg": cfg, "one": tmp / "one", "two": tmp / "two"}


def _losses(run_dir: Path) -> dict[tuple[str, int, str], float]:
    """Every logged loss and rate by (stage, step, key); a key logged again after a resume keeps its last value."""
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for key, value in rec.items():
            if "/" in key or key in ("lr", "grad_norm"):
                out[rec["stage"], rec["stage_step"], key] = value
    return out


def _assert_same_losses(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    bad = {k: (got[k], want[k]) for k in want if abs(got[k] - want[k]) > RTOL * abs(want[k]) + 1e-7}
    assert not bad, f"{len(bad)} of {len(want)} values differ beyond rtol {RTOL}: {list(bad.items())[:5]}"
    assert {k[0] for k in want} == set(STAGES)


def _files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())


@pytest.mark.slow
def test_two_processes_train_what_one_does_and_write_one_run_dir(runs):
    one, two = runs["one"], runs["two"]
    _assert_same_losses(_losses(two), _losses(one))
    assert _files(two) == _files(one)  # one events file, one metrics file, one set of checkpoints, nothing else
    events, printed = read_events(two), parse_lines((runs["tmp"] / "two.stdout").read_text())
    assert [e["kind"] for e in printed] == [e["kind"] for e in events] == [e["kind"] for e in read_events(one)]
    assert events[0]["kind"] == "started" and events[0]["processes"] == 2 and events[-1]["kind"] == "done"
    assert len(set(map(json.dumps, events))) == len(events)  # each event once
    for s in STAGES:
        ck = torch.load(two / "checkpoints" / f"{s}.pt", weights_only=True)
        assert ck["extra"]["cpu_s"] > 0 and ck["optimizer"] is None and ck["step"] > 0


@pytest.mark.slow
def test_failure_on_rank_1_ends_with_one_error_and_its_checkpoint_resumes_on_one_process(runs):
    tmp, cfg = runs["tmp"], runs["cfg"]
    run_dir = tmp / "fault"
    rc, out, err = _finish(_train([TORCHRUN, "--standalone", "--nproc-per-node=2", FAULT, "1", "codec", "0"], cfg,
                                  run_dir))
    assert rc != 0
    events = read_events(run_dir)
    kinds = [e["kind"] for e in events]
    assert kinds.count("error") == 1 and kinds[-1] == "error" and "done" not in kinds, kinds
    assert events[-1]["reason"] == "rank 1: RuntimeError: injected failure on rank 1", events[-1]
    assert "ddp_fault.py" in events[-1]["frame"]
    assert [e["kind"] for e in parse_lines(out)] == kinds  # printed once, by rank 0
    assert (run_dir / "checkpoints" / "codec.last.pt").exists()
    assert not (run_dir / "checkpoints" / "codec.pt").exists()

    rc, out, err = _finish(_train(ONE, cfg, run_dir, "--resume"))
    assert rc == 0, err[-3000:]
    resumed = [e for e in read_events(run_dir) if e["kind"] == "stage_start" and e["stage"] == "codec"][-1]
    assert resumed["resumed_at_step"] > 0
    assert read_events(run_dir)[-1]["kind"] == "done"
    _assert_same_losses(_losses(run_dir), _losses(runs["one"]))


@pytest.mark.parametrize("late", ["no rank", "rank 0"])
def test_a_batch_the_processes_cannot_split_is_one_line_naming_the_file(tmp_path, late):
    """Every rank refuses the same config; the line is printed once (rank 0's), naming the file and the key, even
    when rank 0 gets there last (torchrun stops every rank as soon as one has exited: CI saw rank 1 refuse first
    and rank 0 stopped before it said why)."""
    cfg = _config(tmp_path)
    tree = yaml.safe_load(cfg.read_text())
    tree["stages"]["codec"]["batch_size"] = 1
    cfg.write_text(yaml.safe_dump(tree))
    launcher = TWO if late == "no rank" else [TORCHRUN, "--standalone", "--nproc-per-node=2", SLOW, "0", "5"]
    rc, _, err = _finish(_train(launcher, cfg, tmp_path / "run"))
    ours = [line for line in err.splitlines() if line.startswith("error: ")]
    assert rc != 0 and len(ours) == 1, err[-3000:]
    assert str(cfg) in ours[0] and "stages.codec.batch_size 1" in ours[0], ours
    (error,) = [e for e in read_events(tmp_path / "run") if e["kind"] == "error"]
    assert str(cfg) in error["reason"]
