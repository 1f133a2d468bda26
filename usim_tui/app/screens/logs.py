"""`L`: the selected attempt's full event history and the provider's log tail, loaded in a worker."""

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

LIMIT = 2000


class LogsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,L", "dismiss", "Close")]

    def __init__(self, source: Source, attempt_id: int, title: str) -> None:
        super().__init__()
        self.source, self.attempt_id, self.title_text = source, attempt_id, title

    def compose(self) -> ComposeResult:
        log = RichLog(id="logs", wrap=False, highlight=False, max_lines=LIMIT * 2)
        log.border_title = f"logs · {self.title_text}"
        yield log

    def on_mount(self) -> None:
        self.query_one(RichLog).write(Text("loading…", style="dim"))
        self.load()

    @work(group="logs", exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        log = self.query_one(RichLog)
        try:
            events = await asyncio.to_thread(self.source.attempt_events, self.attempt_id, LIMIT)
            raw = await self.source.provider_logs(self.attempt_id)
        except Exception as exc:  # a failing provider is shown, never raised
            log.clear()
            log.write(Text(f"could not read the logs: {exc}", style="bold red"))
            return
        log.clear()
        log.write(Text(f"events ({len(events)})", style="bold"))
        log.write(event_lines(events, LIMIT) if events else Text("no events", style="dim"))
        if raw:
            log.write(Text("provider log tail", style="bold"))
            for line in raw.splitlines()[-LIMIT:]:
                log.write(Text(line))
