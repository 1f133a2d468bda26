"""Driving the real app in tmux: start a session, read the screen, wait for what it should show."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-f", "/dev/null", *args], capture_output=True, text=True, timeout=30).stdout


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
