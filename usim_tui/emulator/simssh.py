"""SSH to the emulator's synthetic instances, on its clock: what a rehearsal's controller reaches its hosts with.

It answers the calls of fleet/hosts/ssh.py's SSHSession (connect, run, push, read_from, pull, drop, close) from
each instance's plan, so a rehearsal brings runs up over "SSH" as a real night does, in virtual time. It models
when a host answers and what each step costs, not a shell: the steps fleet/hosts/bring_up.py runs are known by
their `: usim-step=NAME` tag (the probe finds the image's python, the start places the run's script on the
clock after the install's time). What a real shell makes of those steps is proven by executing instances
(process.py, sshd.py) over real SSH.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from usim_tui.emulator.faults import draw, rng_for
from usim_tui.emulator.state import Emulator, Instance, ssh_fields
from usim_tui.fleet.hosts.ssh import PullFailed, SSHUnreachable, Target, replace_dir
from usim_tui.fleet.providers.base import PullResult

STEP = re.compile(r": usim-step=(\w+)")
IMAGE_PYTHON = "/opt/conda/bin/python"
IMAGE_TORCH = "2.5.1"   # the default image's (pytorch/pytorch:2.5.1-...)


class SimSSH:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def _host(self, t: Target) -> Instance:
        """The instance behind the target, if it answers SSH now (refused for a while after running; never on a
        dead host), else SSHUnreachable as a refused connection reads."""
        now = self.emu.clock.now()
        for inst in self.emu.instances.values():
            where = ssh_fields(inst, running=True)
            if inst.destroyed_at is None and where["ssh_host"] == t.host and where["ssh_port"] == t.port:
                if inst.ssh_answers(now):
                    return inst
                break
        raise SSHUnreachable(f"ssh {t.user}@{t.host}:{t.port}: ConnectionRefusedError: Connect call failed")

    async def connect(self, t: Target) -> Instance:
        return self._host(t)

    def drop(self, t: Target) -> None:
        pass

    async def close(self) -> None:
        pass

    async def run(self, t: Target, command: str, *, timeout_s: float | None = None, check: bool = True) -> str:
        inst = self._host(t)
        step = m.group(1) if (m := STEP.search(command)) else ""
        if step == "probe":
            return f"USIM_PY={IMAGE_PYTHON}\nUSIM_TORCH={IMAGE_TORCH}\n"
        if "nohup setsid" in command and step == "start":   # the detached start (vast/host.py: start)
            rng = rng_for(self.emu.seed, f"install:{inst.label or inst.id}")
            inst.plan.place_script(self.emu.clock.now() + draw(rng, self.emu.faults.install_s))
            return "started\n"
        return ""

    async def push(self, t: Target, files: dict[str, Path]) -> None:
        """Nothing is stored but what the run will do: a run script with `--resume` makes the next start resume,
        from the pushed resume point's checkpoints (written by pull_resume) or else from this host's own disk."""
        inst = self._host(t)
        script = next((local for remote, local in files.items() if remote.endswith(".run.sh")), None)
        if script is None or "--resume" not in Path(script).read_text():
            return
        marks = [json.loads(Path(local).read_text()) for remote, local in files.items() if remote.endswith(".pt")]
        if marks:
            point: dict = {"finished": [m["stage"] for m in marks if "epoch" not in m]}
            point.update(next((m for m in marks if "epoch" in m), {}))
        else:
            point = inst.plan.point_at(self.emu.clock.now())
        inst.plan.resume = point

    async def read_from(self, t: Target, path: str, offset: int, *, limit: int = 4 << 20) -> bytes:
        inst = self._host(t)
        if not path.endswith("events.jsonl"):
            return b""
        return _events_file(inst, self.emu.clock.now())[offset:offset + limit]

    async def pull(self, t: Target, run_dir: str, dest: Path, max_checkpoint_bytes: int, **_: float) -> PullResult:
        inst = self._host(t)
        data = _events_file(inst, self.emu.clock.now())
        if not data:
            raise PullFailed(f"pull: {run_dir} does not exist on {t.host}:{t.port}")
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "events.jsonl").write_bytes(data)
        return PullResult(files=["events.jsonl"], bytes=len(data))

    async def pull_resume(self, t: Target, run_dir: str, dest: Path, max_checkpoint_bytes: int, **_: float
                          ) -> PullResult:
        """The run's resume point as its events place it: a small JSON stand-in for each checkpoint (its stage,
        and for the unfinished one the epoch and step), dated at the event it follows, and the events."""
        inst = self._host(t)
        now = self.emu.clock.now()
        point = inst.plan.point_at(now)
        if not point["finished"] and "stage" not in point:
            raise PullFailed(f"resume pull: no checkpoint in {run_dir} on {t.host}:{t.port} yet")
        files = {f"checkpoints/{s}.pt": {"stage": s} for s in point["finished"]}
        if "stage" in point:
            files[f"checkpoints/{point['stage']}.last.pt"] = {k: point[k] for k in ("stage", "epoch", "step")}
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=Path(dest).parent) as d:
            tmp = Path(d) / "point"
            for rel, mark in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_text(json.dumps({"emulated": "usim emulator resume point", **mark}))
                if "epoch" in mark:
                    os.utime(tmp / rel, (point["t"], point["t"]))
            (tmp / "events.jsonl").write_bytes(_events_file(inst, now))
            replace_dir(tmp, Path(dest))
        return PullResult(files=[*files, "events.jsonl"], bytes=sum(len(json.dumps(m)) for m in files.values()))


def _events_file(inst: Instance, now: float) -> bytes:
    lines = [line for at, line in inst.plan.events if at <= now]
    return "".join(line + "\n" for line in lines).encode()
