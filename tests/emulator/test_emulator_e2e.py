"""End to end on the real clock: the controller buys an emulated Vast instance over HTTP, the emulator runs
the real bootstrap, which runs the real `usim-core train` on the tiny config; the controller sees it finish
and be evaluated, and destroys it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from hostile_support import HOSTILE_FAST

from usim_core.events import parse_lines
from usim_core.sweep import expand
from usim_tui.emulator.server import serve
from usim_tui.emulator.state import Emulator
from usim_tui.fleet.process.open import open_sweep
from usim_tui.fleet.vast.provider import VastProvider

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-key-abcdef123"


def tiny_sweep(tmp: Path) -> Path:
    path = tmp / "e2e.yaml"
    path.write_text(yaml.safe_dump({
        "name": "e2e", "base": str(ROOT / "configs/runs/burgers_tiny.yaml"), "budget": 1.0, "concurrency": 1,
        "max_attempts": 1,
        "set": {"stages.codec.max_steps": 6, "stages.operator.max_steps": 6,
                "stages.diffusion_residual.max_steps": 4, "stages.consistency_distill.max_steps": 4,
                "data.generate.n": 12, "eval.small.trajectories": 1, "eval.small.horizons": [1, 4],
                "eval.small.modes": ["operator"], "eval.full.enabled": False},
        "provider": {"kind": "vast", "startup_deadline_s": 120, "max_runtime_s": 900,
                     "install": "usim-sweeps==0.1.0"},   # the onstart trains (preinstalled in the emulator)
        "planning": {"price_per_hour": 0.35, "hours_per_cell": 0.1},
        "rounds": [{"name": "r", "list": {"one": {"seed": 3}}}],
    }))
    return path


@pytest.mark.slow
async def test_real_training_through_the_emulator(tmp_path):
    sweep = expand(tiny_sweep(tmp_path))
    emu = Emulator(api_keys=(KEY,), execute=True, workdir=str(tmp_path / "hosts"), faults=HOSTILE_FAST)
    async with serve(emu) as url:
        provider = VastProvider(sweep.spec.provider, api_key=KEY, base_url=url, sweep=sweep.name)
        opened = open_sweep(sweep, provider=provider, ledger=tmp_path / "ledger.sqlite", runs_root=tmp_path / "runs",
                            poll_interval=1.0, run_preflight=False, log=lambda m: None,
                            env={"WANDB_MODE": "disabled", "USIM_THREADS": "1"})
        ledger, ctl = opened.ledger, opened.controller
        await asyncio.wait_for(ctl.run(), 400)
        (inst,) = emu.instances.values()
        log = Path(inst.log_path).read_text()
        kinds = [e["kind"] for e in parse_lines(log)]
        (cell,) = ledger.cells(sweep.name)
        (attempt,) = ledger.attempts(sweep.name)
        await provider.close()
    assert kinds[0] == "bootstrap" and "started" in kinds and "done" in kinds, log[-2000:]
    assert "eval" in kinds, "the trainer evaluated the model"
    assert cell.state == "finished", cell
    assert cell.small_metrics["nrmse_1step"] >= 0, "the eval's metrics reached the ledger"
    assert inst.destroyed_at is not None, "the controller destroyed the finished instance"
    assert attempt.provider_id == str(inst.id)
    assert KEY not in log and inst.api_key not in inst.onstart
    run_dir = Path(emu.workdir) / str(inst.id) / "workspace" / "runs/e2e/r_one/1"
    assert (run_dir / "events.jsonl").exists()
