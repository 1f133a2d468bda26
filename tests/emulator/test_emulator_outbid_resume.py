"""End to end over real SSH: a cell rented at a bid trains on an executing emulated instance, its resume point
comes home during training, the market outbids it mid-stage (only a bid past its cap would win it back; a new host
starts in seconds here, so moving is the cheaper), the stopped host is not pulled (it has no SSH) and the cell
moves: a new attempt on another host resumes from the pulled checkpoint (`usim-core train --resume`), finishes,
and its curve continues where the pulled checkpoint left it; the epochs the lost host had trained past that point
are trained again with the very same losses (RNG and data order restored)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hostile_support import HOSTILE_FAST
from test_emulator_ssh import KEY, run_fleet

from usim_core.sweep import expand
from usim_tui.emulator.process import outbid_now
from usim_tui.emulator.server import serve
from usim_tui.emulator.state import Emulator

ROOT = Path(__file__).resolve().parents[2]


def bid_sweep(tmp: Path) -> Path:
    path = tmp / "bide2e.yaml"
    path.write_text(yaml.safe_dump({
        "name": "bide2e", "base": str(ROOT / "configs/runs/burgers_tiny.yaml"), "budget": 1.0, "concurrency": 1,
        "set": {"stages.codec.max_steps": 6, "stages.codec.epochs": 2, "stages.operator.epochs": 6,
                "stages.operator.max_steps": 60, "stages.diffusion_residual.max_steps": 4,
                "stages.consistency_distill.max_steps": 4, "data.generate.n": 12, "eval.small.trajectories": 1,
                "eval.small.horizons": [1, 4], "eval.small.modes": ["operator"], "eval.full.enabled": False},
        "provider": {"kind": "vast", "pricing": "interruptible", "checkpoint_every_s": 1},
        "planning": {"price_per_hour": 0.35, "hours_per_cell": 1.0},
        "rounds": [{"name": "r", "list": {"one": {"seed": 3}}}],
    }))
    return path


def losses(ledger, attempt_id: int) -> dict[int, float]:
    series = ledger.metric_series([attempt_id], ["train/operator/loss"])[attempt_id]
    return dict(series.get("train/operator/loss", []))


@pytest.mark.slow
async def test_an_outbid_cell_resumes_on_another_host_from_its_pulled_checkpoint_and_its_curve_runs_on(tmp_path):
    sweep = expand(bid_sweep(tmp_path))
    emu = Emulator(api_keys=(KEY,), execute=True, workdir=str(tmp_path / "hosts"), faults=HOSTILE_FAST)
    seen: dict[str, object] = {}

    def on_tick(ctl) -> None:
        led = ctl.ledger
        (a, *_) = led.attempts(sweep.name)
        point = ctl.host_runs.resume_dir(a.cell) / "resume.json"
        if "outbid" in seen or not point.is_file():
            return
        meta = json.loads(point.read_text())
        if meta.get("stage") != "operator" or meta.get("epoch") is None:
            return
        if "point" not in seen:   # a mid-operator resume point came home: pull no more, so work is lost
            seen["point"] = meta
            sweep.spec.provider.checkpoint_every_s = 1e9
            return
        if a.step is not None and a.step > meta["step"] and a.stage == "operator":
            inst = emu.instances[int(a.provider_id)]
            outbid_now(emu, inst, rise=5.0)   # no bid under the cap wins it back
            seen["outbid"] = a.step

    async with serve(emu) as url:
        led, why = await run_fleet(tmp_path, url, sweep, on_tick)
    assert why == "done" and "outbid" in seen, (why, seen)
    first, second = led.attempts(sweep.name)[:2]
    assert first.reason == "outbid" and first.bid is not None and first.checkpoint, first
    assert first.machine_id not in led.excluded_machines(sweep.name), "an outbid is not the machine's fault"
    said = [e.data or {} for e in led.attempt_events(first.id, limit=500) if e.kind == "outbid"]
    assert [d["action"] for d in said] == ["move"], said
    assert first.results and first.results.startswith("not pulled: the host is stopped"), first.results
    assert second.resumed_from == 1 and second.machine_id != first.machine_id
    (cell,) = led.cells(sweep.name)
    assert cell.state == "finished"
    point = seen["point"]   # what the pull says it holds: at least this epoch (SFTP dates files to the second)
    lost, redone = losses(led, first.id), losses(led, second.id)
    assert point["step"] <= second.resumed_step < max(lost) and second.resumed_step in lost, \
        "resumed from the pulled checkpoint: an epoch end the lost host reached, before where it was lost"
    events = [json.loads(x) for x in (Path(second.run_dir) / "events.jsonl").read_text().splitlines()]
    assert events[0]["kind"] == "started" and events[0]["resume"] is True
    assert any(e["kind"] == "stage_end" and e["stage"] == "codec" and e.get("skipped") for e in events)
    start = next(e for e in events if e["kind"] == "stage_start" and e["stage"] == "operator")
    assert start["resumed_at_step"] == second.resumed_step
    ops = [e for e in events if e["kind"] == "metric" and e["stage"] == "operator"]
    trained = [x.data or {} for x in led.attempt_events(first.id, 1000)]
    epoch_at = {e["step"]: e["epoch"] for e in trained if e.get("kind") == "metric" and e.get("stage") == "operator"}
    assert ops[0]["epoch"] == epoch_at[second.resumed_step] + 1, "its curve continues at the epoch after"
    assert min(redone) > second.resumed_step
    overlap = sorted(set(lost) & set(redone))
    assert overlap and all(redone[s] == pytest.approx(lost[s], rel=1e-5) for s in overlap), \
        "the epochs trained again give the same losses as the lost host's: RNG and data order were restored"
    assert all(i.destroyed_at is not None for i in emu.instances.values())
