"""The selected instance's events and log lines (the sweep's when no row is selected): follows the newest line
unless scrolled back, per-step metric lines hidden unless asked for (`m`)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from usim_tui.app.bindings import MOVE
from usim_tui.app.format import STOPPED_EARLY_STYLE, clock_time
from usim_tui.fleet.store.snapshot import EventView

KIND_STYLE = {"error": "bold red", "done": "bold green", "eval": "green", "stage_start": "cyan",
              "stage_end": "cyan", "started": "cyan", "attempt_started": "cyan", "state": "dim", "failed": "bold red",
              "finished": "bold green", "leaked": "bold red reverse", "budget": "bold yellow", "crash_loop": "bold red",
              "user": "yellow", "provider": "yellow", "launch": "cyan",
              # early stopping (fleet/control/early_stop.py): a decision, not a failure
              "stopped_early": STOPPED_EARLY_STYLE, "rung": "medium_purple1", "continued": "medium_purple1"}
LIMIT = 200  # lines kept in the pane (scroll back through them)


def event_lines(events: list[EventView] | tuple[EventView, ...], limit: int) -> Text:
    t = Text()
    for e in list(events)[-limit:]:
        t.append(f"{clock_time(e.t)} ", style="dim")
        t.append(f"{e.kind:<11} ", style=KIND_STYLE.get(e.kind, "magenta"))
        message = e.message[len(e.kind) + 1:] if e.message.startswith(e.kind + " ") else e.message
        t.append(message.rstrip() + "\n")
    t.rstrip()
    return t


class EventsPane(VerticalScroll):
    """Scrolls; `G`/`end` returns to the newest line, after which it follows again."""

    DEFAULT_CSS = "EventsPane Static { height: auto; }"

    BINDINGS: ClassVar[list[BindingType]] = [
        *MOVE,
        Binding("end", "scroll_bottom", "Newest", show=False),
        Binding("home", "scroll_top", "Oldest", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
    ]
    can_focus = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._key: tuple | None = None
        self.show_metrics = False
        self.follow = True   # at the newest line: new lines keep it there
        self._resizing = False
        self.hidden_metrics = 0
        self.text = ""       # what it shows, as plain text

    def compose(self) -> ComposeResult:
        yield Static(Text("no events yet", style="dim"))

    def show(self, title: str, events: list[EventView] | tuple[EventView, ...], limit: int = LIMIT) -> None:
        shown = [e for e in events if self.show_metrics or e.kind != "metric"][-limit:]
        key = (title, self.show_metrics, tuple((e.t, e.kind, e.message) for e in shown))
        if key == self._key:
            return
        self._key = key
        self.hidden_metrics = len(events) - len(shown) if not self.show_metrics else 0
        if isinstance(self.parent, Widget):  # the pane box around it
            hidden = f" · {self.hidden_metrics} metric lines hidden (m)" if self.hidden_metrics else ""
            self.parent.border_subtitle = title + hidden
        content = event_lines(shown, limit) if shown else Text("no events yet", style="dim")
        self.text = content.plain
        self.query_one(Static).update(content)
        if self.follow:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True)

    def show_error(self, error: str) -> None:
        self._key = None
        self.text = f"events unavailable: {error}"
        self.query_one(Static).update(Text(self.text, style="bold red"))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self._resizing:
            self.follow = new_value >= self.max_scroll_y - 0.5

    def on_resize(self) -> None:
        """A resize re-wraps the lines: a pane that followed the newest line still does."""
        if self.follow:
            self._resizing = True
            self.call_after_refresh(self._back_to_end)

    def _back_to_end(self) -> None:
        self.scroll_end(animate=False, immediate=True)
        self._resizing = False

    def action_cursor_down(self) -> None:
        self.scroll_down(animate=False)

    def action_cursor_up(self) -> None:
        self.scroll_up(animate=False)

    def action_scroll_top(self) -> None:
        self.scroll_home(animate=False)

    def action_scroll_bottom(self) -> None:
        self.follow = True
        self.scroll_end(animate=False)

    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)
