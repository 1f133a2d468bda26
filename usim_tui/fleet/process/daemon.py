"""The controller as its own process: one per ledger, detached from the terminal and the app.

`usim-tui run SWEEP` and `usim-tui SWEEP` (the app) call `ensure_controller`: it starts `usim-tui controller`
in a new session (its own process group: it survives the terminal, the app and a crash of either) unless one
already holds the ledger, and returns who holds it. The holder owns an exclusive OS lock on
`<ledger>.lock` for its whole life and writes a heartbeat (pid, host, last tick) into the ledger, so a
second controller on the same ledger exits 2 naming the holder, and clients can tell a live controller from a
stale row. Clients (the app, `usim-tui status/destroy/stop`) only read the ledger and queue commands.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from usim_tui.fleet.store.ledger import Ledger

START_TIMEOUT_S = 120.0   # importing the fleet and opening the provider on a loaded laptop


class ControllerRunning(RuntimeError):
    """Another controller holds this ledger."""


@dataclass(frozen=True)
class Holder:
    pid: int | None
    host: str | None
    started_at: float | None
    seen_at: float | None      # its last tick
    state: str | None          # running | stopping | stopped | crashed

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        seen = f", last tick {now - self.seen_at:.0f}s ago" if self.seen_at else ""
        return f"pid {self.pid} on {self.host}{seen}"


def lock_path(ledger_path: str | Path) -> Path:
    return Path(f"{ledger_path}.lock")


def log_path(ledger_path: str | Path) -> Path:
    return Path(ledger_path).with_name("controller.log")


class ControllerLock:
    """The exclusive OS lock that makes a process the ledger's one controller (released when it exits, even
    by SIGKILL: the kernel drops the lock with the file descriptor)."""

    def __init__(self, ledger_path: str | Path) -> None:
        self.path = lock_path(ledger_path)
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")   # noqa: SIM115 - held open for the process's life
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise ControllerRunning(f"{self.path}: held by another controller") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {socket.gethostname()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def is_held(ledger_path: str | Path) -> bool:
    """Whether a live controller holds the ledger (probing the lock, never taking it for long)."""
    path = lock_path(ledger_path)
    if not path.exists():
        return False
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def holder(ledger: Ledger, sweep: str | None = None) -> Holder | None:
    """The controller recorded in the ledger, if any (alive or not: check `is_held`)."""
    try:
        row = ledger.sweep_row(sweep)
    except LookupError:
        return None
    if row.controller_pid is None:
        return None
    return Holder(row.controller_pid, row.controller_host, row.controller_started_at, row.controller_seen_at,
                  row.controller_state)


def refuse_second(ledger_path: str | Path, sweep: str | None = None) -> str:
    """The one line a second controller prints before exiting 2."""
    h = holder(Ledger(ledger_path), sweep) if Path(ledger_path).exists() else None
    who = h.describe() if h else "another process"
    return (f"a controller already runs this sweep ({who}); ledger {ledger_path}. Attach with "
            f"`usim-tui --ledger {ledger_path}` or stop it with `usim-tui stop --ledger {ledger_path}`")


def record_start(ledger: Ledger, sweep: str) -> None:
    ledger.set_sweep(sweep, controller_pid=os.getpid(), controller_host=socket.gethostname(),
                     controller_started_at=time.time(), controller_seen_at=time.time(), controller_state="running")


def record_end(ledger: Ledger, sweep: str, state: str) -> None:
    ledger.set_sweep(sweep, controller_state=state, controller_seen_at=time.time())


@contextlib.contextmanager
def signals_request_stop(request: Callable[[str], None]) -> object:
    """SIGTERM/SIGINT/SIGHUP ask the controller to stop after its current tick, leaving instances as they
    are (a person's `usim-tui stop --destroy` is the way to tear down)."""
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    for s in old:
        signal.signal(s, lambda signum, frame: request("leave"))
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def start_detached(args: list[str], ledger_path: str | Path, cwd: str | Path | None = None,
                   env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `usim-tui controller ARGS` in a new session, its output appended to runs/<sweep>/controller.log."""
    log = log_path(ledger_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "usim_tui", "controller", *args], cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_started(proc: subprocess.Popen[bytes], ledger_path: str | Path, timeout: float = START_TIMEOUT_S) -> None:
    """Until the new controller holds the ledger; RuntimeError with the last line of its log if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the controller exited with status {proc.returncode}: {last_line(ledger_path)} "
                               f"(log: {log_path(ledger_path)})")
        if is_held(ledger_path) and Path(ledger_path).exists():
            h = holder(Ledger(ledger_path))
            if h is not None and h.pid == proc.pid and h.state == "running":
                return
        time.sleep(0.1)
    raise RuntimeError(f"the controller did not start within {timeout:.0f}s (log: {log_path(ledger_path)})")


def last_line(ledger_path: str | Path) -> str:
    try:
        lines = [ln for ln in log_path(ledger_path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"
