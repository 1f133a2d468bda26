"""`l`: the selected attempt's events (each once, as text) and the provider's log tail without the `@usim {json}`
lines those events came from; re-read every few seconds while open, following the end unless scrolled back."""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import RichLog

from usim_tui.app.source import Source
from usim_tui.app.widgets.events import event_lines
from usim_tui.fleet.store.snapshot import EventView

LIMIT = 2000
FOLLOW_S = 2.0     # seconds between reads while the screen is open
EVENT_PREFIX = "@usim "  # a trainer event printed to stdout: already listed (as text) among the events


def plain_lines(raw: str | None) -> list[str]:
    """The provider log's own lines: the `@usim {json}` copies of events dropped (they are shown as events)."""
    return [line for line in (raw or "").splitlines() if not line.lstrip().startswith(EVENT_PREFIX)][-LIMIT:]


def new_part(old: list, new: list) -> list:
    """What `new` adds after `old` (both tails of a growing stream, `new` maybe shifted by a roll)."""
    if not old:
        return new
    if new[:len(old)] == old:
        return new[len(old):]
    last = old[-1]
    for i in range(len(new) - 1, -1, -1):  # the tail rolled: continue after the last line already shown
        if new[i] == last:
            return new[i + 1:]
    return new


class LogsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,l", "dismiss", "Close")]

    def __init__(self, source: Source, attempt_id: int, title: str, follow_s: float | None = None) -> None:
        super().__init__()
        self.source, self.attempt_id, self.title_text = source, attempt_id, title
        self.follow_s = follow_s or FOLLOW_S
        self.events: list[EventView] = []
        self.lines: list[str] = []
        self.loaded = 0   # reads done (tests, the title)

    def compose(self) -> ComposeResult:
        log = RichLog(id="logs", wrap=False, highlight=False, max_lines=LIMIT * 2, auto_scroll=False)
        log.border_title = f"logs · {self.title_text}"
        yield log

    def on_mount(self) -> None:
        self.query_one(RichLog).write(Text("loading…", style="dim"))
        self.load()
        self.set_interval(self.follow_s, self.load)

    @work(group="logs", exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        log = self.query_one(RichLog)
        try:
            events = await asyncio.to_thread(self.source.attempt_events, self.attempt_id, LIMIT)
            raw = await self.source.provider_logs(self.attempt_id)
        except Exception as exc:  # a failing provider is shown, never raised
            log.write(Text(f"could not read the logs: {exc}", style="bold red"))
            return
        self.show(log, events, plain_lines(raw))

    def show(self, log: RichLog, events: list[EventView], lines: list[str]) -> None:
        at_end = log.is_vertical_scroll_end or not self.loaded
        if not self.loaded:
            log.clear()
        fresh_events = new_part(self.events, events)
        fresh_lines = new_part(self.lines, lines)
        if fresh_events or not self.loaded:
            if not self.loaded:
                log.write(Text(f"events ({len(events)})", style="bold"))
            log.write(event_lines(fresh_events, LIMIT) if events else Text("no events", style="dim"),
                      scroll_end=at_end)
        if fresh_lines:
            if not self.lines:
                log.write(Text("provider log (trainer events shown above)", style="bold"), scroll_end=at_end)
            for line in fresh_lines:
                log.write(Text(line), scroll_end=at_end)
        self.events, self.lines = events, lines
        self.loaded += 1
        log.border_subtitle = f"{len(events)} events · follows new lines every {self.follow_s:g} s"
