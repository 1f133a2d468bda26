"""Bringing a run up on a host over SSH, in one place (the SkyPilot model).

`bring_up` is what the controller calls when an instance first reaches running: wait for SSH to answer,
push the wheel (built from the sweep's checkout by wheel.build_wheel) and the resolved config and the run
script, install the wheel, start `usim-core train` detached. After it, the controller reads
`<run_dir>/events.jsonl` with `provider.read_events` and, when the attempt ends, `provider.pull`s the run
directory before destroying the instance.

Layout on the host (relative to the SSH login's home, /root on Vast):
  .usim/wheels/<wheel>              the pushed wheel
  <run_dir>.config.yaml             the resolved run config
  <run_dir>.run.sh                  run_script.sh, started detached; stdout in <run_dir>/host.log
  <run_dir>/                        the trainer's run dir (events.jsonl, metrics.jsonl, checkpoints/, eval/)
"""

from __future__ import annotations

import asyncio
import shlex
import tempfile
from pathlib import Path
from typing import Any

import yaml

from usim_tui.fleet.hosts.run_script import host_run_script
from usim_tui.fleet.hosts.ssh import HostCommandFailed, SSHUnreachable
from usim_tui.fleet.providers.base import ProviderError

WHEEL_DIR = ".usim/wheels"
# pip flags for the wheel install; the emulator's sandbox adds --no-deps through USIM_PIP_FLAGS (its venv
# has the dependencies). On a real host the image's torch satisfies `torch>=2.4`; the rest is installed.
INSTALL = ("python3 -m pip install -q --no-input ${{USIM_PIP_FLAGS:-}} {requirement} && "
           "{{ command -v usim-core >/dev/null || {{ echo 'usim-core is not on PATH after the install' >&2; exit 3; }}; }}")


class BringUpFailed(ProviderError):
    """The run could not be started on the host (the step and its one-line reason)."""


async def wait_for_ssh(provider: Any, provider_id: str, *, deadline_s: float = 180.0, every_s: float = 3.0) -> None:
    """Until `true` runs over SSH: the first connections to a new instance are often refused."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        try:
            await provider.run_command(provider_id, "true", timeout_s=20)
            return
        except SSHUnreachable as exc:
            if loop.time() + every_s > end:
                raise BringUpFailed(f"instance {provider_id}: SSH did not answer in {deadline_s:g} s ({exc})") from None
            await asyncio.sleep(every_s)


async def bring_up(provider: Any, provider_id: str, *, wheel: Path, config: dict[str, Any], run_dir: str,
                   env: dict[str, str], max_runtime_s: float = 3 * 3600, install_timeout_s: float = 900.0,
                   ssh_deadline_s: float = 180.0) -> None:
    """Push wheel + config + run script, install the wheel, start the trainer detached.

    `run_dir` is relative to the login home (run_script.host_run_dir); `env` (W&B variables, secrets)
    reaches the trainer through a 0600 file, never a command line. Raises BringUpFailed naming the step."""
    wheel = Path(wheel)
    remote_wheel = f"{WHEEL_DIR}/{wheel.name}"
    await wait_for_ssh(provider, provider_id, deadline_s=ssh_deadline_s)
    with tempfile.TemporaryDirectory(prefix="usim-bringup-") as d:
        cfg = Path(d) / "config.yaml"
        cfg.write_text(yaml.safe_dump(config, sort_keys=False))
        script = Path(d) / "run.sh"
        script.write_text(host_run_script(run_dir, max_runtime_s))
        await _step(provider_id, "push", provider.push(provider_id, {
            remote_wheel: wheel, f"{run_dir}.config.yaml": cfg, f"{run_dir}.run.sh": script}))
    install = INSTALL.format(requirement=shlex.quote(remote_wheel + "[core]"))
    await _step(provider_id, "install", provider.run_command(provider_id, install, timeout_s=install_timeout_s))
    q = shlex.quote(run_dir)
    command = f"mkdir -p {q} && bash {shlex.quote(run_dir + '.run.sh')} > {q}/host.log 2>&1"
    await _step(provider_id, "start", provider.start(provider_id, command, env))


async def _step(provider_id: str, name: str, call: Any) -> Any:
    try:
        return await call
    except (HostCommandFailed, SSHUnreachable) as exc:
        raise BringUpFailed(f"instance {provider_id}: {name} failed: {exc}") from None
