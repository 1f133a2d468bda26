"""Issue 30 in the app: `K` keeps a cell from the stopping rule and `x` stops one early, each after the confirm,
through the ledger's queue to a real controller over the simulated provider; a stopped-early cell shows in its
own colour and words with its reason (instances, details, coverage), never as a failure; a kept cell is pinned."""

from __future__ import annotations

from pathlib import Path

from app_support import SIZE, cursor_to, ready
from early_stop_support import es_sweep
from rich.text import Text
from textual.widgets import Static

from usim_tui.app.app import UsimApp
from usim_tui.app.format import CELL_STYLE, KEEP_MARK, STOPPED_EARLY_STYLE
from usim_tui.app.screens.confirm import ConfirmScreen
from usim_tui.app.screens.details import DetailsScreen, details_table
from usim_tui.app.source import LedgerSource
from usim_tui.app.widgets.coverage import CoverageGrid, cell_text
from usim_tui.fleet.clock import VirtualClock
from usim_tui.fleet.process.open import open_sweep
from usim_tui.fleet.providers.sim import Script, SimProvider
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.states import CellState, EndReason


class Night:
    """A real controller and ledger over the simulated provider on a virtual clock; the app attaches to the same
    ledger through its own connection (as `usim-tui --ledger` does) and queues its commands there."""

    def __init__(self, tmp_path: Path) -> None:
        self.sweep = es_sweep(tmp_path)
        self.clock = VirtualClock()
        curve = tuple(0.5 + 0.5 * 0.6 ** (e + 1) for e in range(10))
        opened = open_sweep(self.sweep, provider=SimProvider(self.clock, lambda spec: Script(run_s=600.0, curve=curve)),
                            ledger=tmp_path / "l.sqlite", runs_root=tmp_path / "runs", clock=self.clock,
                            poll_interval=5.0, run_preflight=False, log=lambda m: None, env={})
        self.ctl, self.led = opened.controller, opened.ledger
        self.cell = self.sweep.cells[0].name

    async def ticks(self, n: int) -> None:
        for _ in range(n):
            await self.ctl.tick()
            self.clock.advance(self.ctl.poll_interval)

    async def until_running(self) -> int:
        """Polls until the first cell trains (an epoch written); its attempt id."""
        for _ in range(200):
            running = [a for a in self.led.attempts("es", self.cell) if a.state == "running" and a.epoch is not None]
            if running:
                return running[0].id
            await self.ticks(1)
        raise AssertionError("the cell never ran")

    def app(self) -> UsimApp:
        return UsimApp(LedgerSource(Ledger(self.led.path)), clock=self.clock, poll_interval=3600)


def queued(led: Ledger) -> list[tuple[str, dict]]:
    """Commands the app queued that the controller has not taken yet."""
    return [(q.command, q.args) for q in led.snapshot("es").queued]


async def settle(app, pilot) -> None:
    """The command's worker done and the ledger read again."""
    await app.workers.wait_for_complete()
    await pilot.pause(0.1)


async def reread(app, pilot) -> None:
    await pilot.press("R")
    for _ in range(50):
        await pilot.pause(0.05)
        if not app._polling:
            break
    await pilot.pause(0.1)


def status_text(app: UsimApp) -> str:
    return str(app.main.query_one("#status", Static).render())


async def test_k_keeps_a_cell_after_the_confirm_and_again_stops_keeping_it(tmp_path):
    night = Night(tmp_path)
    aid = await night.until_running()
    app = night.app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        cursor_to(app, str(aid))
        await pilot.press("K")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question.startswith("Keep 1 cell(s)") and night.cell in app.screen.question
        await pilot.press("n")    # no: nothing queued
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmScreen) and queued(night.led) == []

        await pilot.press("K", "y")
        await settle(app, pilot)
        assert queued(night.led) == [("keep", {"cell": night.cell, "on": True})]
        assert "queued keep" in status_text(app)
        await night.ticks(1)      # the controller takes it
        assert night.led.cell("es", night.cell).keep == 1
        await reread(app, pilot)
        label = app.main.table.row_text(str(aid))[0]
        assert isinstance(label, Text) and label.plain.endswith(f" {KEEP_MARK}")   # pinned
        table = app.main.table
        await pilot.pause(0.1)
        line = "".join(seg.text for seg in table.render_line(table.get_row_index(str(aid)) + 1))
        assert f"{night.cell} {KEEP_MARK}" in line, line   # the column widened for the pin: never cut
        grid = app.main.query_one(CoverageGrid)
        assert KEEP_MARK in cell_text(next(c for c in grid.cells if c.name == night.cell)).plain

        await pilot.press("K")    # every selected cell kept: K asks to stop keeping it
        await pilot.pause()
        assert app.screen.question.startswith("Stop keeping 1 cell(s)")
        await pilot.press("y")
        await settle(app, pilot)
        assert queued(night.led) == [("keep", {"cell": night.cell, "on": False})]
        await night.ticks(1)
        assert night.led.cell("es", night.cell).keep == 0


async def test_x_stops_a_running_cell_early_after_the_confirm_and_it_shows_apart_from_failures(tmp_path):
    night = Night(tmp_path)
    aid = await night.until_running()
    app = night.app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        cursor_to(app, str(aid))
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        q = app.screen.question
        assert q.startswith("Stop 1 running cell(s) early") and night.cell in q and "$0.40/h" in q and "spent $" in q
        await pilot.press("escape")
        await settle(app, pilot)
        assert queued(night.led) == []

        await pilot.press("x")
        await pilot.pause()
        await pilot.click("#yes")
        await settle(app, pilot)
        assert queued(night.led) == [("stop_early", {"cell": night.cell})]
        await night.ticks(3)      # taken, results pulled, destroyed
        cell = night.led.cell("es", night.cell)
        assert cell.state == CellState.STOPPED_EARLY and cell.reason.startswith("stopped early by a person at operator")
        (a,) = night.led.attempts("es", night.cell)
        assert a.reason == EndReason.STOPPED_EARLY and a.state == "destroyed"

        await reread(app, pilot)
        row = app.main.table.row_text(str(aid))
        reason = row[3]
        assert isinstance(reason, Text) and reason.plain == "stopped early" and str(reason.style) == STOPPED_EARLY_STYLE
        assert "red" not in STOPPED_EARLY_STYLE and CELL_STYLE[CellState.STOPPED_EARLY] == STOPPED_EARLY_STYLE
        grid = app.main.query_one(CoverageGrid)
        shown = cell_text(next(c for c in grid.cells if c.name == night.cell))
        assert shown.plain == "stopped" and str(shown.style) == STOPPED_EARLY_STYLE

        await pilot.press("enter")   # the details name the state in words and give the reason
        await pilot.pause()
        assert isinstance(app.screen, DetailsScreen)
        table = details_table(app.screen.cell, app.screen.attempt, app.screen.now)
        text = "\n".join(str(c) for col in table.columns for c in col._cells)
        assert "stopped early" in text and cell.reason in text and "failed" not in text
        await pilot.press("escape")
        await pilot.pause()

        await pilot.press("slash", *"stopped", "space", *"early", "enter")   # the filter knows the words shown
        await pilot.pause(0.2)
        assert app.main.table.keys() == [str(aid)]
        await pilot.press("escape")
        await pilot.pause()

        await pilot.press("x")       # no longer running: nothing to stop, no question
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)


async def test_a_stopped_early_cell_from_the_rule_is_shown_with_the_rule_s_reason(tmp_path):
    """A whole night: the rule stops the losers; the app counts them apart from the failures when it ends."""
    night = Night(tmp_path)
    ranks = {c.name: i for i, c in enumerate(night.sweep.cells)}

    def script(spec):
        end = 0.1 * (1 + ranks[spec.cell])
        return Script(run_s=600.0, curve=tuple(end + (1 - end) * 0.6 ** (e + 1) for e in range(10)))

    night.ctl.provider.script_for = script
    await night.ctl.run(until=night.clock.now() + 2000 * night.ctl.poll_interval)
    stopped = [c for c in night.led.cells("es") if c.state == CellState.STOPPED_EARLY]
    assert stopped and all(c.reason.startswith("stopped early at rung") for c in stopped)
    app = night.app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.2)
        line = status_text(app)
        assert f"{len(stopped)} stopped early" in line and "failed" not in line, line
        snap = app.main.snap
        view = next(c for c in snap.cells if c.name == stopped[0].name)
        table = details_table(view, None, snap.now)
        text = "\n".join(str(c) for col in table.columns for c in col._cells)
        assert "stopped early at rung" in text and "cut-off" in text


async def test_keep_and_stop_early_are_disabled_read_only(tmp_path):
    night = Night(tmp_path)
    aid = await night.until_running()
    app = UsimApp(LedgerSource(Ledger(night.led.path)), clock=night.clock, poll_interval=3600, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        cursor_to(app, str(aid))
        await pilot.press("K", "x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and queued(night.led) == []
