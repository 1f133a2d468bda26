"""Executing instances: the onstart script runs as a local subprocess (real bootstrap, real `usim-core`).

The container's environment is what Vast gives an instance: the create call's env plus CONTAINER_ID and
CONTAINER_API_KEY (a per-instance key the bootstrap uses to stop its own container), VAST_URL pointing
back at the emulator, and USIM_PREINSTALLED/USIM_NO_KILL_INIT so the bootstrap skips `pip install` and
never signals this machine's PID 1.

An instance created with an SSH runtype (what usim and the vastai CLI send) also serves SSH (sshd.py) once
it runs, and, as on Vast, stays running when its onstart script ends: only a stop or a destroy ends it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from usim_tui.emulator.state import Emulator, Instance
from usim_tui.emulator.timeline import Phase

PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "WANDB_MODE", "WANDB_DIR", "WANDB_SILENT",
            "PYTHONPATH", "VIRTUAL_ENV")


def start(emu: Emulator, inst: Instance) -> None:
    inst.proc = asyncio.get_running_loop().create_task(_run(emu, inst))


async def _run(emu: Emulator, inst: Instance) -> None:
    root = Path(emu.workdir or "emulator-instances") / str(inst.id)
    root.mkdir(parents=True, exist_ok=True)
    script = root / "onstart.sh"
    script.write_text(inst.onstart)
    inst.log_path = str(root / "container.log")
    phases = inst.plan.phases
    await asyncio.sleep(0.1)
    phases.append(Phase(emu.clock.now(), "created", "Creating container"))
    await asyncio.sleep(0.1)
    phases.append(Phase(emu.clock.now(), "loading", "Pulling image layers"))
    await asyncio.sleep(0.2)
    if inst.destroyed_at is not None or inst.stop_requested:
        return
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env.update(inst.env)
    env.update(CONTAINER_ID=str(inst.id), CONTAINER_API_KEY=inst.api_key, VAST_URL=emu.base_url,
               USIM_WORKDIR=str(root / "workspace"), USIM_PREINSTALLED="1", USIM_NO_KILL_INIT="1",
               USIM_HOME=str(root), USIM_EMU_INSTANCE=str(inst.id))
    if inst.has_ssh:
        from usim_tui.emulator.sshd import start_sshd
        inst.sshd, inst.ssh_port = await start_sshd(inst, root, emu.base_url)
    with open(inst.log_path, "ab") as log:
        proc = await asyncio.create_subprocess_exec(
            "bash", str(script), cwd=root, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    inst.proc = proc
    phases.append(Phase(emu.clock.now(), "running", ""))
    code = await proc.wait()
    if inst.destroyed_at is None and not inst.stop_requested and not inst.has_ssh:
        phases.append(Phase(emu.clock.now(), "exited", f"container exited ({code})", "running", "running"))


def kill(inst: Instance, grace_s: float = 0.0) -> None:
    """End the instance's process group (SIGTERM, then SIGKILL), after `grace_s` seconds; its sshd and
    everything started over SSH end with it."""
    if inst.sshd is not None:
        from usim_tui.emulator.sshd import kill_sandbox
        inst.sshd.close()
        inst.sshd = None
        for conn in list(inst.ssh_conns):
            conn.close()
        inst.ssh_conns.clear()
        if grace_s <= 0:
            kill_sandbox(inst.id)
        else:
            asyncio.get_running_loop().call_later(grace_s + 5.0, kill_sandbox, inst.id)
    proc = inst.proc
    if isinstance(proc, asyncio.Task):
        if not proc.done():
            proc.cancel()
        return
    if proc is None or proc.returncode is not None:
        return

    def _signal(sig: int) -> None:
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass

    loop = asyncio.get_running_loop()
    loop.call_later(grace_s, _signal, signal.SIGTERM)
    loop.call_later(grace_s + 5.0, _signal, signal.SIGKILL)
