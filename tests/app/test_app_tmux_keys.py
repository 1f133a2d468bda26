"""The keys in a real terminal (tmux), attached read-only to a real ledger whose curve holds non-positive losses:
log scale, filter, a resize to 100x30, logs, the coverage grid's cursor, the palette; no traceback, exit 0."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from app_support import NOW
from tmux_support import kill, screen, start, tmux, wait_for

BIN = Path(sys.executable).parent / "usim-tui"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


def keys(session: str, *names: str) -> None:
    for name in names:
        tmux("send-keys", "-t", session, name)
        time.sleep(0.15)


def test_keys_in_a_real_terminal_never_end_the_app(demo_ledger, tmp_path):
    led, _, (a1, _) = demo_ledger
    for step, value in ((130, 0.0), (140, -0.2)):  # a log scale cannot show these
        led.add_metrics(a1, step, {"operator/loss": value}, NOW - 300)
    session = f"usim-keys-{os.getpid()}"
    env = "env -u COLUMNS -u LINES WANDB_MODE=offline TERM=xterm-256color"
    cmd = f"cd {tmp_path} && {env} {BIN} --ledger {led.path} --read-only --poll 0.5; echo EXITED $?; sleep 30"
    start(session, cmd)
    try:
        wait_for("the app", lambda s: "demo on local" in s and "running" in s, 60, session)
        keys(session, "y")
        wait_for("log scale", lambda s: "log y" in s and "non-positive" in s, 20, session)
        assert "plot unavailable" not in screen(session)
        keys(session, "/", "r", "Escape")
        tmux("resize-window", "-t", session, "-x", "100", "-y", "30")
        wait_for("the small layout", lambda s: "1 instances" in s and "4 budget" not in s, 20, session)
        tmux("resize-window", "-t", session, "-x", "160", "-y", "50")
        wait_for("the side panes again", lambda s: "4 budget" in s, 20, session)
        assert "plot unavailable" not in screen(session) and "log y" in screen(session)
        keys(session, "l")
        wait_for("the logs", lambda s: "logs ·" in s and "host up" in s, 20, session)
        assert "@usim" not in screen(session)
        # each ESC is read before the next key is sent: an ESC and a key that reach the app together read as
        # alt+key (a busy app reads the pty's bytes at once, whatever the gap between them)
        keys(session, "Escape")
        wait_for("the logs closed", lambda s: "logs ·" not in s, 20, session)
        keys(session, "3", "j", "Enter")
        wait_for("the details of the grid's cell", lambda s: "details ·" in s, 20, session)
        keys(session, "Escape")
        wait_for("the details closed", lambda s: "details ·" not in s, 20, session)
        keys(session, ":")
        wait_for("the palette", lambda s: "Focus Instances" in s, 20, session)   # not the footer's "Launch"
        keys(session, "Escape", "Escape", "Escape")  # the palette's list, the palette, the main screen
        # q only once the escapes are read: an ESC and a q that reach the terminal together read as alt+q (seen
        # once in the whole app suite on the loaded 2-core machine: the app never saw the q)
        wait_for("the palette closed", lambda s: "Focus Instances" not in s, 20, session)
        time.sleep(0.5)
        keys(session, "q")
        wait_for("the app to exit", lambda s: "EXITED 0" in s, 30, session)
    finally:
        kill(session)
