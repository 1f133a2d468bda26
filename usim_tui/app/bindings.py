"""The key table, in one place: the footer, the `?` help screen and docs/app.md all come from here."""

from __future__ import annotations

from textual.binding import Binding

# Actions that change the fleet; `--read-only` disables every one of them.
MUTATING = frozenset({"launch", "destroy", "destroy_now", "relaunch", "pause", "auto"})

MAIN: list[Binding] = [
    Binding("l", "launch", "Launch", tooltip="launch the marked cells (or the selected one)"),
    Binding("d", "destroy", "Destroy", tooltip="destroy the marked/selected instances, after a confirm dialog"),
    Binding("D", "destroy_now", "Destroy!", show=False, tooltip="destroy without asking"),
    Binding("r", "relaunch", "Relaunch", tooltip="relaunch the marked/selected cells (attempt + 1)"),
    Binding("L", "logs", "Logs", tooltip="full events and log lines of the selected instance"),
    Binding("enter", "details", "Details", show=False, tooltip="attempt and cell details"),
    Binding("space", "mark", "Mark", show=False, tooltip="mark/unmark the row (bulk actions, curve overlay)"),
    Binding("slash", "filter", "Filter", key_display="/", tooltip="filter instances by cell, state or reason"),
    Binding("p", "pause", "Pause", tooltip="pause or resume launching"),
    Binding("a", "auto", "Auto", tooltip="automatic management (policies) on or off"),
    Binding("y", "log_scale", "Log y", show=False, tooltip="log-scale toggle on the loss curves"),
    Binding("s", "stage", "Stage", show=False, tooltip="loss curves: cycle the stage shown (all, codec, ...)"),
    Binding("1", "focus_pane('instances')", "Instances", show=False, tooltip="focus pane 1: instances"),
    Binding("2", "focus_pane('curves')", "Curves", show=False, tooltip="focus pane 2: loss curves"),
    Binding("3", "focus_pane('coverage')", "Coverage", show=False, tooltip="focus pane 3: grid coverage"),
    Binding("4", "focus_pane('budget')", "Budget", show=False, tooltip="focus pane 4: budget"),
    Binding("5", "focus_pane('leaderboard')", "Leaderboard", show=False, tooltip="focus pane 5: leaderboard"),
    Binding("6", "focus_pane('events')", "Events", show=False, tooltip="focus pane 6: events and logs"),
    Binding("question_mark", "help", "Help", key_display="?", tooltip="this help"),
    Binding("q", "quit_app", "Quit", tooltip="quit (asks first if paid instances run and the controller stops)"),
]


def key_label(binding: Binding) -> str:
    return binding.key_display or {"space": "space", "enter": "enter"}.get(binding.key, binding.key)


def help_rows() -> list[tuple[str, str]]:
    """(key, what it does) for the help screen, grouping 1-6."""
    rows, panes = [], []
    for b in MAIN:
        if b.action.startswith("focus_pane"):
            panes.append(b)
            continue
        rows.append((key_label(b), b.tooltip))
    rows.insert(len(rows) - 2, ("1-6", "panes: " + " ".join(f"{b.key} {b.description.lower()}" for b in panes)))
    rows.append(("esc", "close a dialog or screen"))
    return rows
