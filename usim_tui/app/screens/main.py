"""The main screen: header, budget, instances, loss curves, coverage, leaderboard, events; every key."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Container, Horizontal, Vertical
from textual.events import Resize
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Static

from usim_tui.app.bindings import MAIN, MUTATING
from usim_tui.app.messages import PollFailed, SnapshotReady
from usim_tui.app.screens.details import DetailsScreen
from usim_tui.app.screens.help import HelpScreen
from usim_tui.app.screens.logs import LogsScreen
from usim_tui.app.screens.money import MoneyActions
from usim_tui.app.screens.status import controller_attached, ended_line, heartbeat
from usim_tui.app.services import UsimServices
from usim_tui.app.widgets.budget import BudgetPane
from usim_tui.app.widgets.coverage import CoverageGrid
from usim_tui.app.widgets.curves import LossCurves
from usim_tui.app.widgets.events import EventsPane
from usim_tui.app.widgets.header import SweepHeader
from usim_tui.app.widgets.instances import SORTS, InstancesTable, queued_cells
from usim_tui.app.widgets.leaderboard import Leaderboard
from usim_tui.fleet.store.snapshot import AttemptView, CellView, SweepSnapshot
from usim_tui.fleet.store.states import GONE

NARROW = 120   # columns: below, the side panes hide behind `b`
SHORT = 40     # rows: below, the events pane shrinks
# A small terminal (k9s' and btop's answer): below these (so at 100 x 30 and 80 x 24), one pane at a time fills the body (1-6 choose it, the
# instances first), so the table keeps its rows and the footer its keys.
COMPACT_W, COMPACT_H = 100, 40
SIDE_PANES = ("budget", "coverage", "leaderboard")
PANES = ("instances", "curves", "events", *SIDE_PANES)
PANE_TITLES = {"instances": "1 instances", "curves": "2 loss curves", "coverage": "3 grid coverage",
               "budget": "4 budget", "leaderboard": "5 leaderboard", "events": "6 events"}


def write_report(ledger: Path, out: Path) -> str:
    """`usim-tui report --ledger L --out O` in a subprocess (it prints each file it wrote); one line naming the
    report and its figures, or why it failed."""
    proc = subprocess.run([sys.executable, "-m", "usim_tui", "report", "--ledger", str(ledger), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode != 0:
        return f"[red]report failed: {lines[-1] if lines else proc.returncode}[/]"
    report = next((ln for ln in lines if ln.endswith((".md", ".html"))), lines[-1] if lines else str(out))
    figures = sum(ln.endswith((".png", ".svg")) for ln in lines)
    return f"report written: {report} ({figures} figures)"


def pane(name: str, widget: Widget) -> Container:
    box = Container(widget, id=f"pane-{name}", classes="pane")
    box.border_title = PANE_TITLES[name]
    return box


class MainScreen(MoneyActions, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [*MAIN]

    def __init__(self) -> None:
        super().__init__()
        self.snap: SweepSnapshot | None = None
        self.marked: set[str] = set()
        self.query_text = ""
        self.poll_error: str | None = None
        self.last_series: dict[int, dict[str, list[tuple[int, float]]]] = {}
        self.last_log: str | None = None  # the controller message last put in the status line
        self.hide_ended = False           # `e`: rows of destroyed / never created instances hidden
        self.sort = ""                    # `S`: one of SORTS ("" = the ledger's order)
        self.side: bool | None = None     # `b`: side panes shown / hidden; None = by the terminal's width
        self.ended_said = False           # the "sweep ended, what next" line was put in the status line
        self.view = "instances"           # on a small terminal: the one pane shown

    def compose(self) -> ComposeResult:
        yield SweepHeader(id="header")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield pane("instances", InstancesTable(id="instances"))
                yield pane("curves", LossCurves(id="curves"))
                yield pane("events", EventsPane(id="events"))
            with Vertical(id="right"):
                yield pane("budget", BudgetPane(id="budget"))
                yield pane("coverage", CoverageGrid(id="coverage"))
                yield pane("leaderboard", Leaderboard(id="leaderboard"))
        yield Input(placeholder="filter: cell, state, reason, GPU or stage (enter keeps it, esc clears)", id="filter")
        yield Static("", id="status")
        yield Footer()

    @property
    def usim_app(self) -> UsimServices:
        """`self.app`, typed by what this screen uses of it (services.py), without importing the app."""
        return cast(UsimServices, self.app)

    def on_mount(self) -> None:
        self.query_one("#filter").display = False
        self.show_header(None, self.usim_app.clock.now(), None)
        self.fit(self.app.size.width, self.app.size.height)
        self.table.focus()
        self.usim_app.poll_now()

    # -- data ---------------------------------------------------------------------------------------------
    @property
    def table(self) -> InstancesTable:
        return self.query_one(InstancesTable)

    def attempt(self, key: str | None) -> AttemptView | None:
        if self.snap is None or key is None or not key.isdigit():
            return None
        return next((a for a in self.snap.attempts if a.attempt_id == int(key)), None)

    def cell(self, name: str | None) -> CellView | None:
        return next((c for c in self.snap.cells if c.name == name), None) if self.snap and name else None

    def selected_keys(self) -> list[str]:
        """The marked rows, or else the row under the cursor."""
        if self.marked:
            return [k for k in self.table.keys() if k in self.marked]
        key = self.table.selected_key
        return [key] if key else []

    def selected_cells(self) -> list[str]:
        names = []
        for key in self.selected_keys():
            a = self.attempt(key)
            name = a.cell if a else key.removeprefix("cell:")
            if name not in names:
                names.append(name)
        return names

    def selected_attempts(self) -> list[AttemptView]:
        found = [self.attempt(k) for k in self.selected_keys()]
        return [a for a in found if a is not None]

    def wanted(self) -> tuple[list[int], int | None]:
        """What the next poll reads besides the snapshot: curve series and the events of the cursor row."""
        cursor = self.attempt(self.table.selected_key)
        ids = [int(k) for k in self.marked if k.isdigit()] or ([cursor.attempt_id] if cursor else [])
        return sorted(ids), cursor.attempt_id if cursor else None

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        snap, now = message.snapshot, message.snapshot.now
        self.snap, self.poll_error = snap, None
        if self.marked:
            self.marked &= {str(a.attempt_id) for a in snap.attempts} | {f"cell:{c.name}" for c in snap.cells}
        self.show_header(snap, now, None)
        app = self.usim_app   # nothing launches the cells left without a controller: the projection is the spend
        launching = not app.controller_ended and controller_attached(snap, app.poll_interval) is not False
        self.guard(BudgetPane, lambda w: w.show(snap.budget, launching))
        self.guard(InstancesTable, lambda w: self.apply_table())
        self.guard(CoverageGrid, lambda w: w.show(snap.cells, queued_cells(snap)))
        self.guard(Leaderboard, lambda w: w.show(snap.cells))
        self.last_series = message.series
        names = {a.attempt_id: f"{self.table.labels.get(a.cell, a.cell)}#{a.attempt}" for a in snap.attempts
                 if a.attempt_id in message.series}
        self.guard(LossCurves, lambda w: w.show(message.series, names))
        self.title_curves(snap, message.series)
        self.guard(EventsPane, lambda w: self.show_events(w, message))
        self.status_after_poll(message)

    def title_curves(self, snap: SweepSnapshot, series: dict[int, Any]) -> None:
        """The curves pane names what it plots: the cell and attempt (the marked ones: how many)."""
        shown = [a for a in snap.attempts if a.attempt_id in series]
        what = f"{shown[0].cell} #{shown[0].attempt}" if len(shown) == 1 else f"{len(shown)} marked" if shown else ""
        self.query_one("#pane-curves").border_title = PANE_TITLES["curves"] + (f" · {what}" if what else "")

    def guard(self, kind: type[Widget], refresh: Callable[[Any], object]) -> None:
        """Refresh one pane; an exception stays in that pane (a notice in it), the others and the app go on."""
        widget = self.query_one(kind)
        try:
            refresh(widget)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            show_error = getattr(widget, "show_error", None)
            if callable(show_error):
                show_error(error)
            else:
                self.status(f"[red]{kind.__name__} failed: {error}[/]")

    def apply_table(self) -> None:
        if self.snap is not None:
            self.table.apply(self.snap, self.snap.now, self.marked, self.query_text, self.hide_ended, self.sort)

    def show_events(self, pane: EventsPane, message: SnapshotReady) -> None:
        cursor = self.attempt(self.table.selected_key)
        if cursor is not None and message.events_for == cursor.attempt_id:
            pane.show(f"{cursor.cell} #{cursor.attempt}", message.events)
        elif cursor is None:
            pane.show("sweep", message.snapshot.events)

    def status_after_poll(self, message: SnapshotReady) -> None:
        """The controller's latest message, or once the sweep has ended, what to do next."""
        if message.log and message.log != self.last_log:
            self.last_log = message.log
            self.status(message.log)
        line = ended_line(message.snapshot, self.usim_app.source)
        if line and not self.ended_said:
            self.status(line)
        self.ended_said = bool(line)

    def on_poll_failed(self, message: PollFailed) -> None:
        self.poll_error = message.error
        self.show_header(self.snap, self.usim_app.clock.now(), message.error)

    def show_header(self, snap: SweepSnapshot | None, now: float, error: str | None) -> None:
        """The header: a mode that disables the actions (read-only, the app's controller ended) first; the
        controller's part only while one can run (never `C starts one` where C does nothing)."""
        app = self.usim_app
        disabled = app.read_only or app.controller_ended
        beat = None if app.controller_ended else heartbeat(snap, app.poll_interval, can_start=not app.read_only)
        self.guard(SweepHeader, lambda w: w.show(snap, now, app.mode, error, beat, disabled))

    def on_coverage_grid_open(self, message: CoverageGrid.Open) -> None:
        self.open_details(self.cell(message.cell), self.latest_attempt(message.cell))

    def latest_attempt(self, cell: str) -> AttemptView | None:
        found = [a for a in (self.snap.attempts if self.snap else ()) if a.cell == cell]
        return max(found, key=lambda a: a.attempt) if found else None

    def on_resize(self, event: Resize) -> None:
        self.fit(event.size.width, event.size.height)

    def fit(self, width: int, height: int) -> None:
        """The layout for the terminal's size: side panes by width, one pane at a time when small, the cell
        column's width."""
        self.set_class(width < NARROW, "-narrow")
        self.set_class(height < SHORT, "-short")
        self.set_class(width < COMPACT_W or height < COMPACT_H, "-compact")
        self.table.name_width = 40 if width >= 160 else 24 if width >= 110 else 16
        self.apply_table()
        self.layout_side()

    def layout_side(self) -> None:
        shown = self.side if self.side is not None else not self.has_class("-narrow")
        self.set_class(not shown, "-noside")
        for name in PANES:
            self.set_class(self.view == name, f"-view-{name}")

    @on(DataTable.RowHighlighted, "#instances")
    def _row_moved(self) -> None:
        self.usim_app.poll_now()  # the curves and events follow the cursor

    @on(DataTable.RowSelected, "#instances")
    def _row_selected(self) -> None:
        self.action_details()

    def status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    # -- actions ------------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MUTATING and self.usim_app.read_only:
            return None  # shown greyed out in the footer, does nothing
        return True

    def action_pause(self) -> None:
        paused = bool(self.snap and self.snap.paused)
        self.usim_app.send("resume" if paused else "pause")

    def action_auto(self) -> None:
        on_now = bool(self.snap is None or self.snap.auto)
        self.usim_app.send("auto", on=not on_now)

    def action_logs(self) -> None:
        a = self.attempt(self.table.selected_key)
        if a is None:
            self.notify("select an instance to see its logs", severity="warning")
            return
        self.app.push_screen(LogsScreen(self.usim_app.source, a.attempt_id, f"{a.cell} #{a.attempt}"))

    def action_details(self) -> None:
        key = self.table.selected_key
        a = self.attempt(key)
        self.open_details(self.cell(a.cell if a else (key or "").removeprefix("cell:")), a)

    def open_details(self, c: CellView | None, a: AttemptView | None) -> None:
        if a is None and c is None:
            return
        self.app.push_screen(DetailsScreen(c, a, self.snap.now if self.snap else self.usim_app.clock.now()))

    def action_mark(self) -> None:
        key = self.table.selected_key
        if key is None:
            return
        self.marked ^= {key}
        self.apply_table()
        self.usim_app.poll_now()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self.apply_table()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = bool(box.value)
        self.table.focus()

    def action_back(self) -> None:
        """`esc`: clear the filter (and leave its box), else the marks."""
        box = self.query_one("#filter", Input)
        if box.display or box.value:
            box.value = ""
            box.display = False
            self.table.focus()
        elif self.marked:
            self.marked = set()
            self.apply_table()
            self.usim_app.poll_now()
        elif self.view != "instances":   # a small terminal showing another pane: back to the instances
            self.action_focus_pane("instances")

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.apply_table()
        self.query_one("#pane-instances").border_subtitle = f"sorted by {self.sort}" if self.sort else ""
        self.status(f"instances sorted by {self.sort or 'ledger order'} (S: next)")

    def action_ended(self) -> None:
        self.hide_ended = not self.hide_ended
        self.apply_table()
        gone = sum(1 for a in (self.snap.attempts if self.snap else ()) if a.state in GONE)
        self.status(f"ended instances hidden ({gone}; e shows them)" if self.hide_ended else "ended instances shown")

    def action_metric_events(self) -> None:
        pane = self.query_one(EventsPane)
        pane.show_metrics = not pane.show_metrics
        self.usim_app.poll_now()

    def action_start_controller(self) -> None:
        """`C`: start the sweep's controller (a process of its own) when none holds the ledger."""
        start = getattr(self.usim_app.source, "start_controller", None)
        if start is None:
            self.status("this view has no sweep to start a controller for")
            return
        self.status("starting the sweep's controller ...")
        self.app.run_worker(lambda: self._started(start()), thread=True, group="command", exit_on_error=False)

    def _started(self, line: str) -> None:
        self.app.call_from_thread(self.status, line)
        self.app.call_from_thread(self.usim_app.poll_now)

    def action_report(self) -> None:
        """`W`: the sweep's report written now, as `usim-tui report` writes it (a worker: it reads every result)."""
        ledger = getattr(getattr(self.usim_app.source, "ledger", None), "path", None)
        if ledger is None or self.snap is None:
            self.status("this view has no ledger to report on")
            return
        out = Path("reports") / self.snap.sweep
        self.status(f"writing the report into {out} ...")
        self.app.run_worker(lambda: self._reported(write_report(Path(ledger), out)), thread=True, group="command",
                            exit_on_error=False)

    def _reported(self, line: str) -> None:
        self.app.call_from_thread(self.status, line)

    def action_refresh(self) -> None:
        self.usim_app.poll_now()
        self.status("reading the ledger now")

    def action_side(self) -> None:
        shown = not self.has_class("-noside")
        self.side = not shown
        self.layout_side()

    def action_log_scale(self) -> None:
        self.guard(LossCurves, lambda curves: setattr(curves, "log_y", not curves.log_y))

    def action_stage(self) -> None:
        self.guard(LossCurves, self._next_stage)

    def _next_stage(self, curves: LossCurves) -> None:
        stages = curves.stages(self.last_series)
        curves.stage = stages[(stages.index(curves.stage) + 1) % len(stages)] if curves.stage in stages else ""
        curves.show(self.last_series, {a.attempt_id: f"{a.cell}#{a.attempt}" for a in (self.snap.attempts if self.snap else ())})

    def action_focus_pane(self, name: str) -> None:
        self.view = name   # on a small terminal: the pane shown
        if name in SIDE_PANES and self.has_class("-noside") and not self.has_class("-compact"):
            self.side = True
        self.layout_side()
        self.query_one(f"#{name}").focus()
        if self.has_class("-compact"):
            self.status(f"{PANE_TITLES[name][2:]} · esc: back to the instances" if name != "instances" else "")

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.usim_app.read_only))
