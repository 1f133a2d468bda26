"""Bringing a run up on a host over SSH, in one place (the SkyPilot model).

`bring_up` is what the controller calls when an instance first reaches running: wait for SSH to answer,
find the image's python (the one that imports torch), push the wheel (built from the sweep's checkout by
wheel.build_wheel), the resolved config and the run script, install the wheel with that python (its torch
pinned: usim never installs torch), start the trainer detached. After it, the controller reads
`<run_dir>/events.jsonl` with `provider.read_events` and, when the attempt ends, `provider.pull`s the run
directory before destroying the instance.

A Vast container's SSH session does not see the image's environment (its PATH to the conda python, CUDA's
variables): the onstart saves it to `~/.usim/image.env` (vast/onstart.py), and every step here and the run
script source it first (docs/vast.md, "What an SSH session sees").

Layout on the host (relative to the SSH login's home, /root on Vast):
  .usim/image.env                   the image's environment, saved by the onstart
  .usim/wheels/<wheel>              the pushed wheel
  <run_dir>.config.yaml             the resolved run config
  <run_dir>.run.sh                  run_script.sh, started detached; stdout in <run_dir>/host.log
  <run_dir>/                        the trainer's run dir (events.jsonl, metrics.jsonl, checkpoints/, eval/)
  <run_dir>/checkpoints/            on a resumed attempt, first the cell's resume point (pushed)
"""

from __future__ import annotations

import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from usim_tui.fleet.hosts.run_script import IMAGE_ENV, host_run_script
from usim_tui.fleet.hosts.ssh import HostCommandFailed, SSHUnreachable
from usim_tui.fleet.providers.base import ProviderError

WHEEL_DIR = ".usim/wheels"
NOT_READY = 4        # the probe's exit status while the onstart has not saved the image's environment
SOURCE_ENV = f'E="${{USIM_HOME:-$HOME}}/{IMAGE_ENV}"; [ -f "$E" ] && . "$E"'
# Each step a host runs starts with its tag (the emulator's simulated hosts answer by it).
PROBE = f""": usim-step=probe
E="${{USIM_HOME:-$HOME}}/{IMAGE_ENV}"
[ -f "$E" ] || {{ echo "the image's environment is not saved yet ($E: the onstart has not run)" >&2; exit {NOT_READY}; }}
. "$E"
tried=""
for p in "$(command -v python3)" "$(command -v python)" /opt/conda/bin/python /usr/local/bin/python3 /usr/bin/python3; do
  [ -n "$p" ] && [ -x "$p" ] || continue
  tried="$tried $p"
  v=$("$p" -c 'import torch; print(torch.__version__)' 2>/dev/null) && {{ echo "USIM_PY=$p"; echo "USIM_TORCH=$v"; exit 0; }}
done
echo "no python that imports torch on this host (tried:${{tried:- none}}); usim never installs torch: use an image that has it (provider.image)" >&2
exit 5"""
def install_command(python: str, torch: str, requirement: str) -> str:
    """Install the wheel with the image's python, its torch pinned (a newer torch is never pulled in)."""
    py = shlex.quote(python)
    return (f": usim-step=install; {SOURCE_ENV}; printf 'torch==%s\\n' {shlex.quote(torch)} > .usim/constraints.txt && "
            f"{py} -m pip install -q --no-input ${{USIM_PIP_FLAGS:-}} -c .usim/constraints.txt {shlex.quote(requirement)} "
            f"&& {py} -c 'import usim_core' || {{ echo 'usim_core does not import after the install' >&2; exit 3; }}")


class BringUpFailed(ProviderError):
    """The run could not be started on the host (the step and its one-line reason). `step` says which: ssh (no
    answer), probe (no image environment yet, or no python with torch), push, install, start. `retry`: the
    host may yet come round (SSH refused, the onstart not run yet, a dropped push), so the controller tries
    again next poll up to its SSH deadline; otherwise it never will (no torch, a failing install)."""

    def __init__(self, message: str, step: str, retry: bool = False) -> None:
        super().__init__(message)
        self.step, self.retry = step, retry


@dataclass(frozen=True)
class Interpreter:
    python: str         # the image's python that imports torch
    torch: str          # its torch version (pinned for the install)


async def check_ssh(provider: Any, provider_id: str) -> None:
    """`true` over SSH, once: the first connections to a new instance are often refused. The controller calls
    bring_up again next poll, up to its SSH deadline (provider.ssh_deadline_s after running)."""
    try:
        await provider.run_command(provider_id, "true", timeout_s=20)
    except SSHUnreachable as exc:
        raise BringUpFailed(f"instance {provider_id}: SSH did not answer ({exc})", "ssh", retry=True) from None


def parse_probe(out: str) -> Interpreter:
    fields = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("USIM_") and "=" in line)
    if not fields.get("USIM_PY") or not fields.get("USIM_TORCH"):
        raise HostCommandFailed(f"the probe answered without a python and its torch: {out.strip()[:200]!r}")
    return Interpreter(fields["USIM_PY"], fields["USIM_TORCH"])


async def bring_up(provider: Any, provider_id: str, *, wheel: Path, config: dict[str, Any], run_dir: str,
                   env: dict[str, str], max_runtime_s: float = 3 * 3600, install_timeout_s: float = 900.0,
                   num_gpus: int = 1, resume: dict[str, Path] | None = None) -> Interpreter:
    """Find the image's python, push wheel + config + run script, install the wheel, start the trainer
    detached (under torchrun, one process per GPU, when `num_gpus` > 1); returns the interpreter it runs on.
    `resume`: the trainer continues (`--resume`) from a resume point, these files (paths relative to the run
    dir: checkpoints/...) pushed into the run dir first; {}: from what the run dir on the host already holds.

    `run_dir` is relative to the login home (run_script.host_run_dir); `env` (W&B variables, secrets)
    reaches the trainer through a 0600 file, never a command line. Raises BringUpFailed naming the step."""
    wheel = Path(wheel)
    remote_wheel = f"{WHEEL_DIR}/{wheel.name}"
    await check_ssh(provider, provider_id)
    found = parse_probe(await _step(provider_id, "probe", provider.run_command(provider_id, PROBE, timeout_s=60)))
    with tempfile.TemporaryDirectory(prefix="usim-bringup-") as d:
        cfg = Path(d) / "config.yaml"
        cfg.write_text(yaml.safe_dump(config, sort_keys=False))
        script = Path(d) / "run.sh"
        script.write_text(host_run_script(run_dir, max_runtime_s, num_gpus, resume=resume is not None))
        pushed = {f"{run_dir}/{rel}": local for rel, local in (resume or {}).items()}
        await _step(provider_id, "push", provider.push(provider_id, {
            remote_wheel: wheel, f"{run_dir}.config.yaml": cfg, f"{run_dir}.run.sh": script, **pushed}))
    install = install_command(found.python, found.torch, remote_wheel + "[core]")
    await _step(provider_id, "install", provider.run_command(provider_id, install, timeout_s=install_timeout_s))
    q = shlex.quote(run_dir)
    command = f": usim-step=start; mkdir -p {q} && bash {shlex.quote(run_dir + '.run.sh')} >> {q}/host.log 2>&1"
    await _step(provider_id, "start", provider.start(provider_id, command, {**env, "USIM_PY": found.python}))
    return found


async def _step(provider_id: str, name: str, call: Any) -> Any:
    try:
        return await call
    except SSHUnreachable as exc:
        raise BringUpFailed(f"instance {provider_id}: {name}: SSH dropped ({exc})", "ssh", retry=True) from None
    except HostCommandFailed as exc:
        retry = name in ("push", "start") or exc.exit_status == NOT_READY
        raise BringUpFailed(f"instance {provider_id}: {name} failed: {exc}", name, retry=retry) from None
