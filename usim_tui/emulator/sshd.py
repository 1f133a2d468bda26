"""An SSH endpoint per executing emulated instance (asyncssh, loopback only).

It accepts user `root` with a key registered on the emulated account when the instance was created (or
attached to it since), as Vast puts the account's keys on a new instance. Commands run with `bash -c` in
the instance's sandbox directory (its "home"); SFTP is chrooted to it. The sandbox's Python is the test
venv's, with pip installs going to `<sandbox>/site` (PIP_TARGET, offline, --no-deps) and that directory first
on PYTHONPATH and PATH of the image's environment, so the pushed wheel's code is what runs, never the
checkout's. A session does not see that environment (session_env: Vast's bare SSH environment) unless the
emulator is gentle. Every process started here carries USIM_EMU_INSTANCE=<id>, so destroying the instance ends
them all, detached ones included.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import asyncssh

from usim_tui.fleet.hosts.keys import key_body

BARE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_HOST_KEY: asyncssh.SSHKey | None = None


def host_key() -> asyncssh.SSHKey:
    global _HOST_KEY
    if _HOST_KEY is None:
        _HOST_KEY = asyncssh.generate_private_key("ssh-ed25519")
    return _HOST_KEY


def session_env(inst: Any, sandbox: Path, image_env: dict[str, str], bare: bool) -> dict[str, str]:
    """What a non-interactive SSH session sees. bare (Vast): the container's bare environment, the image's
    variables (its python's PATH) only in the init process and the onstart; PIP_NO_INDEX is the emulator's own
    guard, so a mistaken `pip install` of torch fails here at once instead of downloading gigabytes.
    Not bare (a gentle emulator): the image's environment, as a kinder host would give it."""
    if not bare:
        return dict(image_env)
    env = {k: image_env[k] for k in ("LANG", "LC_ALL", "TMPDIR") if k in image_env}
    env.update(HOME=str(sandbox), PWD=str(sandbox), USER="root", LOGNAME="root", SHELL="/bin/bash",
               PATH=BARE_PATH, PIP_NO_INDEX="1", USIM_EMU_INSTANCE=str(inst.id))
    return env


class _Server(asyncssh.SSHServer):
    def __init__(self, inst: Any) -> None:
        self.inst = inst
        self.groups: list[int] = []   # process groups of this connection's commands

    def connection_lost(self, exc: Exception | None) -> None:
        """As sshd does when a session ends: SIGHUP to what the session started. A command run with
        `nohup setsid ... &` is in a session of its own and lives on; a plain `cmd &` dies here."""
        for pgid in self.groups:
            try:
                os.killpg(pgid, signal.SIGHUP)
            except (ProcessLookupError, PermissionError):
                pass
        self.inst.ssh_conns = {c for c in self.inst.ssh_conns if not c.is_closed()}

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.inst.ssh_conns.add(conn)


    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        body = key_body(key.export_public_key().decode())
        return username == "root" and body in {key_body(k) for k in self.inst.ssh_keys}


def _default_hangup() -> None:
    """A session starts with SIGHUP at its default, as sshd's children do, even when whoever started the
    emulator ignores it (CI under `nohup`): otherwise a plain `cmd &` would outlive its connection here."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


async def _exec(process: asyncssh.SSHServerProcess, sandbox: Path, env: dict[str, str], server: _Server) -> None:
    command = process.command
    if not command:
        process.stderr.write("usim emulator: no interactive shell; send a command\n")
        process.exit(1)
        return
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", command, cwd=sandbox, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        preexec_fn=_default_hangup)
    server.groups.append(proc.pid)
    out, err = await proc.communicate()
    process.stdout.write(out.decode(errors="replace"))
    process.stderr.write(err.decode(errors="replace"))
    process.exit(proc.returncode or 0)


async def start_sshd(inst: Any, sandbox: Path, env: dict[str, str], port: int = 0) -> tuple[Any, int]:
    """Serve SSH for `inst` on 127.0.0.1 (on `port`, or a free one), sessions in `env`; returns (server, port)."""
    sandbox.mkdir(parents=True, exist_ok=True)

    def process(p: asyncssh.SSHServerProcess) -> Any:
        return _exec(p, sandbox, env, p.get_extra_info("connection").get_owner())

    server = await asyncssh.create_server(
        lambda: _Server(inst), "127.0.0.1", port, server_host_keys=[host_key()], process_factory=process,
        sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(sandbox).encode()),
        allow_scp=False, encoding="utf-8")
    port = server.sockets[0].getsockname()[1]
    return server, port


def kill_sandbox(inst_id: int) -> int:
    """SIGKILL every process started for this instance (found by USIM_EMU_INSTANCE in /proc/*/environ)."""
    mark = f"USIM_EMU_INSTANCE={inst_id}".encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if mark in environ.split(b"\0"):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed
