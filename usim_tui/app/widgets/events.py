"""Tail of the selected instance's events and log lines."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

from usim_tui.app.format import clock_time
from usim_tui.fleet.snapshot import EventView

KIND_STYLE = {"error": "bold red", "done": "bold green", "eval": "green", "stage_start": "cyan",
              "stage_end": "cyan", "started": "cyan", "log": "", "intent": "dim", "policy": "yellow"}


def event_lines(events: list[EventView] | tuple[EventView, ...], limit: int) -> Text:
    t = Text()
    for e in list(events)[-limit:]:
        t.append(f"{clock_time(e.t)} ", style="dim")
        t.append(f"{e.kind:<11} ", style=KIND_STYLE.get(e.kind, "magenta"))
        t.append(e.message.rstrip() + "\n")
    return t


class EventsPane(Static):
    can_focus = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._key: tuple | None = None

    def show(self, title: str, events: list[EventView] | tuple[EventView, ...], limit: int = 12) -> None:
        key = (title, tuple((e.t, e.kind, e.message) for e in list(events)[-limit:]))
        if key == self._key:
            return
        self._key = key
        if isinstance(self.parent, Widget):  # the pane box around it
            self.parent.border_subtitle = title
        self.update(event_lines(events, limit) if events else Text("no events yet", style="dim"))
