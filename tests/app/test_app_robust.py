"""No pane error ends the app: plots in log scale with non-positive values, a pane whose refresh raises."""

from __future__ import annotations

import dataclasses

from app_support import NOW, SIZE, cursor_to, ready

from usim_tui.app.app import UsimApp
from usim_tui.app.widgets.curves import LossCurves


async def test_log_scale_with_non_positive_losses_then_filter_and_resize(source, clock):
    source.series[1] = {"operator/train_loss": [(0, 0.0), (10, -0.5), (20, 0.2), (30, 0.1)],
                        "operator/val_loss": [(0, 0.0), (10, -1.0)]}
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        cursor_to(app, "1")
        await pilot.pause(0.3)
        curves = app.main.query_one(LossCurves)
        await pilot.press("y")
        await pilot.pause(0.2)
        await pilot.press("slash", "r", "escape")
        await pilot.resize_terminal(100, 30)
        await pilot.pause(0.3)
        await pilot.resize_terminal(161, 50)
        await pilot.pause(0.3)
        assert app.is_running and curves.log_y
        assert "dropped 4 non-positive" in curves.notice
        shown = curves.render()   # the plot and its legend's row below it
        rendered = "\n".join(str(r) for r in getattr(shown, "renderables", [shown]))
        assert "plot unavailable" not in rendered and "log y" in rendered  # drawn, not a notice
        assert "train_loss" in rendered                                    # the positive points are plotted


async def test_log_scale_with_only_non_positive_values_says_so(source, clock):
    source.series[1] = {"operator/train_loss": [(0, 0.0), (10, -0.5)]}
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        cursor_to(app, "1")
        await pilot.pause(0.3)
        await pilot.press("y")
        await pilot.pause(0.2)
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.3)
        assert app.is_running


async def test_a_pane_whose_refresh_raises_shows_a_notice_and_the_rest_goes_on(source, clock, monkeypatch):
    from usim_tui.app.widgets.leaderboard import Leaderboard

    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)

        def broken(self, cells):
            raise ZeroDivisionError("boom")

        monkeypatch.setattr(Leaderboard, "show", broken)
        snap = source.current
        source.current = dataclasses.replace(snap, now=NOW + 5, attempts=tuple(
            dataclasses.replace(a, state="exited") if a.attempt_id == 6 else a for a in snap.attempts))
        app.poll_now()
        await pilot.pause(0.3)
        assert app.is_running
        assert app.main.table.row_text("6")[2].plain == "exited"   # the panes after it still refreshed
        board = app.main.query_one(Leaderboard)
        assert "ZeroDivisionError: boom" in str(board.render())


async def test_a_widget_render_error_is_a_notice_in_the_widget(source, clock, monkeypatch):
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        curves = app.main.query_one(LossCurves)

        def broken_build():
            raise ValueError("math domain error")

        monkeypatch.setattr(curves.plt, "build", broken_build)
        curves.refresh()
        await pilot.resize_terminal(150, 45)
        await pilot.pause(0.3)
        assert app.is_running
        assert "math domain error" in str(curves.render())
