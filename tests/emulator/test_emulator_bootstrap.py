"""The bootstrap script, run for real by an executing emulator instance with a stand-in trainer."""

from __future__ import annotations

import asyncio
import base64
import gzip
import shlex
import subprocess
from pathlib import Path

import pytest

from usim_core.events import parse_lines
from usim_core.sweep import ProviderSettings
from usim_tui.emulator.server import serve
from usim_tui.emulator.state import Emulator
from usim_tui.fleet.providers.base import EXITED, LaunchSpec, make_label
from usim_tui.fleet.vast.onstart import ONSTART_MAX, install_arg, onstart_script, render
from usim_tui.fleet.vast.provider import VastProvider

KEY = "boot-key-123456789"
SECRET = "wandb-0123456789abcdef"


def spec(config: dict, **kw) -> LaunchSpec:
    return LaunchSpec(label=make_label("s", "c", 2), sweep="s", cell="c", attempt=2, config=config,
                      run_dir="/laptop/runs/s/c/2", env={"WANDB_API_KEY": SECRET, **kw})


def test_script_is_valid_bash_and_packs_when_long():
    settings = ProviderSettings(kind="vast", install="https://github.com/o/usim@abc123")
    short = onstart_script(spec({"seed": 1}), settings)
    assert short.startswith("#!/bin/bash") and len(short) <= ONSTART_MAX
    assert "git+https://github.com/o/usim@abc123" in short and SECRET not in short
    assert subprocess.run(["bash", "-n"], input=short, text=True).returncode == 0
    big = {"notes": ["x" * 60 for _ in range(120)]}
    packed = onstart_script(spec(big), settings)
    assert len(packed) <= ONSTART_MAX and "usim-bootstrap (packed)" in packed
    blob = packed.split("echo '")[1].split("'")[0]
    assert gzip.decompress(base64.b64decode(blob)).decode() == render(spec(big), settings)
    with pytest.raises(ValueError, match="secret"):
        render(spec({"note": SECRET}), settings)
    assert install_arg("usim-sweeps==0.1.0") == "usim-sweeps==0.1.0"
    whl = "https://example.org/dist/usim_sweeps-0.1.0-py3-none-any.whl"
    assert install_arg(whl) == whl, "a wheel URL is installed as it is, never as git+"
    assert install_arg(whl + "#sha256=ab") == shlex.quote(whl + "#sha256=ab")
    for wrong in ("usim==0.1.0", "usim", "usim[core]"):   # the unrelated PyPI project
        with pytest.raises(ValueError, match="unrelated"):
            install_arg(wrong)
    with pytest.raises(ValueError, match="SSH"):
        install_arg("wheel")


def test_default_install_is_the_pushed_wheel_and_its_onstart_only_marks_the_start(tmp_path):
    settings = ProviderSettings(kind="vast")
    assert settings.install == "wheel"
    script = onstart_script(spec({"seed": 1}), settings)
    assert "pip install" not in script and "usim-core" not in script and SECRET not in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "USIM_HOME": str(tmp_path),
                              "CONTAINER_ID": "7", "CONTAINER_API_KEY": "ck"}).stdout
    (event,) = parse_lines(out)
    assert event["kind"] == "bootstrap" and event["label"] == make_label("s", "c", 2)
    saved = tmp_path / ".usim" / "container.env"
    assert "CONTAINER_API_KEY='ck'" in saved.read_text() and (saved.stat().st_mode & 0o777) == 0o600


async def run_instance(tmp_path: Path, trainer: str, max_runtime: float = 60) -> tuple[Emulator, str, str]:
    fake = tmp_path / "fake-usim-core"
    fake.write_text("#!/bin/bash\n" + trainer)
    fake.chmod(0o755)
    settings = ProviderSettings(kind="vast", max_runtime_s=max_runtime, install="usim-sweeps==0.1.0")
    emu = Emulator(api_keys=(KEY,), execute=True, workdir=str(tmp_path / "hosts"), gentle=True)
    async with serve(emu) as url:
        p = VastProvider(settings, api_key=KEY, base_url=url, sweep="s")
        o = await p.create(spec({"seed": 1}, USIM_CORE=str(fake)))
        for _ in range(200):
            await asyncio.sleep(0.1)
            (obs,) = await p.list()
            if obs.state == EXITED:
                break
        logs = await p.logs(o.provider_id)
        await p.destroy(o.provider_id)
        await p.close()
    return emu, obs.state, logs


async def test_failing_trainer_still_reports_and_stops_its_container(tmp_path):
    trainer = ('echo "@usim {\\"v\\":1,\\"kind\\":\\"started\\",\\"t\\":1}"\n'
               'test "$1 $2" = "train --config" && grep -q "seed: 1" "$3" || exit 7\n'
               'test "$WANDB_API_KEY" = "' + SECRET + '" || exit 8\n'
               'echo "full eval gate failed" >&2; exit 3\n')
    emu, state, logs = await run_instance(tmp_path, trainer)
    events = parse_lines(logs)
    assert [e["kind"] for e in events] == ["bootstrap", "started", "exit"]
    assert events[-1]["code"] == 3, "the trainer's exit status, after the config and env were checked"
    assert state == EXITED, "the trap stopped the container through the API despite the failure"
    (inst,) = emu.instances.values()
    assert SECRET not in inst.onstart


async def test_max_runtime_deadline_ends_a_hung_trainer(tmp_path):
    emu, state, logs = await run_instance(tmp_path, "sleep 600\n", max_runtime=2)
    events = parse_lines(logs)
    assert events[-1]["kind"] == "exit" and events[-1]["code"] == 124   # timeout's status
    assert state == EXITED
