"""`l`: the selected attempt's events (each once, as text, in time order) and the provider's log tail without the
`@usim {json}` lines those events came from; re-read every few seconds while open, following the end unless
scrolled back. New trainer output is appended; a new event (it may be older than the last: pulled from a host
later) rewrites the view, so every line shows once and in order."""

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


def view_lines(events: list[EventView], lines: list[str]) -> list[Text]:
    """What the screen shows, one Text a line: the events by time, then the trainer's own output."""
    events = sorted(events, key=lambda e: e.t)   # stable: the ledger's order among equal times
    out = [Text(f"events ({len(events)})", style="bold")]
    out += [event_lines([e], 1) for e in events] or [Text("no events", style="dim")]
    if not lines:
        return out + [Text("the trainer's output: none on this machine yet (an SSH host's comes back with its "
                           "results)", style="dim")]
    return out + [Text("the trainer's output (its events are shown above)", style="bold"), *map(Text, lines)]


class LogsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,l", "dismiss", "Close")]

    def __init__(self, source: Source, attempt_id: int, title: str, follow_s: float | None = None) -> None:
        super().__init__()
        self.source, self.attempt_id, self.title_text = source, attempt_id, title
        self.follow_s = follow_s or FOLLOW_S
        self.shown: list[str] = []   # the lines on screen, as plain text
        self.loaded = 0   # reads done (tests, the title)

    def compose(self) -> ComposeResult:
        log = RichLog(id="logs", wrap=False, highlight=False, max_lines=LIMIT * 2 + 8, auto_scroll=False)
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
        view = view_lines(events, lines)
        plain = [t.plain for t in view]
        if self.shown and plain[:len(self.shown)] == self.shown:   # only new output at the end: append it
            for t in view[len(self.shown):]:
                log.write(t, scroll_end=at_end)
        elif plain != self.shown:   # the first read, or events changed above the output: the whole view again
            y = log.scroll_y
            log.clear()
            for t in view:
                log.write(t, scroll_end=False)
            if at_end:
                log.scroll_end(animate=False, immediate=True)
            else:
                log.scroll_to(y=y, animate=False, immediate=True)
        self.shown = plain
        self.loaded += 1
        log.border_subtitle = f"{len(events)} events · follows new lines every {self.follow_s:g} s"
