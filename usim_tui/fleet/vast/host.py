"""The host side of VastProvider: usim's SSH key on the account, and push/start/read_events/pull over SSH.

Mixed into VastProvider (provider.py), which supplies `_call` (paced REST), `show`, `clock` and `_log`.
Key registration follows the `vastai` package's `api/keys.py`: `GET /api/v0/ssh/` lists the account's keys,
`POST /api/v0/ssh/` with `{"ssh_key": <public key>}` adds one. The list's reply shape is not documented
(docs/vast.md, unverified): a list of objects, or an object holding one, with the key text under
`public_key`, `ssh_key` or `key`; an answer we cannot read raises rather than registering blind.
"""

from __future__ import annotations

import json
import posixpath
import shlex
import tempfile
from pathlib import Path
from typing import Any

from usim_tui.fleet.hosts.keys import KeyPair, ensure_key, key_body
from usim_tui.fleet.hosts.ssh import SSHSession, SSHUnreachable, Target
from usim_tui.fleet.providers.base import ProviderError, PullResult

ENV_FILE_SUFFIX = ".env"


class VastHost:
    """SSH to running instances (a mixin: see the module doc)."""

    _ssh_key: KeyPair | None
    _ssh_session: SSHSession | None
    _targets: dict[str, Target]
    _key_registered: bool

    def _init_host(self, ssh_key: KeyPair | Path | None, session: Any = None) -> None:
        self._ssh_key = ssh_key if isinstance(ssh_key, KeyPair) else None
        self._ssh_key_path = ssh_key if isinstance(ssh_key, Path) else None
        self._ssh_session = session
        self._targets = {}
        self._key_registered = False

    # ------------------------------------------------------------------ the key on the account
    def ssh_keypair(self) -> KeyPair:
        if self._ssh_key is None:
            self._ssh_key = ensure_key(self._ssh_key_path)
        return self._ssh_key

    async def ensure_ssh_key(self) -> None:
        """usim's public key is on the account: listed first, added only when absent (idempotent)."""
        if self._key_registered:
            return
        pair = self.ssh_keypair()
        status, data = await self._call("put", "GET", "/api/v0/ssh/")  # type: ignore[attr-defined]
        if status != 200:
            raise ProviderError(f"Vast API: listing SSH keys failed (HTTP {status}): {_one_line(data)}")
        if key_body(pair.public) not in _listed_keys(data):
            status, data = await self._call("put", "POST", "/api/v0/ssh/",  # type: ignore[attr-defined]
                                            body={"ssh_key": pair.public})
            if status not in (200, 201) or (isinstance(data, dict) and data.get("success") is False):
                raise ProviderError(f"Vast API: registering usim's SSH key failed (HTTP {status}): {_one_line(data)}")
            self._log(f"registered usim's SSH key {pair.path}.pub on the account")  # type: ignore[attr-defined]
        self._key_registered = True

    # ------------------------------------------------------------------ reaching an instance
    def _ssh(self) -> SSHSession:
        if self._ssh_session is None:
            self._ssh_session = SSHSession(self.ssh_keypair().load())
        return self._ssh_session

    async def ssh_target(self, provider_id: str) -> Target:
        """ssh_host/ssh_port from show-one (cached while the instance answers)."""
        if provider_id in self._targets:
            return self._targets[provider_id]
        obs = await self.show(provider_id)  # type: ignore[attr-defined]
        if obs is None:
            raise SSHUnreachable(f"instance {provider_id} no longer exists")
        host, port = obs.raw.get("ssh_host"), obs.raw.get("ssh_port")
        if not host or not port:
            raise SSHUnreachable(f"instance {provider_id} has no ssh_host/ssh_port yet ({obs.state})")
        self._targets[provider_id] = Target(str(host), int(port))
        return self._targets[provider_id]

    async def _with_target(self, provider_id: str, fn: Any) -> Any:
        t = await self.ssh_target(provider_id)
        try:
            return await fn(self._ssh(), t)
        except SSHUnreachable:
            self._targets.pop(provider_id, None)   # the port may have changed: ask again next time
            raise

    async def run_command(self, provider_id: str, command: str, *, timeout_s: float | None = None) -> str:
        """stdout of a command on the host (HostCommandFailed when it exits non-zero)."""
        return await self._with_target(provider_id, lambda s, t: s.run(t, command, timeout_s=timeout_s))

    async def push(self, provider_id: str, files: dict[str, Path]) -> None:
        await self._with_target(provider_id, lambda s, t: s.push(t, files))

    async def start(self, provider_id: str, command: str, env: dict[str, str]) -> None:
        """`command` detached; `env` travels as a 0600 file sourced first, never on the command line."""
        env_path = f".usim/start-{abs(hash(command)) & 0xFFFFFF:06x}{ENV_FILE_SUFFIX}"
        with tempfile.TemporaryDirectory() as d:
            local = Path(d) / "env"
            local.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
            local.chmod(0o600)
            await self.push(provider_id, {env_path: local})
        # The detached process writes its pid first, in its own session; the line waits for that before it
        # answers, so a connection dropped right after (sshd's SIGHUP to the session) cannot catch it early.
        pid_path = shlex.quote(env_path.removesuffix(ENV_FILE_SUFFIX) + ".pid")
        inner = f"echo $$ > {pid_path}; . {shlex.quote(env_path)} && rm -f {shlex.quote(env_path)} && {command}"
        line = (f"chmod 600 {shlex.quote(env_path)}; rm -f {pid_path}; nohup setsid bash -c {shlex.quote(inner)} "
                f"> .usim/start.log 2>&1 < /dev/null & for i in $(seq 100); do [ -s {pid_path} ] && break; "
                f"sleep 0.1; done; [ -s {pid_path} ] && echo started")
        out = await self.run_command(provider_id, line, timeout_s=30)
        if "started" not in out:
            raise ProviderError(f"instance {provider_id}: the detached start did not answer")

    async def read_events(self, provider_id: str, run_dir: str, offset: int) -> tuple[str, int]:
        path = posixpath.join(run_dir, "events.jsonl")
        data = await self._with_target(provider_id, lambda s, t: s.read_from(t, path, offset))
        end = data.rfind(b"\n") + 1     # whole lines only: the rest is read next time
        return data[:end].decode("utf-8", errors="replace"), offset + end

    async def pull(self, provider_id: str, run_dir: str, dest: Path, max_checkpoint_bytes: int) -> PullResult:
        return await self._with_target(
            provider_id, lambda s, t: s.pull(t, run_dir, Path(dest), max_checkpoint_bytes))

    async def pull_resume(self, provider_id: str, run_dir: str, dest: Path, max_checkpoint_bytes: int) -> PullResult:
        return await self._with_target(
            provider_id, lambda s, t: s.pull_resume(t, run_dir, Path(dest), max_checkpoint_bytes))

    def forget_host(self, provider_id: str) -> None:
        """Drop the cached target and connection (the instance is destroyed or stopped)."""
        t = self._targets.pop(provider_id, None)
        if t is not None and self._ssh_session is not None:
            self._ssh_session.drop(t)

    async def close_host(self) -> None:
        if self._ssh_session is not None:
            await self._ssh_session.close()
            self._ssh_session = None


def _listed_keys(data: Any) -> set[str]:
    """The key bodies in a GET /api/v0/ssh/ answer (shape unverified: see the module doc)."""
    rows = data
    if isinstance(data, dict):
        rows = next((data[k] for k in ("ssh_keys", "keys", "results") if isinstance(data.get(k), list)), None)
    if not isinstance(rows, list):
        raise ProviderError(f"Vast API: unreadable SSH key list ({_one_line(data)}); not registering blind")
    out = set()
    for row in rows:
        text = row if isinstance(row, str) else next(
            (row.get(k) for k in ("public_key", "ssh_key", "key") if isinstance(row, dict) and row.get(k)), None)
        if text:
            out.add(key_body(str(text)))
    return out


def _one_line(data: Any) -> str:
    text = data if isinstance(data, str) else json.dumps(data)[:200]
    return text.strip().splitlines()[0] if text.strip() else "empty answer"
