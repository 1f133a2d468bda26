"""SSH to a host (asyncssh): run a command, push files, read a file from an offset, pull a run directory or
its resume point.

Every call has a timeout and raises a ProviderError subclass with one clear line. Remote paths are relative
to the SSH login's home directory (`/root` on a Vast container) unless absolute. Host keys are not checked:
a Vast instance's host key is not known before it runs (SkyPilot does the same); the connection is still
encrypted and authenticated by our key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import shlex
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncssh

from usim_core.config import STAGES
from usim_tui.fleet.providers.base import ProviderError, PullResult

R = TypeVar("R")
PULL_PATTERNS = ("config.yaml", "events.jsonl", "metrics.jsonl", "train.log", "host.log")
EVAL_SUFFIXES = (".json", ".png")


class SSHUnreachable(ProviderError):
    """No SSH connection (refused, timed out, key not accepted)."""


class HostCommandFailed(ProviderError):
    """A command on the host exited non-zero (`exit_status`; None when it did not end in time)."""

    def __init__(self, message: str, exit_status: int | None = None) -> None:
        super().__init__(message)
        self.exit_status = exit_status


class PullFailed(ProviderError):
    """A run directory could not be brought back."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    user: str = "root"


class SSHSession:
    """One cached connection per target; a failed call drops it so the next one reconnects."""

    def __init__(self, key: asyncssh.SSHKey, *, connect_timeout_s: float = 15.0,
                 command_timeout_s: float = 120.0) -> None:
        self._key = key
        self.connect_timeout_s = connect_timeout_s
        self.command_timeout_s = command_timeout_s
        self._conns: dict[Target, asyncssh.SSHClientConnection] = {}
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SSHSession(connections={len(self._conns)})"

    async def connect(self, t: Target) -> asyncssh.SSHClientConnection:
        async with self._lock:
            conn = self._conns.get(t)
            if conn is not None and not conn.is_closed():
                return conn
            try:
                conn = await asyncio.wait_for(asyncssh.connect(
                    t.host, t.port, username=t.user, client_keys=[self._key], known_hosts=None,
                    agent_path=None, config=None, connect_timeout=self.connect_timeout_s,
                    keepalive_interval=30), self.connect_timeout_s + 5)
            except (OSError, TimeoutError, asyncssh.Error) as exc:
                raise SSHUnreachable(f"ssh {t.user}@{t.host}:{t.port}: {_why(exc)}") from None
            self._conns[t] = conn
            return conn

    def drop(self, t: Target) -> None:
        conn = self._conns.pop(t, None)
        if conn is not None:
            conn.close()

    async def run(self, t: Target, command: str, *, timeout_s: float | None = None, check: bool = True) -> str:
        """stdout of `command`; HostCommandFailed (with the last stderr line) when it exits non-zero."""
        conn = await self.connect(t)
        timeout = timeout_s or self.command_timeout_s
        try:
            res = await asyncio.wait_for(conn.run(command, check=False, stdin=asyncssh.DEVNULL), timeout)
        except TimeoutError:
            self.drop(t)
            raise HostCommandFailed(f"ssh {t.host}:{t.port}: `{_short(command)}` did not end in {timeout:g} s") from None
        except (OSError, asyncssh.Error) as exc:
            self.drop(t)
            raise SSHUnreachable(f"ssh {t.host}:{t.port}: {_why(exc)}") from None
        if check and res.exit_status != 0:
            err = str(res.stderr or res.stdout or "").strip().splitlines()
            raise HostCommandFailed(f"ssh {t.host}:{t.port}: `{_short(command)}` exited {res.exit_status}: "
                                    f"{err[-1] if err else 'no output'}", res.exit_status)
        return str(res.stdout or "")

    @contextlib.asynccontextmanager
    async def sftp(self, t: Target, what: str):  # type: ignore[no-untyped-def]
        conn = await self.connect(t)
        try:
            async with conn.start_sftp_client() as sftp:
                yield sftp
        except (OSError, asyncssh.Error) as exc:
            self.drop(t)
            raise SSHUnreachable(f"sftp {t.host}:{t.port} ({what}): {_why(exc)}") from None

    async def push(self, t: Target, files: dict[str, Path], *, timeout_s: float = 600.0) -> None:
        """Copy local files to remote paths (parents made); each lands under a temp name, then is renamed."""
        async def go() -> None:
            async with self.sftp(t, "push") as sftp:
                for remote, local in files.items():
                    parent = posixpath.dirname(remote)
                    if parent:
                        await sftp.makedirs(parent, exist_ok=True)
                    tmp = remote + ".part"
                    await sftp.put(str(local), tmp, preserve=True)   # modes too: an env file stays 0600
                    await sftp.posix_rename(tmp, remote)
        try:
            await asyncio.wait_for(go(), timeout_s)
        except TimeoutError:
            self.drop(t)
            raise SSHUnreachable(f"sftp {t.host}:{t.port}: push did not finish in {timeout_s:g} s") from None

    async def read_from(self, t: Target, path: str, offset: int, *, limit: int = 4 << 20) -> bytes:
        """Bytes of a remote file from `offset` (at most `limit`); b'' when the file does not exist yet."""
        async with self.sftp(t, "read") as sftp:
            try:
                async with sftp.open(path, "rb") as f:
                    await f.seek(offset)
                    data = await f.read(limit)
            except asyncssh.SFTPNoSuchFile:
                return b""
        return bytes(data or b"")

    async def pull(self, t: Target, run_dir: str, dest: Path, max_checkpoint_bytes: int, *,
                   small_timeout_s: float = 300.0, checkpoint_timeout_s: float = 240.0) -> PullResult:
        """The run directory's results into `dest`, small files first (config, events, metrics, logs, eval JSONs
        and figures: into a temp dir beside `dest`, renamed into place when all are whole), then the last
        checkpoint (under a temp name until whole). A checkpoint that does not come is said in `skipped`:
        what arrived stays (PullFailed only when the small files do not come)."""
        dest = Path(dest)
        result, ckpt = await self._whole_into(t, dest, f"pull of {run_dir}", small_timeout_s,
                                              lambda tmp: self._pull_small(t, run_dir, tmp))
        if ckpt is not None:
            name, size = ckpt
            if size > max_checkpoint_bytes:
                result.skipped.append(f"{name} ({size} bytes > max_checkpoint_bytes {max_checkpoint_bytes})")
            else:
                try:
                    await asyncio.wait_for(self._pull_file(t, run_dir, name, dest), checkpoint_timeout_s)
                    result.files.append(name)
                    result.bytes += size
                except (TimeoutError, SSHUnreachable, OSError, asyncssh.Error) as exc:
                    self.drop(t)
                    why = f"not whole in {checkpoint_timeout_s:g} s" if isinstance(exc, TimeoutError) else _why(exc)
                    result.skipped.append(f"{name} (the pull failed: {why}; the rest arrived)")
        return result

    async def pull_resume(self, t: Target, run_dir: str, dest: Path, max_checkpoint_bytes: int, *,
                          timeout_s: float = 600.0) -> PullResult:
        """The run's resume point into `dest`, replacing what was there only when all of it arrived: every
        checkpoint in `checkpoints/` (each finished stage's and the unfinished one's `.last.pt`: what
        `usim-core train --resume` continues from), then events.jsonl and metrics.jsonl (as new as the
        checkpoints or newer). A file already in `dest` with the same size and time is copied there, not
        pulled again (a finished stage's checkpoint does not change). PullFailed when any of it does not come."""
        dest = Path(dest)
        return await self._whole_into(t, dest, f"resume pull of {run_dir}", timeout_s,
                                      lambda tmp: self._pull_resume(t, run_dir, dest, tmp, max_checkpoint_bytes))

    async def _whole_into(self, t: Target, dest: Path, what: str, timeout_s: float,
                          fill: Callable[[Path], Awaitable[R]]) -> R:
        """`fill` a temp dir beside `dest` within `timeout_s`, then put it in `dest`'s place: `dest` changes only
        when all of it came; PullFailed (naming `what`) otherwise."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.pull-", dir=dest.parent))
        try:
            got = await asyncio.wait_for(fill(tmp), timeout_s)
            replace_dir(tmp, dest)
            return got
        except TimeoutError:
            self.drop(t)
            raise PullFailed(f"{what} from {t.host}:{t.port} did not finish in {timeout_s:g} s") from None
        except (SSHUnreachable, OSError, asyncssh.Error) as exc:
            raise PullFailed(f"{what} from {t.host}:{t.port} failed: {_why(exc)}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    async def _pull_resume(self, t: Target, run_dir: str, had: Path, tmp: Path, max_bytes: int) -> PullResult:
        result = PullResult()
        async with self.sftp(t, "resume pull") as sftp:
            remote = posixpath.join(run_dir, "checkpoints")
            if not await sftp.isdir(remote):
                raise PullFailed(f"resume pull: no checkpoint in {run_dir} on {t.host}:{t.port} yet")
            (tmp / "checkpoints").mkdir()
            for entry in await sftp.readdir(remote):
                name, size = entry.filename, int(entry.attrs.size or 0)
                if not name.endswith(".pt") or name.startswith("."):
                    continue
                if size > max_bytes:
                    raise PullFailed(f"resume pull: {name} is {size} bytes > max_checkpoint_bytes {max_bytes}")
                rel, local = f"checkpoints/{name}", tmp / "checkpoints" / name
                old, listed = had / rel, _mtime_ns(entry.attrs)
                if old.is_file() and old.stat().st_size == size and old.stat().st_mtime_ns == listed:
                    shutil.copy2(old, local)
                else:
                    # dated by the listing, taken before the copy: the trainer may replace the file meanwhile,
                    # and a file dated after its content would make resume_point claim epochs it does not hold
                    await sftp.get(posixpath.join(remote, name), str(local))
                    os.utime(local, ns=(listed, listed))
                    result.bytes += size
                result.files.append(rel)
            for name in ("events.jsonl", "metrics.jsonl"):
                if await sftp.isfile(posixpath.join(run_dir, name)):
                    await sftp.get(posixpath.join(run_dir, name), str(tmp / name))
                    result.files.append(name)
        return result

    async def _pull_small(self, t: Target, run_dir: str, tmp: Path) -> tuple[PullResult, tuple[str, int] | None]:
        """The small files into `tmp`; returns them and the last checkpoint (path, size), not pulled yet."""
        result = PullResult()
        async with self.sftp(t, "pull") as sftp:
            if not await sftp.isdir(run_dir):
                raise PullFailed(f"pull: {run_dir} does not exist on {t.host}:{t.port}")
            wanted = [n for n in PULL_PATTERNS if await sftp.isfile(posixpath.join(run_dir, n))]
            wanted += await _listed(sftp, run_dir, "eval", EVAL_SUFFIXES)
            for rel in wanted:
                local = tmp / rel
                local.parent.mkdir(parents=True, exist_ok=True)
                await sftp.get(posixpath.join(run_dir, rel), str(local))
                result.files.append(rel)
                result.bytes += local.stat().st_size
            return result, await _last_checkpoint(sftp, run_dir)

    async def _pull_file(self, t: Target, run_dir: str, rel: str, dest: Path) -> None:
        local = dest / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        part = local.with_name(local.name + ".part")
        async with self.sftp(t, "pull") as sftp:
            await sftp.get(posixpath.join(run_dir, rel), str(part))
        part.rename(local)

    async def close(self) -> None:
        for t in list(self._conns):
            self.drop(t)


def _mtime_ns(attrs: asyncssh.SFTPAttrs) -> int:
    """A listed file's modification time in ns (SFTP v3 gives whole seconds)."""
    return attrs.mtime_ns if attrs.mtime_ns is not None else int(attrs.mtime or 0) * 1_000_000_000


async def _listed(sftp: asyncssh.SFTPClient, run_dir: str, sub: str, suffixes: tuple[str, ...]) -> list[str]:
    path = posixpath.join(run_dir, sub)
    if not await sftp.isdir(path):
        return []
    names = sorted(n for n in await sftp.listdir(path) if n.endswith(suffixes))
    return [posixpath.join(sub, n) for n in names]


async def _last_checkpoint(sftp: asyncssh.SFTPClient, run_dir: str) -> tuple[str, int] | None:
    """checkpoints/<newest>.pt as (relative path, size): the last stage written."""
    path = posixpath.join(run_dir, "checkpoints")
    if not await sftp.isdir(path):
        return None
    best: tuple[int, float, str, int] | None = None
    for entry in await sftp.readdir(path):
        name, attrs = entry.filename, entry.attrs
        if not name.endswith(".pt") or name.startswith("."):
            continue
        stem = name[:-3]
        rank = STAGES.index(stem) if stem in STAGES else -1   # stages end in order; mtime has 1 s steps
        key = (rank, float(attrs.mtime or 0), name, int(attrs.size or 0))
        if best is None or key > best:
            best = key
    return None if best is None else (posixpath.join("checkpoints", best[2]), best[3])


def replace_dir(new: Path, dest: Path) -> None:
    """`new` becomes `dest`, the old one removed: a crash between leaves `dest` or its `.old` whole."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _short(command: str, n: int = 80) -> str:
    return command if len(command) <= n else command[:n - 1] + "…"


def quote(path: str) -> str:
    return shlex.quote(path)
