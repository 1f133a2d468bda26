"""Pilot tests: every key binding, the confirm dialog, read-only, and commands reaching the ledger's queue."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

from app_support import SIZE, cursor_to, ready
from textual.widgets import DataTable, Input, Static

from usim_tui.app.app import UsimApp
from usim_tui.app.bindings import MAIN
from usim_tui.app.screens.confirm import ConfirmScreen
from usim_tui.app.screens.details import DetailsScreen
from usim_tui.app.screens.help import HelpScreen
from usim_tui.app.screens.logs import LogsScreen
from usim_tui.app.source import LedgerSource
from usim_tui.app.widgets.curves import LossCurves


async def test_every_binding_is_tested_here():
    tested = {"launch", "destroy", "destroy_now", "relaunch", "logs", "details", "mark", "filter", "pause", "auto",
              "log_scale", "stage", "focus_pane", "help", "quit_app",
              # tests/app/test_app_keymap.py
              "back", "sort", "ended", "metric_events", "refresh", "side", "app.command_palette",
              "start_controller",   # test_app_keymap.py: test_c_starts_a_controller_when_none_runs
              "report",             # test_app_keymap.py: test_w_writes_the_report
              "keep", "stop_early"}  # test_app_early_stop.py
    assert {b.action.split("(")[0] for b in MAIN} == tested


async def test_launch_relaunch_marks_and_destroy_confirm(source, clock):
    app = UsimApp(source, clock=clock, dangerous=True)  # D without a question: only when started dangerous
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        cursor_to(app, "cell:round_a_lr4.5e-4_w3pct")
        await pilot.press("n")   # launch asks first (a paid instance), then sends
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "round_a_lr4.5e-4_w3pct" in app.screen.question
        await pilot.press("y")
        await pilot.pause()
        assert ("launch", {"cell": "round_a_lr4.5e-4_w3pct"}) in source.sent

        # space marks two rows; n then launches both cells, r relaunches both (each after its confirm)
        source.sent.clear()
        cursor_to(app, "cell:round_b_cap96")
        await pilot.press("space")
        cursor_to(app, "cell:round_b_cap128")
        await pilot.press("space")
        assert app.main.marked == {"cell:round_b_cap96", "cell:round_b_cap128"}
        await pilot.press("n", "y", "r", "y")
        await pilot.pause()
        assert sorted(source.sent, key=str) == sorted([("launch", {"cell": "round_b_cap96"}),
                                                       ("launch", {"cell": "round_b_cap128"}),
                                                       ("relaunch", {"cell": "round_b_cap96"}),
                                                       ("relaunch", {"cell": "round_b_cap128"})], key=str)
        await pilot.press("space")  # unmark the one under the cursor
        assert app.main.marked == {"cell:round_b_cap96"}
        cursor_to(app, "cell:round_b_cap96")
        await pilot.press("space")
        assert not app.main.marked

        # d asks first; "n" cancels, "y" destroys
        source.sent.clear()
        running = next(a for a in source.current.attempts if a.state == "running")
        cursor_to(app, str(running.attempt_id))
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert running.cell in str(app.screen.question)
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and source.sent == []
        await pilot.press("d")
        await pilot.pause()
        await pilot.click("#yes")
        await pilot.pause()
        assert source.sent == [("destroy", {"attempt_id": running.attempt_id})]

        # D destroys without asking
        source.sent.clear()
        await pilot.press("D")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert source.sent == [("destroy", {"attempt_id": running.attempt_id})]

        # a row with no instance has nothing to destroy: no dialog, no command
        source.sent.clear()
        cursor_to(app, "cell:round_b_cap96")
        await pilot.press("d", "D")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and source.sent == []


async def test_pause_and_auto_toggle_from_the_snapshot(source, clock):
    app = UsimApp(source, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("p", "a")
        await pilot.pause()
        assert source.sent == [("pause", {}), ("auto", {"on": False})]
        source.current = dataclasses.replace(source.current, paused=True, auto=False)
        app.poll_now()
        await pilot.pause(0.2)
        assert "PAUSED" in str(app.main.query_one("#header").render())
        source.sent.clear()
        await pilot.press("p", "a")
        await pilot.pause()
        assert source.sent == [("resume", {}), ("auto", {"on": True})]


async def test_details_logs_help_and_panes(source, clock):
    app = UsimApp(source, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        first = source.current.attempts[0]
        cursor_to(app, str(first.attempt_id))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailsScreen) and app.screen.attempt == first
        await pilot.press("escape")
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LogsScreen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        lines = "\n".join(str(line.text) for line in app.screen.query_one("#logs").lines)
        assert "operator/train_loss 0.0123 step 590" in lines and "events (5)" in lines
        await pilot.press("escape")
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        for key, pane in zip("123456", ("instances", "curves", "coverage", "budget", "leaderboard", "events"),
                             strict=True):
            await pilot.press(key)
            assert app.focused is not None and app.focused.id == pane


async def test_curves_follow_selection_log_scale_and_stage(source, clock):
    app = UsimApp(source, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        curves = app.main.query_one(LossCurves)
        cursor_to(app, "1")
        await pilot.pause(0.3)
        assert set(curves.lines) == {"codec train_loss", "operator train_loss", "operator val_loss"}   # short legends
        await pilot.press("y")
        assert curves.log_y
        await pilot.press("s")  # all -> codec
        await pilot.pause()
        assert curves.stage == "codec" and set(curves.lines) == {"codec train_loss"}
        await pilot.press("s", "s")  # -> operator -> all
        assert curves.stage == ""
        # two marked attempts overlay, each line labelled with its cell and attempt
        await pilot.press("space")
        cursor_to(app, "2")
        await pilot.press("space")
        await pilot.pause(0.3)
        assert {label.split(" ")[0] for label in curves.lines} == {"round_a_lr2e-4_w3pct#1", "round_a_lr2e-4_w5pct#1"}


async def test_filter_hides_rows_and_escape_clears(source, clock):
    app = UsimApp(source, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        total = app.main.table.row_count
        await pilot.press("slash")
        assert app.focused is app.main.query_one("#filter", Input)
        await pilot.press(*"running")
        await pilot.pause()
        states = [app.main.table.row_text(k.value)[2].plain for k in app.main.table.rows]
        assert states and set(states) == {"running"}
        await pilot.press("escape")
        await pilot.pause()
        assert app.main.table.row_count == total and app.focused is app.main.table


async def test_refresh_keeps_the_cursor_and_updates_rows_in_place(source, clock):
    app = UsimApp(source, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        table = app.main.table
        cursor_to(app, "3")
        snap = source.current
        changed = tuple(dataclasses.replace(a, state="exited", reason="finished") if a.attempt_id == 6 else a
                        for a in snap.attempts)
        new = dataclasses.replace(changed[0], attempt_id=99, cell="round_b_cap96", state="pending")
        gone = snap.attempts[1].attempt_id
        source.current = dataclasses.replace(snap, attempts=tuple(a for a in changed if a.attempt_id != gone) + (new,))
        app.poll_now()
        await pilot.pause(0.3)
        assert table.selected_key == "3"
        assert table.row_text("6")[2].plain == "exited" and table.row_text("6")[3] == "finished"
        assert "99" in [k.value for k in table.rows] and str(gone) not in [k.value for k in table.rows]
        assert "cell:round_b_cap96" not in [k.value for k in table.rows]  # its attempt row replaces it


async def test_read_only_disables_every_action(source, clock):
    app = UsimApp(source, clock=clock, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        cursor_to(app, "3")
        await pilot.press("n", "d", "D", "r", "p", "a")
        await pilot.pause()
        assert source.sent == [] and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("q")  # read-only never asks: it controls nothing
        await pilot.pause()
    assert app.return_code == 0


async def test_quit_asks_when_paid_instances_run_here(source, clock):
    app = UsimApp(source, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "paid instance" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running
        await pilot.press("q", "y")
        await pilot.pause()
    assert not app.is_running


async def test_quit_without_live_instances_does_not_ask(source, clock):
    source.current = dataclasses.replace(source.current, attempts=tuple(
        dataclasses.replace(a, state="destroyed") for a in source.current.attempts))
    app = UsimApp(source, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("q")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
    assert not app.is_running


async def test_attached_commands_land_in_the_ledger_queue(demo_ledger, clock):
    led, sweep, (a1, a2) = demo_ledger
    app = UsimApp(LedgerSource(led), clock=clock, dangerous=True)  # attached: no controller in this process
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert app.main.snap.sweep == "demo"
        cursor_to(app, str(a1))
        await pilot.press("D", "r", "y", "p")
        cursor_to(app, f"cell:{sweep.cells[2].name}")
        await pilot.press("n", "y")
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        taken = [(c.command, c.args) for c in led.take_commands("demo", clock.now())]
        assert taken == [("destroy", {"attempt_id": a1}), ("relaunch", {"cell": sweep.cells[0].name}),
                         ("pause", {}), ("launch", {"cell": sweep.cells[2].name})]
        await pilot.press("q")  # attached: the controller lives elsewhere, quitting needs no confirm
        await pilot.pause()
    assert not app.is_running


async def test_a_failing_ledger_is_a_status_not_a_crash(source, clock):
    calls = {"n": 0}
    real = source.snapshot

    def flaky(now=None):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError("database is locked")
        return real(now)

    source.snapshot = flaky
    app = UsimApp(source, clock=clock, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.3)
        assert calls["n"] >= 3  # it kept polling after the failure
        assert "database is locked" in str(app.main.query_one("#header").render())
        assert app.main.table.row_count > 0  # the last good snapshot stays on screen


async def test_polls_never_overlap(source, clock):
    active, peak = [0], [0]
    real = source.snapshot

    def slow(now=None):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        __import__("time").sleep(0.05)
        active[0] -= 1
        return real(now)

    source.snapshot = slow
    app = UsimApp(source, clock=clock, poll_interval=0.01)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(20):  # force polls while one is in flight
            app.poll_now()
            await asyncio.sleep(0.01)
        await pilot.pause(0.2)
        assert app.polls >= 3 and peak[0] == 1
        assert isinstance(app.main.query_one("#instances"), DataTable)


async def test_a_poll_asked_for_during_a_poll_runs_once_right_after_it(source, clock):
    app = UsimApp(source, clock=clock, poll_interval=3600)  # no periodic poll inside this test
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.2)
        reads, gate, real = [0], threading.Event(), source.snapshot

        def gated(now=None):
            reads[0] += 1
            gate.wait(5)
            return real(now)

        async def until(n: int) -> None:  # a loaded machine may take a while to start the thread
            for _ in range(100):
                if reads[0] >= n:
                    return
                await pilot.pause(0.02)

        source.snapshot = gated
        app.poll_now()
        await until(1)
        assert reads[0] == 1            # in flight, held in its read
        app.poll_now()
        app.poll_now()                  # asked twice meanwhile: one more poll, not two, and not at once
        await pilot.pause(0.1)
        assert reads[0] == 1
        gate.set()
        await until(2)
        await pilot.pause(0.2)
        assert reads[0] == 2


async def test_the_controller_s_latest_message_is_the_status_line(source, clock):
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        status = app.main.query_one("#status", Static)
        source.log.append("launched round_b_cap96 #1 on m7")
        app.poll_now()
        await pilot.pause(0.3)
        assert "launched round_b_cap96 #1 on m7" in str(status.render())
        await pilot.press("p")          # a command's result takes the line ...
        await pilot.pause(0.3)
        assert "pause" in str(status.render()) and "launched" not in str(status.render())
        app.poll_now()                  # ... and the same controller message is not shown again
        await pilot.pause(0.3)
        assert "launched" not in str(status.render())
        source.log.append("destroyed round_a_lr2e-4_w3pct #1")
        app.poll_now()
        await pilot.pause(0.3)
        assert "destroyed round_a_lr2e-4_w3pct #1" in str(status.render())


async def test_rows_off_screen_are_brought_up_to_date_when_scrolled_into_view(source, clock):
    snap = source.current
    many = tuple(dataclasses.replace(snap.attempts[2], attempt_id=100 + i, cell=f"round_x_c{i}") for i in range(80))
    source.current = dataclasses.replace(snap, attempts=many, cells=())
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        table = app.main.table
        source.current = dataclasses.replace(source.current, attempts=tuple(
            dataclasses.replace(a, state="exited", epoch=99) for a in many))
        app.poll_now()
        await pilot.pause(0.3)
        assert table.get_row("100")[2].plain == "exited"      # on screen: updated at once
        assert table.get_row("179")[2].plain == "running"     # off screen: not formatted yet
        table.move_cursor(row=79)                              # scrolls it into view
        await pilot.pause(0.2)
        assert table.get_row("179")[2].plain == "exited" and table.get_row("179")[6] == "99"


def screen_line(table: DataTable, key: str) -> str:
    """The row as painted (segments), not as stored: catches a render cache that serves old cells."""
    y = table.get_row_index(key) + table.header_height - int(table.scroll_y)
    return "".join(seg.text for seg in table.render_line(y))


async def test_a_poll_repaints_only_the_cells_that_changed(source, clock, monkeypatch):
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        table = app.main.table
        await pilot.pause(0.1)
        before = {k.value: screen_line(table, k.value) for k in table.rows}
        assert "exited" not in before["6"]
        rendered: list[tuple[int, int]] = []
        real = DataTable._render_cell

        def counting(self, row_index, column_index, *args, **kwargs):
            rendered.append((row_index, column_index))
            return real(self, row_index, column_index, *args, **kwargs)

        monkeypatch.setattr(DataTable, "_render_cell", counting)
        snap = source.current
        source.current = dataclasses.replace(snap, attempts=tuple(
            dataclasses.replace(a, state="exited", epoch=77) if a.attempt_id == 6 else a for a in snap.attempts))
        app.poll_now()
        await pilot.pause(0.3)
        after = {k.value: screen_line(table, k.value) for k in table.rows}
        assert "exited" in after["6"] and " 77 " in after["6"]
        assert {k: v for k, v in after.items() if k != "6"} == {k: v for k, v in before.items() if k != "6"}
        row6 = table.get_row_index("6")
        assert rendered and {r for r, _ in rendered} == {row6}  # the other rows and the header: from the cache
        assert {c for _, c in rendered} == {2, 6}               # state and epoch, not the row's 9 other cells


async def test_curves_replot_only_when_the_selection_gains_points(source, clock, monkeypatch):
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        cursor_to(app, "3")
        await pilot.pause(0.3)
        curves = app.main.query_one(LossCurves)
        redraws: list[int] = []
        monkeypatch.setattr(curves, "redraw", lambda: redraws.append(1))
        app.poll_now()                      # the same points again
        await pilot.pause(0.3)
        assert redraws == []
        grown = dict(source.series[3])
        grown["operator/train_loss"] = grown["operator/train_loss"] + [(600, 0.01)]
        source.series[3] = grown
        app.poll_now()
        await pilot.pause(0.3)
        assert redraws == [1] and curves.lines["operator train_loss"][0][-1] == 600
