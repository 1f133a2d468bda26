"""Executing instances: the onstart script runs as a local subprocess (real bootstrap, real `usim-core`).

The container's environment (image_env) is what Vast gives an instance: the image's own variables (its python
under opt/conda/bin), the create call's env plus CONTAINER_ID and CONTAINER_API_KEY (a per-instance key the
bootstrap uses to stop its own container), VAST_URL pointing back at the emulator, and
USIM_PREINSTALLED/USIM_NO_KILL_INIT so the onstart bootstrap skips `pip install` and never signals this
machine's PID 1.

An instance created with an SSH runtype (what usim and the vastai CLI send) also serves SSH (sshd.py) once
it runs, and, as on Vast, stays running when its onstart script ends: only a stop or a destroy ends it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

from usim_tui.emulator.sshd import BARE_PATH
from usim_tui.emulator.state import Emulator, Instance
from usim_tui.emulator.timeline import Phase

PASS_ENV = ("LANG", "LC_ALL", "TMPDIR", "WANDB_MODE", "WANDB_DIR", "WANDB_SILENT", "USIM_THREADS")


def image_env(emu: Emulator, inst: Instance, root: Path) -> dict[str, str]:
    """The container's init environment (what the onstart, and /proc/1/environ on Vast, see): the image's PATH
    to its python (<root>/opt/conda/bin, a wrapper of this venv's python, which has torch), pip installs
    into <root>/site (offline, no deps: the venv has them), the create call's env and Vast's own variables."""
    site = root / "site"
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.update(
        HOME=str(root), USIM_HOME=str(root), USER="root", LOGNAME="root",
        PATH=os.pathsep.join([str(root / "opt/conda/bin"), str(site / "bin"), BARE_PATH]),
        PYTHONPATH=str(site), PIP_TARGET=str(site), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
        USIM_PIP_FLAGS="--no-deps --no-index --upgrade", USIM_CONTAINER_LOG=str(root / "container.log"),
        MPLCONFIGDIR=str(root / ".mpl"))
    env.update(inst.env)
    env.update(CONTAINER_ID=str(inst.id), CONTAINER_API_KEY=inst.api_key, VAST_URL=emu.base_url,
               USIM_WORKDIR=str(root / "workspace"), USIM_PREINSTALLED="1", USIM_NO_KILL_INIT="1",
               USIM_EMU_INSTANCE=inst.marker)
    return env


def install_image_python(root: Path) -> None:
    """The image's python where an image puts it (opt/conda/bin), not on a bare PATH; and `usim-core`, which
    the onstart bootstrap's USIM_PREINSTALLED says the image has."""
    bindir = root / "opt/conda/bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for name, run in (("python", ""), ("python3", ""), ("usim-core", " -m usim_core")):
        wrapper = bindir / name
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}"{run} "$@"\n')
        wrapper.chmod(0o755)


def start(emu: Emulator, inst: Instance) -> None:
    inst.proc = asyncio.get_running_loop().create_task(_run(emu, inst))


async def _run(emu: Emulator, inst: Instance) -> None:
    root = Path(emu.workdir or "emulator-instances").resolve() / str(inst.id)   # scripts run by absolute paths
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
    install_image_python(root)
    env = image_env(emu, inst, root)
    if inst.has_ssh:
        inst.ssh_port = free_port()   # listed from `running` on; it answers only after the refusal (or never)
        asyncio.get_running_loop().create_task(_serve_ssh(emu, inst, root, env))
    with open(inst.log_path, "ab") as log:
        proc = await asyncio.create_subprocess_exec(
            "bash", str(script), cwd=root, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    inst.proc = proc
    phases.append(Phase(emu.clock.now(), "running", ""))
    code = await proc.wait()
    if inst.destroyed_at is None and not inst.stop_requested and not inst.has_ssh:
        phases.append(Phase(emu.clock.now(), "exited", f"container exited ({code})", "running", "running"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _serve_ssh(emu: Emulator, inst: Instance, root: Path, env: dict[str, str]) -> None:
    """SSH on the listed port once the refusal is over; on a dead host, never (the port stays closed)."""
    from usim_tui.emulator.sshd import session_env, start_sshd

    if inst.ssh_dead:
        return
    await asyncio.sleep(inst.ssh_refused_s)   # real seconds: executing instances run on a real clock
    if inst.destroyed_at is not None or inst.stop_requested:
        return
    inst.sshd, _ = await start_sshd(inst, root, session_env(inst, root, env, emu.realism.bare_ssh_env),
                                    port=inst.ssh_port or 0)


def outbid_now(emu: Emulator, inst: Instance, rise: float) -> None:
    """An executing bid instance outbid now (a test's fault): stopped as Vast stops it, its processes killed and
    its SSH gone (a stopped container runs no sshd), its disk (the sandbox) kept."""
    emu.outbid_now(inst, rise)
    kill(inst)


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
            kill_sandbox(inst.marker)
        else:
            asyncio.get_running_loop().call_later(grace_s + 5.0, kill_sandbox, inst.marker)
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
