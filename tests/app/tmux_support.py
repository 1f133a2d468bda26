"""Driving the real app in tmux: start a session, read the screen, wait for what it should show."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-f", "/dev/null", *args], capture_output=True, text=True, timeout=30).stdout


def start(session: str, command: str, width: int = 160, height: int = 50) -> None:
    """A detached session running `command`, checked: a new-session that raced a tmux server on its way out
    (the last session killed a moment before) is started again, never left as an empty screen."""
    for _ in range(5):
        res = subprocess.run(["tmux", "-f", "/dev/null", "new-session", "-d", "-s", session, "-x", str(width),
                              "-y", str(height), command], capture_output=True, text=True, timeout=30)
        if res.returncode == 0 and has(session):
            tmux("resize-window", "-t", session, "-x", str(width), "-y", str(height))
            return
        time.sleep(0.5)
    raise AssertionError(f"tmux could not start session {session}: {res.stderr.strip()}")


def has(session: str) -> bool:
    return subprocess.run(["tmux", "-f", "/dev/null", "has-session", "-t", session], capture_output=True,
                          timeout=30).returncode == 0


def kill(session: str) -> None:
    """End the session and what runs in it, and make sure it is gone (a session left behind keeps an app
    polling for the rest of the suite)."""
    for _ in range(5):
        with contextlib.suppress(subprocess.TimeoutExpired):
            tmux("kill-session", "-t", session)
        if not has(session):
            return
        time.sleep(0.5)
    raise AssertionError(f"tmux session {session} outlived kill-session")


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(what: str, check: Callable[[str], object], timeout: float, session: str) -> object:
    """Poll `check(screen text)` until it returns something true (returned); never past a traceback."""
    end = time.time() + timeout
    while time.time() < end:
        text = screen(session)
        assert "Traceback" not in text, f"a traceback while waiting for {what}:\n{text}"
        got = check(text)
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; screen:\n{screen(session)}")
