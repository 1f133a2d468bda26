"""Top line: sweep, provider, clock, launching paused or not, auto-management, provider status."""

from __future__ import annotations

from rich.text import Text
from textual.visual import VisualType
from textual.widgets import Static

from usim_tui.app.format import clock_time
from usim_tui.fleet.store.snapshot import SweepSnapshot


class SweepHeader(Static):
    DEFAULT_CSS = "SweepHeader { height: 1; background: $panel; padding: 0 1; }"
    _last: Text | None = None

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        if isinstance(content, Text) and content == self._last:
            return  # unchanged: no repaint
        self._last = content if isinstance(content, Text) else None
        super().update(content, layout=layout)

    def show(self, snap: SweepSnapshot | None, now: float, mode: str, poll_error: str | None = None,
             heartbeat: str | None = None) -> None:
        t = Text()
        if snap is None:
            t.append("usim ", style="bold")
            t.append(f"· {clock_time(now)} · ")
            t.append(poll_error and f"ledger unreadable: {poll_error}" or "reading the ledger…",
                     style="bold red" if poll_error else "dim")
            self.update(t)
            return
        t.append("usim ", style="bold")
        t.append(f"· sweep {snap.sweep} · provider {snap.provider} · {clock_time(now)} · launching ")
        paused = "PAUSED" if snap.paused else "PAUSED (crash loop)" if snap.crash_loop else ""
        t.append(paused or "on", style="bold yellow" if paused else "green")
        t.append(" · auto ")
        t.append("on" if snap.auto else "OFF", style="green" if snap.auto else "bold yellow")
        t.append(" · provider ")
        if snap.provider_status == "ok":
            t.append("ok", style="green")
        else:
            t.append(f"failing: {snap.provider_status}", style="bold red")
        if poll_error:
            t.append(f" · ledger read failing: {poll_error}", style="bold red")
        if snap.crash_loop:
            t.append(f" · crash loop: {snap.crash_loop}", style="bold red")
        if mode:
            t.append(f" · {mode}", style="italic")
        if heartbeat:
            t.append(f" · {heartbeat}", style="bold yellow" if heartbeat.startswith("no controller") else "dim")
        self.update(t)
