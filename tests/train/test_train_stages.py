"""In-process training on tiny synthetic data: every stage lowers its validation loss, the protocol carries
what the fleet needs, stages keep their own checkpoints and frozen parts stay frozen."""

from __future__ import annotations

import io
import json

import pytest
import torch
from train_support import tiny_config

from usim_core.config import STAGES
from usim_core.events import EventLog, read_events
from usim_core.train.run import train_run


@pytest.fixture(scope="module")
def trained(bundle, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("stages")
    out = io.StringIO()
    train_run(tiny_config(), run_dir, bundle=bundle, events=EventLog(run_dir, stream=out), device="cpu",
              quiet=True)
    return run_dir, out.getvalue()


def test_every_stage_lowers_its_validation_loss(trained):
    run_dir, _ = trained
    events = read_events(run_dir)
    for stage in STAGES:
        start = next(e for e in events if e["kind"] == "stage_start" and e["stage"] == stage)
        end = next(e for e in events if e["kind"] == "stage_end" and e["stage"] == stage)
        assert end["best_val"] < 0.99 * start["val_loss_initial"], stage  # a fixed val set: no noise in the comparison


def test_protocol_events_and_metrics(trained):
    run_dir, stdout = trained
    events = read_events(run_dir)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "done" and "error" not in kinds
    assert [line for line in stdout.splitlines() if line.startswith("@usim ")] and len(
        [line for line in stdout.splitlines() if line.startswith("@usim ")]) == len(events)
    for stage in STAGES:
        start = next(e for e in events if e["kind"] == "stage_start" and e["stage"] == stage)
        assert start["epochs"] == 3 and start["steps"] > 0
        per_epoch = [e for e in events if e["kind"] == "metric" and e["stage"] == stage
                     and f"val/{stage}/loss" in e["metrics"]]
        assert [e["epoch"] for e in per_epoch] == [0, 1, 2]
        assert all({"stage", "epoch", "step", "metrics"} <= e.keys() for e in per_epoch)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in records if "train/operator/loss" in r and "lr" in r]
    assert train_recs and all({"step", "t", "lr", "grad_norm", "samples_per_s", "epoch"} <= r.keys()
                              for r in train_recs)
    steps = [r["step"] for r in records]
    assert steps == sorted(steps)  # one global step axis across stages
    assert (run_dir / "config.yaml").exists() and "stage operator" in (run_dir / "train.log").read_text()


def test_one_checkpoint_per_stage_and_frozen_parts_untouched(trained):
    run_dir, _ = trained
    files = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert files == sorted(f"{s}.pt" for s in STAGES)  # no .last.pt left, nothing overwritten
    ck = {s: torch.load(run_dir / "checkpoints" / f"{s}.pt", weights_only=True) for s in STAGES}
    assert [ck[s]["stage"] for s in STAGES] == list(STAGES)

    def part(stage, prefix):
        return {k: v for k, v in ck[stage]["model"].items() if k.startswith(prefix)}

    for later in STAGES[1:]:  # the codec is frozen after its stage
        assert all(torch.equal(v, part(later, "encoder.")[k]) for k, v in part("codec", "encoder.").items())
    for later in STAGES[2:]:
        assert all(torch.equal(v, part(later, "operator.")[k]) for k, v in part("operator", "operator.").items())
    changed = [k for k, v in part("operator", "operator.").items() if not torch.equal(v, part("codec", "operator.")[k])]
    assert changed  # the operator stage did train the operator
    teacher = part("diffusion_residual", "denoiser.")
    student = part("consistency_distill", "student.")
    assert any(not torch.equal(v, student["student." + k[len("denoiser."):]]) for k, v in teacher.items())


def test_the_operator_writes_the_selections_own_metric_each_epoch(trained, bundle):
    """Each operator epoch also reports val/operator/nrmse_frame: the per-frame rollout nRMSE of the operator on the
    val trajectories the primary mode is chosen on (eval/evaluate.py select_on_val), so an early-stopping rule can
    judge cells on what picks the champion. At the epoch the stage kept, it is the kept checkpoint's own score."""
    from usim_core.eval.evaluate import rollout_nrmse_frame
    from usim_core.train.checkpoint import load_surrogate

    run_dir, _ = trained
    per_epoch = [e["metrics"] for e in read_events(run_dir) if e["kind"] == "metric" and e["stage"] == "operator"
                 and "val/operator/loss" in e["metrics"]]
    scores = [m["val/operator/nrmse_frame"] for m in per_epoch]
    assert len(scores) == 3 and all(0 < s < 10 for s in scores)
    kept = min(range(3), key=lambda e: per_epoch[e]["val/operator/loss"])
    model, *_ = load_surrogate(run_dir / "checkpoints" / "operator.pt")
    u, nu = torch.as_tensor(bundle.val.u), torch.as_tensor(bundle.val.nu)
    assert scores[kept] == pytest.approx(rollout_nrmse_frame(model, u, nu, bundle.dt, "operator", 3), rel=1e-5)
    assert per_epoch[-1]["val/operator/best_nrmse_frame"] == min(scores)
    others = [e["metrics"] for e in read_events(run_dir) if e["kind"] == "metric" and e["stage"] == "codec"]
    assert not any("val/codec/nrmse_frame" in m for m in others), "the operator's rollout only"
