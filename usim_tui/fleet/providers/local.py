"""The local provider: each instance is a `usim-core train` subprocess on this machine.

Every attempt lives in its run directory runs/<sweep>/<cell>/<attempt>/: config.yaml (written first),
instance.json (label, pid, process start time, price), console.log (stdout + stderr, what `logs` reads) and
exit_code (written by a tiny shell wrapper when the trainer ends, so a restarted controller that is no longer
the parent still learns it). Processes run in their own session, so they survive a controller restart and
`list` rediscovers them from disk. A notional $/h makes budget burn real in local runs.

A cell on N > 1 GPUs trains under torchrun with N processes (`--device auto`: gloo on this machine's CPU, NCCL
where it has N GPUs) and is billed N / `priced_gpus` times the notional price, as the sweep prices it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from usim_tui.fleet.providers.base import EXITED, PENDING, RUNNING, LaunchSpec, Observed, ProviderError

DEFAULT_COMMAND = [sys.executable, "-m", "usim_core", "train", "--config", "{config}", "--run-dir", "{run_dir}"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node={num_gpus}"]
# The wrapper records its own pid first (it leads the trainer's session), so an instance whose creator died
# before writing the pid into instance.json can still be found and destroyed.
WRAPPER = ('echo $$ > wrapper.pid; "$@"; code=$?; echo $code > exit_code.tmp && mv exit_code.tmp exit_code; '
           'exit $code')


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of a process (guards against pid reuse); None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return "?"
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def group_alive(pgid: int) -> bool:
    """Is any process of this process group still running (zombies, dead but not yet reaped, do not count)?"""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X") and fields[2] == str(pgid):
            return True
    return False


class LocalProvider:
    name = "local"
    logs_are_cheap = True    # a file read, not an API call: every running attempt is read every poll

    def __init__(self, root: str | Path = "runs", price_per_hour: float = 0.0, *, command: list[str] | None = None,
                 threads: int | None = None, priced_gpus: int = 1) -> None:
        """price_per_hour: for a host of `priced_gpus` GPUs (the sweep's provider.num_gpus); command: replaces
        the trainer's command line ({config}, {run_dir}; a cell on several GPUs runs it as it is)."""
        self.root = Path(root).resolve()
        self.price_per_hour, self.priced_gpus = price_per_hour, priced_gpus
        self.command = command or DEFAULT_COMMAND
        self.threads = threads
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def _dir(self, provider_id: str) -> Path:
        d = (self.root / provider_id).resolve()
        if self.root not in d.parents:
            raise ProviderError(f"local instance id {provider_id!r} is outside {self.root}")
        return d

    async def create(self, spec: LaunchSpec) -> Observed:
        run_dir = Path(spec.run_dir).resolve()
        try:
            provider_id = str(run_dir.relative_to(self.root))
        except ValueError:
            raise ProviderError(f"run dir {run_dir} is not under the local provider root {self.root}") from None
        if (run_dir / "instance.json").exists():
            raise ProviderError(f"{run_dir} already holds an instance; attempts never share a run directory")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(spec.config, sort_keys=False))
        env = {**os.environ, **spec.env}
        if self.threads:
            env["USIM_THREADS"] = str(self.threads)
        command = self.command
        if spec.num_gpus > 1 and command is DEFAULT_COMMAND:   # python -m torch.distributed.run ... -m usim_core
            command = TORCHRUN + command[1:]
        cmd = [c.format(config=str(run_dir / "config.yaml"), run_dir=str(run_dir), num_gpus=spec.num_gpus)
               for c in command]
        created = time.time()
        price = self.price_per_hour * spec.num_gpus / self.priced_gpus
        info = {"label": spec.label, "pid": None, "proc_start": None, "created_at": created,
                "price_per_hour": price, "num_gpus": spec.num_gpus, "command": cmd}   # no env: secrets stay out
        _write_info(run_dir, info)   # before the process: a crash after it still leaves the label listed
        with open(run_dir / "console.log", "ab") as out:
            try:
                proc = subprocess.Popen(["/bin/sh", "-c", WRAPPER, "sh", *cmd], cwd=run_dir, stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                        start_new_session=True)
            except OSError as exc:
                raise ProviderError(f"cannot start {cmd[0]}: {exc}") from exc
        self._children[provider_id] = proc
        info.update(pid=proc.pid, proc_start=_proc_start(proc.pid))
        _write_info(run_dir, info)
        return self._observe(provider_id, info)

    def _info(self, d: Path) -> dict:
        """instance.json, with the pid recovered from the wrapper when the creator died before writing it."""
        info = json.loads((d / "instance.json").read_text())
        if info.get("pid") is None and (d / "wrapper.pid").exists():
            try:
                pid = int((d / "wrapper.pid").read_text().strip())
            except ValueError:
                return info
            info.update(pid=pid, proc_start=_proc_start(pid) or "gone")
        return info

    def _observe(self, provider_id: str, info: dict) -> Observed:
        d = self.root / provider_id
        child = self._children.get(provider_id)
        if child is not None:
            child.poll()  # reap our own children so they do not linger as zombies
        alive = info.get("pid") is not None and _proc_start(info["pid"]) == info.get("proc_start")
        code_file = d / "exit_code"
        exit_code = None
        if code_file.exists():
            try:
                exit_code = int(code_file.read_text().strip())
            except ValueError:
                exit_code = None
        if alive and exit_code is None:
            state = RUNNING
        elif info.get("pid") is None:
            state = PENDING
        else:
            state = EXITED
            if exit_code is None and child is not None and child.returncode is not None:
                exit_code = child.returncode
        return Observed(provider_id=provider_id, label=info["label"], state=state, machine_id="localhost",
                        gpu="cpu", price_per_hour=info.get("price_per_hour", 0.0), created_at=info.get("created_at"),
                        started_at=info.get("created_at"), exit_code=exit_code)

    async def list(self) -> list[Observed]:
        out = []
        for f in sorted(self.root.glob("*/*/*/instance.json")):
            if (f.parent / "destroyed").exists():
                continue
            try:
                info = self._info(f.parent)
            except (OSError, json.JSONDecodeError):
                continue
            out.append(self._observe(str(f.parent.relative_to(self.root)), info))
        return out

    async def destroy(self, provider_id: str) -> None:
        d = self._dir(provider_id)
        try:
            info = self._info(d)
        except (OSError, json.JSONDecodeError):
            return  # never created or already gone: destroy is idempotent
        pid = info.get("pid")
        if pid and _proc_start(pid) == info.get("proc_start"):
            for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
                try:
                    os.killpg(pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.time() + wait
                while time.time() < deadline:
                    if (child := self._children.get(provider_id)) is not None:
                        child.poll()
                    if _proc_start(pid) != info.get("proc_start") and not group_alive(pid):
                        break   # the wrapper and the trainer it runs: the whole session is gone
                    time.sleep(0.05)
                else:
                    continue
                break
            if _proc_start(pid) == info.get("proc_start") or group_alive(pid):
                raise ProviderError(f"local instance {provider_id} (pid {pid}) survived SIGKILL")
        (d / "destroyed").write_text(f"{time.time()}\n")
        self._children.pop(provider_id, None)

    async def logs(self, provider_id: str, tail: int = 1000) -> str:
        path = self._dir(provider_id) / "console.log"
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 400 * tail))
                data = f.read().decode(errors="replace")
        except OSError as exc:
            raise ProviderError(f"no log for local instance {provider_id}: {exc}") from exc
        return "\n".join(data.splitlines()[-tail:])

    async def close(self) -> None:
        for child in self._children.values():
            child.poll()


def _write_info(run_dir: Path, info: dict) -> None:
    tmp = run_dir / "instance.json.tmp"
    tmp.write_text(json.dumps(info))
    tmp.rename(run_dir / "instance.json")
