"""The app in a real terminal at 200 x 50, 100 x 30 and 80 x 24, driven by its keys, asserting on the screen: the
points a user keeping it open all night met (issue 28). The ledger is a real one with no controller attached:
what the app must say first, and what a queued command looks like before anyone takes it."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from tmux_support import kill, screen, start, tmux, wait_for

BIN = Path(sys.executable).parent / "usim-tui"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


def finish_first_cell(path: Path) -> str:
    """The fixture's second cell finished with a result (rank it), as a controller would have recorded it."""
    con = sqlite3.connect(path)
    name = con.execute("SELECT name FROM cells WHERE sweep='demo' ORDER BY ord LIMIT 1 OFFSET 1").fetchone()[0]
    con.execute("UPDATE cells SET state='finished', reason='finished', small_metrics_json=?, full_metrics_json=? "
                "WHERE sweep='demo' AND name=?", ('{"nrmse_frame": 0.0421}', '{"nrmse_frame": 0.0433}', name))
    con.execute("UPDATE attempts SET state='destroyed', reason='finished' WHERE cell=?", (name,))
    con.commit()
    con.close()
    return name


@pytest.mark.parametrize("size", [(200, 50), (100, 30), (80, 24)], ids=["200x50", "100x30", "80x24"])
def test_the_app_at_every_size(demo_ledger, tmp_path, size):
    led, sweep, (a1, _) = demo_ledger
    finished = finish_first_cell(led.path)
    width, height = size
    session = f"usim-size-{width}-{os.getpid()}"
    env = "env -u COLUMNS -u LINES WANDB_MODE=offline TERM=xterm-256color"
    start(session, f"cd {tmp_path} && {env} {BIN} --ledger {led.path} --poll 0.5; echo EXITED $?; sleep 30",
          width, height)
    try:
        text = wait_for("the app", lambda s: "─ 1 instances" in s and "running" in s and s, 60, session)
        lines = str(text).splitlines()
        # the state that decides what to do comes first; nothing says "launching on" beside "no controller"
        assert lines[0].strip().startswith("no controller attached"), lines[0]
        assert "launching on" not in lines[0]
        # help, commands and quit are in the footer at every width
        footer = lines[-1]
        assert "? Help" in footer and ": Commands" in footer and "q Quit" in footer, footer
        # every cell has its own label, none cut to a tail another shares
        rows = table_rows(str(text))
        labels = [re.split(r"\s{2,}", ln.strip("│ ").strip())[0].lstrip("● ").strip() for ln in rows]
        by_cell = {lab for lab in labels if lab}
        assert len(by_cell) >= 4, labels
        # the table keeps its rows: every cell of the sweep shows at once
        assert len(rows) >= len(sweep.cells), text
        # a relaunch queued for a controller that is not there shows at once, on its cell's row
        tmux("send-keys", "-t", session, "/")
        wait_for("the filter box", lambda s: "filter: cell, state" in s, 20, session)
        tmux("send-keys", "-t", session, "-l", finished)
        tmux("send-keys", "-t", session, "Enter")
        wait_for("the finished cell alone", lambda s: len(table_rows(s)) == 1 and "finished" in table_rows(s)[0], 20,
                 session)
        tmux("send-keys", "-t", session, "r")
        wait_for("the relaunch question", lambda s: "Relaunch" in s and ("result" in s or "stays" in s), 20, session)
        tmux("send-keys", "-t", session, "y")
        wait_for("the queued relaunch on its row", lambda s: any("queued relaunch" in r for r in table_rows(s)), 20,
                 session)   # on the row, not only in the status line
        tmux("send-keys", "-t", session, "Escape")   # the filter cleared
        wait_for("every row again", lambda s: len(table_rows(s)) >= len(sweep.cells), 20, session)
        # the curves name what they plot
        tmux("send-keys", "-t", session, "g", "2")
        wait_for("the curves of the first cell", lambda s: f"loss curves · {sweep.cells[0].name} #1" in s, 20, session)
        if width < 100 or height < 40:   # a small terminal: one pane at a time, esc back to the instances
            assert "─ 1 instances" not in screen(session)
            tmux("send-keys", "-t", session, "Escape")
            wait_for("the instances again", lambda s: "─ 1 instances" in s, 20, session)
        # the leaderboard keeps the finished cell's result
        tmux("send-keys", "-t", session, "5")
        wait_for("the leaderboard", lambda s: "0.0433" in s, 20, session)
        tmux("send-keys", "-t", session, "q")
        wait_for("the quit question or the exit", lambda s: "EXITED" in s or "Leave" in s or "leave" in s, 20, session)
    finally:
        kill(session)


def table_rows(text: str) -> list[str]:
    """The instances table's rows on the screen (its pane's left part, below its column header)."""
    lines = text.splitlines()
    top = next(i for i, ln in enumerate(lines) if "1 instances" in ln)
    rows = []
    for ln in lines[top + 2:]:
        left = re.split(r"│[╭╰│]", ln)[0]
        if left.lstrip().startswith("╰"):
            break
        if re.search(r"\b(pending|running|loading|destroyed|launching|exited|finished)\b", left):
            rows.append(left)
    return rows
