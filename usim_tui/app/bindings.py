"""The key table, in one place: the footer, the `?` help screen, the command palette and docs/app.md come from here.

The scheme follows k9s (`../shared/reference/tui_conventions.md` §8): `l` logs, `enter` details, `esc` back,
`j`/`k`/`g`/`G` move, `/` filter, `:` commands. Keys that spend or destroy money (`n`, `d`, `r`, `x`) and `K`
(keep a cell from the stopping rule) ask first, naming the cells and the cost; `D` does not, but only when the
app was started dangerous (k9s' kill).
"""

from __future__ import annotations

from textual.binding import Binding

# Actions that change the fleet; `--read-only` disables every one of them.
MUTATING = frozenset({"launch", "destroy", "destroy_now", "relaunch", "keep", "stop_early", "pause", "auto",
                      "start_controller"})

# The footer shows the keys in this order and cuts what does not fit: help, commands and quit come first.
MAIN: list[Binding] = [
    Binding("question_mark", "help", "Help", key_display="?", tooltip="this help"),
    Binding("colon", "app.command_palette", "Commands", key_display=":", tooltip="command palette (also ctrl+p)"),
    Binding("q", "quit_app", "Quit", tooltip="quit; with live instances: leave the sweep running or stop it"),
    Binding("n", "launch", "Launch", tooltip="launch (new attempt of) the marked cells or the selected one, after a confirm"),
    Binding("d", "destroy", "Destroy", tooltip="destroy the marked/selected instances, after a confirm naming the cost"),
    Binding("D", "destroy_now", "Destroy!", show=False, tooltip="destroy without asking (with --dangerous; else asks like d)"),
    Binding("r", "relaunch", "Relaunch", tooltip="relaunch the marked/selected cells (attempt + 1), after a confirm"),
    Binding("K", "keep", "Keep", show=False,
            tooltip="keep/unkeep the selected cells: the stopping rule never stops a kept one (⚑)"),
    Binding("x", "stop_early", "Stop early", show=False,
            tooltip="stop the selected running cells early (results so far kept), after a confirm"),
    Binding("l", "logs", "Logs", tooltip="events and the provider's log of the selected instance (follows new lines)"),
    Binding("enter", "details", "Details", show=False, tooltip="attempt and cell details"),
    Binding("space", "mark", "Mark", show=False, tooltip="mark/unmark the row (bulk actions, curve overlay)"),
    Binding("slash", "filter", "Filter", key_display="/", tooltip="filter instances by cell, state, reason, GPU or stage"),
    Binding("escape", "back", "Back", show=False, key_display="esc", tooltip="back: clear the filter, then the marks; close a dialog or screen"),
    Binding("S", "sort", "Sort", show=False, tooltip="cycle the sort column: ledger order, state, time, $/h, loss, cell"),
    Binding("e", "ended", "Ended", show=False, tooltip="hide / show ended instances (destroyed, not created)"),
    Binding("m", "metric_events", "Metrics", show=False, tooltip="events pane: show / hide per-step metric lines"),
    Binding("R", "refresh", "Refresh", show=False, tooltip="read the ledger now"),
    Binding("p", "pause", "Pause", tooltip="pause or resume launching"),
    Binding("a", "auto", "Auto", tooltip="automatic management (policies) on or off"),
    Binding("C", "start_controller", "Controller", show=False,
            tooltip="start the sweep's controller when none runs (it then goes on without the app)"),
    Binding("y", "log_scale", "Log y", show=False, tooltip="log-scale toggle on the loss curves"),
    Binding("s", "stage", "Stage", show=False, tooltip="loss curves: cycle the stage shown (all, codec, ...)"),
    Binding("b", "side", "Side", show=False, tooltip="show / hide the side panes (budget, coverage, leaderboard)"),
    Binding("W", "report", "Report", show=False, tooltip="write the sweep's report now (usim-tui report) into reports/<sweep>"),
    Binding("1", "focus_pane('instances')", "Instances", show=False, tooltip="focus pane 1: instances"),
    Binding("2", "focus_pane('curves')", "Curves", show=False, tooltip="focus pane 2: loss curves"),
    Binding("3", "focus_pane('coverage')", "Coverage", show=False, tooltip="focus pane 3: grid coverage"),
    Binding("4", "focus_pane('budget')", "Budget", show=False, tooltip="focus pane 4: budget"),
    Binding("5", "focus_pane('leaderboard')", "Leaderboard", show=False, tooltip="focus pane 5: leaderboard"),
    Binding("6", "focus_pane('events')", "Events", show=False, tooltip="focus pane 6: events and logs"),
]

# Moving inside a pane (instances table, coverage grid, events): vi keys beside the arrows.
MOVE: list[Binding] = [
    Binding("j", "cursor_down", "Down", show=False, tooltip="down (also ↓)"),
    Binding("k", "cursor_up", "Up", show=False, tooltip="up (also ↑)"),
    Binding("g", "scroll_top", "Top", show=False, tooltip="first row (also ctrl+home)"),
    Binding("G", "scroll_bottom", "Bottom", show=False, tooltip="last row, newest event (also ctrl+end, end)"),
]
# The coverage grid also moves sideways; `enter` opens the cell under its cursor.
GRID: list[Binding] = [
    *MOVE,
    Binding("up", "cursor_up", "Up", show=False),
    Binding("down", "cursor_down", "Down", show=False),
    Binding("left,h", "cursor_left", "Left", show=False, tooltip="coverage grid: left (also ←); l/→ right"),
    Binding("right,l", "cursor_right", "Right", show=False),
    Binding("enter", "open", "Open", show=False, tooltip="coverage grid: details of the cell under the cursor"),
]


def key_label(binding: Binding) -> str:
    return binding.key_display or {"space": "space", "enter": "enter", "escape": "esc"}.get(binding.key, binding.key)


def help_rows() -> list[tuple[str, str]]:
    """(key, what it does) for the help screen, grouping 1-6 and the movement keys."""
    rows, panes = [], []
    for b in MAIN:
        if b.action.startswith("focus_pane"):
            panes.append(b)
            continue
        rows.append((key_label(b), b.tooltip))
    rows.append(("1-6", "panes: " + " ".join(f"{b.key} {b.description.lower()}" for b in panes)
                 + " (on a small terminal one pane at a time: 1 back to the instances)"))
    rows.append(("j k g G", "down, up, first, last (instances, coverage grid, events); "
                            "h l ← → in the coverage grid, enter opens its cell"))
    return rows


def palette_commands() -> list[tuple[str, str, str]]:
    """(title with its key, help, action) of every main-screen action, for the command palette."""
    return [(f"{b.description if not b.action.startswith('focus_pane') else f'Focus {b.description}'} · {key_label(b)}",
             b.tooltip, b.action) for b in MAIN if b.action != "app.command_palette"]
