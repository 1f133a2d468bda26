"""The main screen's keys that spend or destroy money: each asks first, naming the cells and the cost.

A mixin of MainScreen (kept apart so the screen stays readable): it uses the screen's selection (`snap`,
`selected_cells`, `selected_attempts`, `cell`) and its app (`usim_app`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from usim_tui.app.format import LIVE
from usim_tui.app.screens.confirm import (
    ConfirmScreen,
    destroy_question,
    keep_question,
    launch_question,
    stop_early_question,
)
from usim_tui.app.screens.quit import LEAVE, STOP, QuitScreen, quit_question
from usim_tui.app.screens.status import controller_attached, sweep_ended
from usim_tui.fleet.store.snapshot import AttemptView, CellView, SweepSnapshot
from usim_tui.fleet.store.states import CELL_ENDED, CellState

if TYPE_CHECKING:
    from textual.app import App

    from usim_tui.app.services import UsimServices


def leave_hint(snap: SweepSnapshot | None, source: object) -> str:
    """What to do later, once the app has left the sweep running."""
    ledger = getattr(getattr(source, "ledger", None), "path", None)
    where = f" --ledger {ledger}" if ledger else ""
    pid = f" (controller pid {snap.controller_pid})" if snap and snap.controller_pid else ""
    return (f"the sweep goes on{pid}: watch it with `usim-tui{where}`, see it with `usim-tui status{where}`, "
            f"end it with `usim-tui stop{where} --destroy`")


class MoneyActions:
    if TYPE_CHECKING:  # provided by MainScreen
        snap: SweepSnapshot | None
        app: App[None]
        usim_app: UsimServices

        def selected_cells(self) -> list[str]: ...
        def selected_attempts(self) -> list[AttemptView]: ...
        def cell(self, name: str | None) -> CellView | None: ...
        def notify(self, message: str, *, severity: str = "information") -> None: ...

    def confirm(self, question: str, yes: str, then: Callable[[], None]) -> None:
        def done(answer: bool | None) -> None:
            if answer:
                then()

        self.app.push_screen(ConfirmScreen(question, yes=yes), done)

    def live_by_cell(self) -> dict[str, AttemptView]:
        return {a.cell: a for a in (self.snap.attempts if self.snap else ()) if a.state in LIVE}

    def action_launch(self) -> None:
        self._start("launch")

    def action_relaunch(self) -> None:
        self._start("relaunch")

    def _start(self, command: str) -> None:
        """Launch or relaunch the selected cells, after a question naming them, what it destroys, what stays."""
        names = self.selected_cells()
        if not names:
            self.notify(f"select a cell to {command}", severity="warning")
            return
        cells = [self.cell(n) or n for n in names]
        question = launch_question(cells, self.live_by_cell(), self.snap.budget if self.snap else None,
                                   relaunch=command == "relaunch")

        def send() -> None:
            for name in names:
                self.usim_app.send(command, cell=name)

        self.confirm(question, command.capitalize(), send)

    def action_keep(self) -> None:
        """`K`: keep the selected cells from the stopping rule; when every one is kept already, stop keeping them."""
        names = self.selected_cells()
        if not names:
            self.notify("select a cell to keep", severity="warning")
            return
        views = [self.cell(n) for n in names]
        on = not all(c is not None and c.keep for c in views)

        def send() -> None:
            for name in names:
                self.usim_app.send("keep", cell=name, on=on)

        self.confirm(keep_question([c or n for c, n in zip(views, names, strict=True)], on),
                     "Keep" if on else "Stop keeping", send)

    def action_stop_early(self) -> None:
        """`x`: stop the selected running cells early (the rule's ending: results pulled, instance destroyed)."""
        live = self.live_by_cell()
        running = [n for n in self.selected_cells() if (c := self.cell(n)) is not None
                   and c.state == CellState.RUNNING and n in live]
        if not running:
            self.notify("select a running cell to stop early", severity="warning")
            return
        targets = [live[n] for n in running]

        def send() -> None:
            for name in running:
                self.usim_app.send("stop_early", cell=name)

        self.confirm(stop_early_question(targets, self.snap.budget if self.snap else None), "Stop early", send)

    def _destroy_targets(self) -> list[AttemptView]:
        targets = [a for a in self.selected_attempts() if a.state in LIVE]
        if not targets:
            self.notify("no live instance selected", severity="warning")
        return targets

    def _destroy(self, targets: list[AttemptView]) -> None:
        for a in targets:
            self.usim_app.send("destroy", attempt_id=a.attempt_id)

    def action_destroy(self) -> None:
        targets = self._destroy_targets()
        if targets:
            self.confirm(destroy_question(targets), "Destroy", lambda: self._destroy(targets))

    def action_destroy_now(self) -> None:
        """`D`: no question only with `dangerous` (a flag the user gave); otherwise it asks like `d`."""
        if self.usim_app.dangerous:
            self._destroy(self._destroy_targets())
            return
        targets = self._destroy_targets()
        if targets:
            question = destroy_question(targets) + "\n(D destroys without this question only with --dangerous.)"
            self.confirm(question, "Destroy", lambda: self._destroy(targets))

    def action_quit_app(self) -> None:
        live = [a for a in (self.snap.attempts if self.snap else ()) if a.state in LIVE]
        if self.usim_app.read_only:
            self.app.exit()
            return
        if not self.usim_app.source.in_process:
            # a controller of its own that has work left trains on after the app: quitting asks, live
            # instances or not (in its preflight, between launches)
            if live or (controller_attached(self.snap, self.usim_app.poll_interval) and self.snap is not None
                        and not sweep_ended(self.snap)):
                self._ask_leave_or_stop(live)
            else:
                self.app.exit()
            return
        if not live:
            self.app.exit()
            return
        question = (f"{len(live)} paid instance(s) are running and the controller stops with this app:\n"
                    "nothing will destroy them at the budget or when they finish until you start usim-tui again.\n"
                    "Quit anyway?")

        def done(yes: bool | None) -> None:
            if yes:
                self.app.exit()

        self.app.push_screen(ConfirmScreen(question, yes="Quit"), done)

    def _ask_leave_or_stop(self, live: list[AttemptView]) -> None:
        """The controller is its own process: quitting leaves it running, or stops the sweep first."""
        snap = self.snap
        default = STOP if snap is not None and snap.provider == "local" else LEAVE

        def done(answer: str | None) -> None:
            if answer == LEAVE:
                self.app.exit(message=leave_hint(snap, self.usim_app.source))
            elif answer == STOP:
                self.app.run_worker(self._stop_then_exit(), group="command", exit_on_error=False)

        left = sum(1 for c in snap.cells if c.state not in CELL_ENDED) if snap else 0
        self.app.push_screen(QuitScreen(quit_question(live, snap.controller_pid if snap else None, left), default),
                             done)

    async def _stop_then_exit(self) -> None:
        await self.usim_app.source.send("stop", destroy=True)
        self.app.exit(message="stopping the sweep: its controller destroys the instances, then ends")
