"""What starts the trainer on a rented host: one process on one GPU, torchrun with one per GPU on more, and a
failure that ends the host script with its status and its error where the controller reads them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from usim_core.config import load_config
from usim_core.sweep import ProviderSettings
from usim_tui.fleet.hosts.run_script import host_run_script, trainer
from usim_tui.fleet.providers.base import LaunchSpec
from usim_tui.fleet.store.ingest import ingest
from usim_tui.fleet.vast.onstart import render

ROOT = Path(__file__).resolve().parents[2]


def test_the_trainer_is_torchrun_with_one_process_per_gpu_on_a_multi_gpu_host():
    assert trainer(1) == '"${USIM_PY:-python3}" -m usim_core'
    assert trainer(4) == '"${USIM_PY:-python3}" -m torch.distributed.run --standalone --nproc-per-node=4 -m usim_core'
    two, one = host_run_script("runs/s/c/1", 60, 2), host_run_script("runs/s/c/1", 60)
    assert "__TRAINER__" not in two + one and "--nproc-per-node=2 -m usim_core train" in two
    assert "torch.distributed.run" not in one and '"${USIM_PY:-python3}" -m usim_core train' in one
    settings = ProviderSettings(kind="vast", install="usim-sweeps==0.1.0")   # the onstart bootstrap's path

    def spec(n: int) -> LaunchSpec:
        return LaunchSpec(label="usim:s:c:1", sweep="s", cell="c", attempt=1, config={}, run_dir="x", num_gpus=n)
    assert '"${USIM_CORE:-usim-core}" train' in render(spec(1), settings)
    assert "--nproc-per-node=2 -m usim_core train" in render(spec(2), settings)
    for script in (two, one, render(spec(2), settings)):
        assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_a_failing_torchrun_ends_the_host_script_with_its_status_and_its_error(tmp_path):
    """Both processes refuse a config key their usim does not know (a config from a newer checkout; refused
    before torch is imported, so the test is cheap): torchrun exits 1, and so does the run script; events.jsonl
    ends with `exit` code 1 naming torchrun's error, after rank 0's one `error`; host.log (what the controller
    pulls) holds torchrun's failure report and the trainer's reason."""
    cfg = load_config(ROOT / "configs/runs/burgers_tiny.yaml").to_dict()
    cfg["stages"]["codec"]["batch_sise"] = 8
    run_dir = tmp_path / "runs/s/c/1"
    run_dir.mkdir(parents=True)
    (tmp_path / "runs/s/c/1.config.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "runs/s/c/1.run.sh").write_text(host_run_script("runs/s/c/1", 120, num_gpus=2))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "USIM_HOME": str(tmp_path), "USIM_PY": sys.executable,
           "USIM_NO_STOP": "1", "USIM_CONTAINER_LOG": str(tmp_path / "container.log"), "USIM_THREADS": "1",
           "WANDB_MODE": "disabled"}
    with open(run_dir / "host.log", "wb") as log:   # as bring_up starts it: stdout and stderr into host.log
        code = subprocess.run(["bash", "runs/s/c/1.run.sh"], cwd=tmp_path, env=env, stdout=log,
                              stderr=subprocess.STDOUT, timeout=300).returncode
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    host_log = (run_dir / "host.log").read_text()
    assert code == 1, host_log
    assert [e["kind"] for e in events] == ["error", "exit"], events
    assert "unknown key 'stages.codec.batch_sise'" in events[0]["reason"]
    assert events[-1]["code"] == 1 and "ChildFailedError" in events[-1]["error"]
    assert "ChildFailedError" in host_log and "exitcode  : 2" in host_log and "batch_sise" in host_log
    assert ingest(events).attempt["error_event"] == events[0]["reason"], "the trainer's own reason comes first"
    # without a word from the trainer (a rank killed outright), the exit still ends the attempt, with why
    got = ingest(events[1:]).attempt["error_event"]
    assert got.startswith("exit code 1 without a done event: torch.distributed.elastic") and "ChildFailedError" in got
    assert "error_event" not in ingest(events[1:], concluded=True).attempt
    assert "error_event" not in ingest([{"v": 1, "kind": "done", "t": 1}, {"v": 1, "kind": "exit", "code": 0}]).attempt
