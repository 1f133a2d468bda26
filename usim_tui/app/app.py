"""UsimApp: renders ledger snapshots and sends commands; polls in a worker that never overlaps itself.

The app owns no fleet state: kill it and restart, and the ledger has everything. The sweep's controller runs
as its own process (`usim-tui SWEEP` starts or attaches to it); commands go through the ledger's command
queue. Only a rehearsal (`--rehearse`, a virtual clock) runs its controller here, as an async worker. Each poll is a thread worker (the ledger reads block) that posts
`SnapshotReady` or `PollFailed` to the main screen; the next poll is scheduled when the worker ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from functools import partial
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker

from usim_tui.app.bindings import MUTATING, palette_commands
from usim_tui.app.messages import PollFailed, SnapshotReady
from usim_tui.app.screens.main import MainScreen
from usim_tui.app.screens.status import queued_hint
from usim_tui.app.source import Source
from usim_tui.fleet.clock import Clock, RealClock

POLL_INTERVAL = 1.0


class UsimApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "usim"
    ENABLE_COMMAND_PALETTE = True   # `:` or ctrl+p: every action of the key table by name

    def __init__(self, source: Source, *, clock: Clock | None = None, read_only: bool = False,
                 poll_interval: float = POLL_INTERVAL, mode: str = "", dangerous: bool = False) -> None:
        super().__init__()
        self.source, self.clock, self.read_only = source, clock or RealClock(), read_only
        self.dangerous = dangerous  # `D` destroys without asking only when the user said so (k9s' kill)
        self.poll_interval = poll_interval
        self.mode = mode or ("read-only" if read_only else "")   # how this app views the sweep, when not plainly
        self.polls = 0
        self._polling = False
        self._poll_again = False
        self._timer: Timer | None = None
        self.controller_error: str | None = None
        self.controller_ended = False  # the in-process controller returned or failed: nothing runs commands

    @property
    def main(self) -> MainScreen:
        screen = self.get_screen("main")
        assert isinstance(screen, MainScreen)
        return screen

    def on_mount(self) -> None:
        self.install_screen(MainScreen(), "main")
        self.push_screen("main")
        if self.source.in_process:
            self.run_worker(self._controller(), group="controller", exit_on_error=False)

    async def _controller(self) -> None:
        try:
            await self.source.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # shown, never a traceback: the ledger keeps the truth for a restart
            self.controller_error = f"{type(exc).__name__}: {exc}"
            self.notify(f"controller stopped: {self.controller_error}", severity="error", timeout=30)
            self._controller_gone("controller stopped")
        else:
            self.notify("controller finished: every cell is finished, failed or stopped by the budget")
            self._controller_gone("controller finished")

    def _controller_gone(self, why: str) -> None:
        """Only a real controller ending counts (a static source's run() returns at once and controls nothing)."""
        if getattr(self.source, "controller", None) is not None:
            self.controller_ended = True
            self.mode = f"{why}: actions disabled"

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette (`:` / ctrl+p): Textual's own commands, then every action of the key table."""
        yield from super().get_system_commands(screen)
        if not isinstance(screen, MainScreen):
            return
        for title, help_text, action in palette_commands():
            if self.read_only and action in MUTATING:
                continue
            yield SystemCommand(title, help_text, partial(screen.run_action, action))

    # -- polling: one at a time; the next is scheduled when this one ends ---------------------------------
    def poll_now(self) -> None:
        """Read the ledger now; a request while a poll runs is served right after it."""
        if self._polling:
            self._poll_again = True
            return
        if not self.is_screen_installed("main"):  # a timer that fires while the app shuts down
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._polling = True
        ids, events_for = self.main.wanted()  # the screen's state is read here, on the UI thread
        self._poll(self.main, ids, events_for)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _poll(self, screen: MainScreen, ids: list[int], events_for: int | None) -> None:
        """The blocking ledger reads, in a thread; the screen gets the result as a message."""
        message: SnapshotReady | PollFailed
        try:
            snap = self.source.snapshot(now=self.clock.now())
            series = self.source.metric_series(ids) if ids else {}
            events = self.source.attempt_events(events_for, limit=200) if events_for is not None else []
            log = self.source.log
            message = SnapshotReady(snap, series, events, events_for, log[-1] if log else None)
            self.polls += 1  # only this thread writes it: polls never overlap
        except Exception as exc:  # a locked or missing ledger is a status, not a crash
            message = PollFailed(f"{type(exc).__name__}: {exc}")
        screen.post_message(message)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "poll" or not event.worker.is_finished:
            return
        self._polling = False
        if self._poll_again:
            self._poll_again = False
            self.call_later(self.poll_now)
        elif self.is_running:
            self._timer = self.set_timer(self.poll_interval, self.poll_now)

    # -- commands -----------------------------------------------------------------------------------------
    def send(self, command: str, **args: Any) -> None:
        if self.read_only:
            self.notify("read-only: actions are disabled", severity="warning")
            return
        if self.controller_ended:  # say so rather than pretend: nothing would carry it out
            text = f"{command} not sent: the controller has ended, nothing would run it; start usim-tui again"
            self.main.status(f"[yellow]{text}[/]")
            self.notify(text, severity="warning")
            return
        self.run_worker(self._send(command, args), group="command", exit_on_error=False)

    async def _send(self, command: str, args: dict[str, Any]) -> None:
        try:
            done = await self.source.send(command, **args)
        except Exception as exc:
            self.main.status(f"[red]{command} failed: {exc}[/]")
            self.notify(f"{command} failed: {exc}", severity="error")
            return
        if not self.source.in_process and done.startswith("queued"):
            done += queued_hint(self.main.snap, self.poll_interval)
        self.main.status(done)
        self.poll_now()

    async def on_unmount(self) -> None:
        for w in list(self.workers):
            if w.group == "controller":
                w.cancel()
        try:
            await self.source.close()
        except Exception:  # closing a provider session must not hide the exit
            pass
