"""Issue 28, what a cold try of the app still found on main: names cut inside a value, a header that said "no
controller" while one ran, a queued relaunch that did not show, the curves' legend over the data, the sort,
losses cut, `q` during preflight, `W`'s line, three spend figures, the events pane at 80 x 24, `l`'s order."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from app_support import NOW, ready
from rich.console import Console
from textual.widgets import Static

from usim_core.sweep import expand
from usim_tui.app.app import UsimApp
from usim_tui.app.format import short_names
from usim_tui.app.source import LedgerSource
from usim_tui.fleet.store.ledger import Ledger

SWEEPS = Path(__file__).resolve().parents[2] / "configs" / "sweeps"


def status_text(app: UsimApp) -> str:
    return str(app.main.query_one("#status", Static).render())


def header_text(app: UsimApp) -> str:
    return str(app.main.query_one("#header", Static).render())


def plain(renderable) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def varied(cell) -> list[str]:
    """What tells a cell of overnight_sota from the others in its name: the grid's values, the list item."""
    values = [t.partition("=")[2].replace("%", "pct") for t in cell.tags if "=" in t]
    return values or [cell.name.removeprefix(cell.round + "_")]


@pytest.mark.parametrize("width", [16, 20, 24])
def test_short_names_never_cut_a_varied_value(width):
    """On main at 16 columns: `…a_lr4.…-4_w3pct`, the lr value cut in its middle and the round shown as `…a_`."""
    sweep = expand(SWEEPS / "overnight_sota.yaml")
    short = short_names([c.name for c in sweep.cells], width, {c.name: c.round for c in sweep.cells})
    assert len(set(short.values())) == len(sweep.cells) and all(len(v) <= width for v in short.values()), short
    for c in sweep.cells:
        assert all(v in short[c.name] for v in varied(c)), (c.name, short[c.name])
    assert short["round_a_lr4.5e-4_w3pct"] in ("A·lr4.5e-4_w3pct", "round_a_lr4.5e-4_w3pct")
    assert short["round_b_cap128"] != short["round_c_cap128_ttc"]


def test_each_round_is_shortened_only_as_far_as_it_needs():
    sweep = expand(SWEEPS / "overnight_sota.yaml")
    short = short_names([c.name for c in sweep.cells], 13, {c.name: c.round for c in sweep.cells})
    assert short["round_a_lr4.5e-4_w3pct"] == "A·4.5e-4_3pct" and short["round_b_cap64"] == "B·cap64"


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
async def test_the_table_names_overnight_cells_by_their_round_and_values(tmp_path, clock, size):
    sweep = expand(SWEEPS / "overnight_sota.yaml")
    led = Ledger(tmp_path / "ledger.sqlite")
    led.ensure_sweep(sweep)
    app = UsimApp(LedgerSource(led), clock=clock, poll_interval=3600)
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        table = app.main.table
        shown = {str(table.row_text(f"cell:{c.name}")[0]).strip("● ").strip(): c for c in sweep.cells}
        assert len(shown) == len(sweep.cells)
        for label, c in shown.items():
            assert "…" not in label and all(v in label for v in varied(c)), (label, c.name)


async def test_the_lock_decides_whether_a_controller_runs_not_the_heartbeat_s_age(demo_ledger, clock):
    """On main: a controller busy in its preflight (no tick for 41 s) was `no controller · C starts one`, and one
    that `usim-tui stop` ended was still `launching on · controller pid N seen 15s ago` for 20 s. A live process
    holding the ledger's lock (this test's) is the controller; its release is no controller at once."""
    import os

    from usim_tui.fleet.process.daemon import ControllerLock

    led, _, _ = demo_ledger
    lock = ControllerLock(led.path)
    lock.acquire()
    led.set_sweep("demo", controller_pid=os.getpid(), controller_seen_at=NOW - 41, controller_state="running")
    app = UsimApp(LedgerSource(led), clock=clock, poll_interval=0.05)
    try:
        async with app.run_test(size=(200, 50)) as pilot:
            await ready(app, pilot)
            await pilot.pause(0.2)
            text = header_text(app)
            assert "no controller" not in text and f"controller pid {os.getpid()}" in text, text
            led.set_sweep("demo", controller_seen_at=NOW - 2)   # a fresh tick, then the controller ends
            lock.release()
            for _ in range(50):
                await pilot.pause(0.05)
                if "no controller" in header_text(app):
                    break
            text = header_text(app)
            assert text.startswith("no controller") and "launching on" not in text and "seen 2s ago" not in text, text
            assert "C starts one" in text
    finally:
        lock.release()


async def test_read_only_comes_first_and_never_offers_c(source, clock):
    """On main: `--read-only` offered `C starts one` (C does nothing there) and said read-only last."""
    import dataclasses

    source.current = dataclasses.replace(source.current, controller_seen_at=NOW - 10**6)
    app = UsimApp(source, clock=clock, poll_interval=3600, read_only=True)
    async with app.run_test(size=(200, 50)) as pilot:
        await ready(app, pilot)
        text = header_text(app)
        assert text.startswith("read-only") and "no controller" in text and "C starts one" not in text, text


async def test_an_ended_controller_is_said_first(source, clock):
    """On main `controller finished: actions disabled` came last and was cut even at 200 columns."""
    source.controller = object()  # a real controller that has returned
    app = UsimApp(source, clock=clock, poll_interval=0.05)
    async with app.run_test(size=(200, 50)) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.3)
        text = header_text(app)
        assert text.startswith("controller finished: actions disabled"), text
        assert "launching on" not in text and "C starts one" not in text, text


async def test_a_relaunch_shows_as_queued_until_its_attempt_starts(tmp_path, clock):
    """On main, after `r` `y` on a finished cell only the status line said `queued relaunch`: once the controller
    had taken the command, the table and the grid showed nothing until attempt #2 appeared minutes later. The
    cell is queued from the next ledger read until then: reason `queued relaunch`, the grid's cell `queued`."""
    from usim_tui.app.widgets.coverage import CoverageGrid
    from usim_tui.fleet.clock import VirtualClock
    from usim_tui.fleet.process.open import open_sweep
    from usim_tui.fleet.providers.sim import SimProvider

    sweep = expand(SWEEPS / "demo.yaml")
    vclock = VirtualClock(NOW)
    opened = open_sweep(sweep, provider=SimProvider(vclock), ledger=tmp_path / "ledger.sqlite",
                        runs_root=tmp_path / "runs", clock=vclock, run_preflight=False, log=lambda m: None, env={})
    led, cell = opened.ledger, sweep.cells[0].name
    aid = led.new_attempt("demo", cell, 1, f"usim:demo:{cell}:1", str(tmp_path / "r1"), NOW - 900)
    led.set_attempt(aid, state="destroyed", reason="finished", started_at=NOW - 800, ended_at=NOW - 100)
    led.set_cell("demo", cell, state="finished", reason="finished")
    led.set_sweep("demo", paused=1)   # nothing launches: the relaunch waits, as behind a full fleet
    app = UsimApp(LedgerSource(Ledger(led.path)), clock=clock, poll_interval=0.05)
    try:
        async with app.run_test(size=(200, 50)) as pilot:
            await ready(app, pilot)
            table = app.main.table
            table.move_cursor(row=table.get_row_index(str(aid)))
            await pilot.press("r", "y")

            async def reason_is(text: str) -> bool:
                for _ in range(60):
                    await pilot.pause(0.05)
                    if str(table.row_text(str(aid))[3]) == text:
                        return True
                return False

            assert await reason_is("queued relaunch"), table.row_text(str(aid))   # not taken yet
            await opened.controller.tick()    # the controller takes it; the cell waits to launch
            assert not led.snapshot("demo").queued and led.cell("demo", cell).state == "pending"
            await pilot.pause(0.3)
            assert await reason_is("queued relaunch"), table.row_text(str(aid))
            grid = plain(app.main.query_one(CoverageGrid).content)
            assert "queued" in grid.split("lr ↓")[1].split("pending")[0], grid   # in the matrix, not the legend
    finally:
        await opened.close()


async def test_the_curves_legend_covers_no_data(source, clock):
    """On main plotext drew the legend top-left inside the plot, over the start of the curves. It is a row of
    its own below the plot now, each label in its line's colour."""
    from app_support import SIZE, cursor_to

    from usim_tui.app.widgets.curves import LossCurves

    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        curves = app.main.query_one(LossCurves)
        cursor_to(app, "1")
        await pilot.pause(0.3)
        rows = ["".join(seg.text for seg in curves.render_line(y)) for y in range(curves.size.height)]
        labels = set(curves.lines)
        assert len(labels) == 3
        with_labels = [i for i, row in enumerate(rows) if any(label in row for label in labels)]
        assert with_labels == [len(rows) - 1], rows            # the last row, and no row of the plot
        assert all(label in rows[-1] for label in labels), rows[-1]


def seconds(text: str) -> int:
    """`4m33s`, `3h07m`, `42s` back to seconds."""
    import re

    h, m, s = (re.search(rf"(\d+){u}", text) for u in "hms")
    return sum(int(x.group(1)) * k for x, k in ((h, 3600), (m, 60), (s, 1)) if x)


async def test_sort_by_time_orders_by_the_time_shown_and_the_header_marks_the_column(source, clock):
    """On main `S` = time gave 5m16s, 5m06s, 4m33s, 4m34s: ended rows sorted by time since their start, not by
    the start-to-end time the column shows; and no column header said what the rows were sorted by."""
    import dataclasses

    from textual.widgets.data_table import ColumnKey

    snap = source.current
    ends = {1: NOW - 2900, 2: NOW - 100}   # the first finished run was short, the second long
    source.current = dataclasses.replace(snap, attempts=tuple(
        dataclasses.replace(a, ended_at=ends.get(a.attempt_id, a.ended_at)) for a in snap.attempts))
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=(200, 50)) as pilot:
        await ready(app, pilot)
        table = app.main.table
        assert "▼" not in str(table.columns[ColumnKey("uptime")].label)
        while app.main.sort != "time":
            await pilot.press("S")
        await pilot.pause()
        times = [str(table.row_text(k)[4]) for k in table.keys() if k.isdigit()]
        assert [seconds(t) for t in times] == sorted((seconds(t) for t in times), reverse=True), times
        assert str(table.columns[ColumnKey("uptime")].label) == "time ▼"
        await pilot.press("S")   # $/h: the mark moves with the sort
        await pilot.pause()
        assert str(table.columns[ColumnKey("uptime")].label) == "time"
        assert "▼" in str(table.columns[ColumnKey("price")].label)
        header = "".join(seg.text for seg in table.render_line(0))
        assert "$/h ▼" in header, header


@pytest.mark.parametrize("size", [(200, 50), (100, 30), (80, 24)])
async def test_a_loss_is_never_cut(source, clock, size):
    """On main 7.46e-06 showed as `7.46e-0` at 200 columns (reads as 7.46) and `7.46` at 100: the column was
    narrower than the text, and at 100 columns the pane's edge cut the column. A loss fits its column and shows
    whole, or (80 columns) not at all until scrolled to."""
    import dataclasses

    from usim_tui.app.format import loss

    values = (7.46e-06, 1234.5, 0.00123, -2.5e-5, 0.0421)
    snap = source.current
    source.current = dataclasses.replace(snap, attempts=tuple(
        dataclasses.replace(a, last_loss=values[i % len(values)]) for i, a in enumerate(snap.attempts)))
    for v in values:
        assert len(loss(v)) <= 7 and abs(float(loss(v)) - v) <= 0.01 * abs(v), (v, loss(v))
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.2)
        table = app.main.table
        for a in source.current.attempts:
            line = "".join(seg.text for seg in table.render_line(table.get_row_index(str(a.attempt_id)) + 1))
            text = loss(a.last_loss)
            whole = f" {text} " in line + " "
            assert whole or (size[0] < 100 and text[:3] not in line.split()[-1]), (text, line)
            if size[0] >= 100:
                assert whole, (text, line)


async def test_q_asks_while_a_controller_has_work_left_though_nothing_is_live(tmp_path, clock):
    """On main `q` in the first minute of `make run` (the controller in its preflight, no instance yet) quit at
    once, leaving the controller to train the whole sweep. It asks: leave it or stop it (stop first, local)."""
    import os

    from textual.widgets import Button

    from usim_tui.app.screens.quit import QuitScreen
    from usim_tui.fleet.process.daemon import ControllerLock

    sweep = expand(SWEEPS / "demo.yaml")
    led = Ledger(tmp_path / "ledger.sqlite")
    led.ensure_sweep(sweep)
    led.set_sweep("demo", controller_pid=os.getpid(), controller_seen_at=NOW - 60, controller_state="running")
    lock = ControllerLock(led.path)
    lock.acquire()
    try:
        app = UsimApp(LedgerSource(led), clock=clock, poll_interval=3600)
        async with app.run_test(size=(200, 50)) as pilot:
            await ready(app, pilot)
            await pilot.press("q")
            await pilot.pause()
            assert isinstance(app.screen, QuitScreen), "quit without asking"
            assert "4 cell(s) left" in app.screen.question, app.screen.question
            assert isinstance(app.focused, Button) and app.focused.id == "stop"
            await pilot.press("escape")
            await pilot.pause()
            assert app.is_running
    finally:
        lock.release()


async def test_the_spend_figures_agree_once_nothing_can_launch(source, clock):
    """On main a finished rehearsal showed `$1.46` in the header, `$1.32 billed` in the status line and
    `proj. $3.91` at a burn of $0/h in the budget pane. With nothing live and no controller to launch the
    cells left, the projection is the spend; each figure says what it is (spent, billed by the provider)."""
    import dataclasses

    from usim_tui.app.widgets.budget import BudgetPane

    snap = source.current
    budget = dataclasses.replace(snap.budget, spent=1.46, committed=0.0, burn_per_hour=0.0, projected_total=3.91,
                                 projected_finish=None, provider_reported=1.32)
    source.current = dataclasses.replace(snap, budget=budget, attempts=tuple(
        dataclasses.replace(a, state="destroyed") for a in snap.attempts))
    source.controller = object()  # the rehearsal's controller, returned
    app = UsimApp(source, clock=clock, poll_interval=0.05)
    async with app.run_test(size=(200, 50)) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.3)
        pane = str(app.main.query_one(BudgetPane).render())
        assert "proj. $1.46" in pane and "billed $1.32 (provider)" in pane, pane
        assert "spent $1.46 of $5.25" in header_text(app), header_text(app)


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
async def test_the_events_pane_fills_a_small_terminal(source, clock, size):
    """On main at 80 x 24 the events pane (6) used 4 of 20 lines: its fixed short height won over the layout
    that gives the one pane shown the whole body."""
    from usim_tui.app.widgets.events import EventsPane

    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        await pilot.press("6")
        await pilot.pause()
        body = app.main.query_one("#body").region.height
        assert app.main.query_one("#pane-events").region.height == body
        assert app.main.query_one(EventsPane).region.height >= body - 2


async def test_logs_show_each_line_once_in_time_order(source, clock, monkeypatch):
    """On main events that arrived after the trainer's output was shown were appended below it: lines out of
    order (and, when the event list shifted, twice). Each line shows once, the events in time order above the
    trainer's output."""
    from app_support import cursor_to

    from usim_tui.app.screens import logs
    from usim_tui.fleet.store.snapshot import EventView

    monkeypatch.setattr(logs, "FOLLOW_S", 0.1)
    raw = ["host booting", "pip install ok"]

    async def provider_logs(attempt_id: int) -> str:
        return "\n".join(raw)

    source.provider_logs = provider_logs
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=(200, 50)) as pilot:
        await ready(app, pilot)
        cursor_to(app, "1")
        await pilot.press("l")
        await pilot.pause(0.3)
        screen = app.screen

        def text() -> list[str]:
            return [str(line.text) for line in screen.query_one("#logs").lines]

        assert "pip install ok" in text()
        reads = screen.loaded
        raw.append("epoch 5 done")
        late = EventView(NOW - 2990, 1, "x", "stage_end", "codec finished late")   # pulled from the host later
        source.events[1] = source.events[1] + [EventView(NOW, 1, "x", "stage_end", "operator finished"), late]
        for _ in range(50):
            await pilot.pause(0.05)
            if "epoch 5 done" in text() and any("operator finished" in ln for ln in text()):
                break
        lines = text()
        assert screen.loaded > reads
        output = next(i for i, ln in enumerate(lines) if ln.startswith("the trainer's output"))
        events = [ln for ln in lines[:output] if ln[:2].isdigit()]
        assert any("operator finished" in ln for ln in events) and any("codec finished late" in ln for ln in events)
        assert events == sorted(events, key=lambda ln: ln[:8]), events     # HH:MM:SS first: time order
        assert len(lines) == len(set(lines)), lines                          # each line once
        assert lines[output + 1:] == raw, lines[output + 1:]
