"""Issue 15: keys by the k9s conventions, questions before money, the events pane, logs, labels, timers,
the coverage grid's cursor, the sweep's end, small terminals."""

from __future__ import annotations

import dataclasses

import pytest
from app_support import NOW, SIZE, cursor_to, ready
from textual.command import CommandPalette
from textual.widgets import Input, Static

from usim_tui.app.app import UsimApp
from usim_tui.app.screens.confirm import ConfirmScreen
from usim_tui.app.screens.details import DetailsScreen
from usim_tui.app.screens.logs import LogsScreen
from usim_tui.app.widgets.coverage import CoverageGrid
from usim_tui.app.widgets.events import EventsPane
from usim_tui.app.widgets.instances import SORTS
from usim_tui.fleet.store.snapshot import EventView


def status_text(app: UsimApp) -> str:
    return str(app.main.query_one("#status", Static).render())


async def test_relaunch_of_a_running_row_asks_naming_the_cell_and_the_cost(source, clock):
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        running = next(a for a in source.current.attempts if a.state == "running")
        cursor_to(app, str(running.attempt_id))
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and source.sent == []
        q = app.screen.question
        assert running.cell in q and f"${running.price_per_hour:.2f}/h" in q and f"spent ${running.spent:.2f}" in q
        await pilot.press("escape")
        await pilot.pause()
        assert source.sent == [] and not isinstance(app.screen, ConfirmScreen)


async def test_launch_of_a_finished_cell_asks_and_says_its_result_stays(source, clock):
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        cursor_to(app, "1")  # round_a_lr2e-4_w3pct: finished
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "round_a_lr2e-4_w3pct" in app.screen.question and "result stays" in app.screen.question
        assert "Each about $0.35/h, about $0.35 per attempt" in app.screen.question   # what it will cost
        await pilot.press("n")  # no
        await pilot.pause()
        assert source.sent == []


async def test_destroy_question_names_the_cost(source, clock):
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        running = next(a for a in source.current.attempts if a.state == "running")
        cursor_to(app, str(running.attempt_id))
        await pilot.press("d")
        await pilot.pause()
        assert f"${running.price_per_hour:.2f}/h" in app.screen.question


async def test_destroy_now_asks_unless_the_app_was_started_dangerous(source, clock):
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        running = next(a for a in source.current.attempts if a.state == "running")
        cursor_to(app, str(running.attempt_id))
        await pilot.press("D")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "--dangerous" in app.screen.question and source.sent == []
        await pilot.press("y")
        await pilot.pause()
        assert source.sent == [("destroy", {"attempt_id": running.attempt_id})]


async def test_vi_keys_move_the_cursor_and_escape_clears_filter_then_marks(source, clock):
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        table = app.main.table
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("space")
        assert app.main.marked
        await pilot.press("slash", *"run")
        await pilot.pause()
        assert app.main.table.row_count < len(source.current.attempts) + 5
        await pilot.press("escape")  # the filter first
        await pilot.pause()
        assert app.main.query_text == "" and not app.main.query_one("#filter", Input).display and app.main.marked
        await pilot.press("escape")  # then the marks
        await pilot.pause()
        assert not app.main.marked


async def test_sort_hide_ended_refresh_and_the_palette(source, clock):
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        table = app.main.table
        await pilot.press("S")  # by state: running first
        await pilot.pause()
        assert app.main.sort == "state"
        states = [table.row_text(k)[2].plain for k in table.keys()]
        assert states[0] == "running" and states.index("destroyed") > states.index("loading")
        total = table.row_count
        await pilot.press("e")  # ended instances hidden
        await pilot.pause()
        assert "destroyed" not in [table.row_text(k)[2].plain for k in table.keys()] and table.row_count < total
        await pilot.press("e")
        await pilot.pause()
        assert table.row_count == total
        polls = app.polls
        await pilot.press("R")
        await pilot.pause(0.3)
        assert app.polls > polls
        await pilot.press("colon")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Relaunch")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, ConfirmScreen)  # the palette runs the same action: it asks first


async def test_events_pane_follows_the_newest_scrolls_back_and_hides_metric_lines(source, clock):
    evs = [EventView(NOW - 1000 + i, 3, "round_a_lr2e-4_w6pct", "metric" if i % 2 else "log", f"line {i}")
           for i in range(80)]
    source.events[3] = evs
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        cursor_to(app, "3")
        await pilot.pause(0.5)
        pane = app.main.query_one(EventsPane)
        text = pane.text
        assert "line 78" in text and "line 79" not in text.replace("line 79 ", "")  # 79 is a metric line
        assert pane.hidden_metrics == 40 and pane.max_scroll_y > 0 and pane.scroll_y == pane.max_scroll_y
        pane.focus()
        await pilot.press("g")
        await pilot.pause()
        assert pane.scroll_y == 0 and not pane.follow
        source.events[3] = evs + [EventView(NOW, 3, "x", "log", "line 80")]
        app.poll_now()
        await pilot.pause(0.3)
        assert pane.scroll_y == 0  # scrolled back: stays there
        await pilot.press("end")
        await pilot.pause()
        assert pane.follow and pane.scroll_y == pane.max_scroll_y
        await pilot.press("m")  # metric lines shown
        await pilot.pause(0.3)
        assert "line 79" in pane.text and pane.hidden_metrics == 0


async def test_logs_show_each_event_once_and_follow_new_output(source, clock, monkeypatch):
    from usim_tui.app.screens import logs

    monkeypatch.setattr(logs, "FOLLOW_S", 0.1)
    raw = ["@usim {\"kind\": \"started\"}", "host booting", "@usim {\"kind\": \"metric\"}", "pip install ok"]

    async def provider_logs(attempt_id: int) -> str:
        return "\n".join(raw)

    source.provider_logs = provider_logs
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        cursor_to(app, "1")
        await pilot.press("l")
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, LogsScreen)

        def text() -> str:
            return "\n".join(str(line.text) for line in screen.query_one("#logs").lines)

        assert "@usim" not in text() and "host booting" in text() and text().count("host up") == 1
        reads = screen.loaded
        raw.append("epoch 5 done")
        source.events[1] = source.events[1] + [EventView(NOW, 1, "x", "stage_end", "operator finished")]
        for _ in range(50):  # no key pressed: the screen reads again by itself
            await pilot.pause(0.05)
            if "epoch 5 done" in text():
                break
        assert screen.loaded > reads and "epoch 5 done" in text() and "operator finished" in text()
        assert text().count("host booting") == 1 and text().count("host up") == 1


async def test_labels_do_not_truncate_and_loading_rows_show_a_phase_timer(source, clock):
    snap = source.current
    source.current = dataclasses.replace(snap, attempts=tuple(
        dataclasses.replace(a, state="not_created", reason="startup_timeout") if a.attempt_id == 1 else
        dataclasses.replace(a, state="destroying") if a.attempt_id == 2 else a for a in snap.attempts))
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        table = app.main.table
        await pilot.pause(0.2)
        lines = {k: "".join(seg.text for seg in table.render_line(table.get_row_index(k) + 1)) for k in ("1", "2")}
        assert "not_created" in lines["1"] and "startup_timeout" in lines["1"] and "destroying" in lines["2"]
        assert "round_a_lr2e-4_w3pct" in lines["1"]
        def dup() -> str:
            return "".join(seg.text for seg in table.render_line(table.get_row_index("cell:round_a_lr4.5e-4_w6pct") + 1))

        original = "= …w5pct"   # the cell it duplicates, less the front the two labels share up to a `_`
        assert original in dup()
        for _ in range(len(SORTS) - 1):   # a sort's header mark never narrows the reason column under it
            await pilot.press("S")
            await pilot.pause(0.05)
            assert original in dup()
        loading = next(a for a in source.current.attempts if a.state == "loading")
        assert loading.started_at is None and NOW - loading.created_at == 2200
        assert table.row_text(str(loading.attempt_id))[4] == "36m40s"  # in loading since created, to the second


async def test_coverage_grid_cursor_moves_and_enter_opens_that_cell(source, clock):
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        grid = app.main.query_one(CoverageGrid)
        assert app.focused is grid and grid.cursor == "round_a_lr2e-4_w3pct"
        await pilot.press("right", "j")
        assert grid.cursor == "round_a_lr3e-4_w5pct"
        await pilot.press("h", "k")
        assert grid.cursor == "round_a_lr2e-4_w3pct"
        await pilot.press("G")
        assert grid.cursor == "round_c_tokens48"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailsScreen) and app.screen.cell.name == "round_c_tokens48"


def ended_snapshot(source):
    snap = source.current
    cells = tuple(dataclasses.replace(c, state="finished" if c.state in ("pending", "running", "launching") else c.state)
                  for c in snap.cells)
    attempts = tuple(dataclasses.replace(a, state="destroyed") for a in snap.attempts)
    return dataclasses.replace(snap, cells=cells, attempts=attempts)


async def test_sweep_ended_says_what_next(source, clock):
    source.current = ended_snapshot(source)
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.2)
        line = status_text(app)
        assert "sweep ended" in line and "usim-tui report" in line and "--out reports/overnight_sota" in line
        assert "best round_b_cap64" in line


async def test_actions_after_the_controller_ended_say_so(source, clock):
    source.controller = object()  # a real controller that has returned
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.pause(0.2)
        assert app.controller_ended and "controller finished" in app.mode
        await pilot.press("p")
        await pilot.pause(0.2)
        assert source.sent == [] and "nothing would run it" in status_text(app)


async def test_attached_queue_without_a_controller_heartbeat_says_so(demo_ledger, clock, monkeypatch):
    from usim_tui.app.source import LedgerSource
    from usim_tui.fleet.store.snapshot import SweepSnapshot

    led, _, (a1, _) = demo_ledger
    monkeypatch.setattr(SweepSnapshot, "controller_seen_at", NOW - 60, raising=False)  # older than 3 polls of 5 s
    app = UsimApp(LedgerSource(led), clock=clock, poll_interval=5)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("p")
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        assert "queued pause" in status_text(app) and "no controller is attached" in status_text(app)


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
async def test_a_small_terminal_shows_one_pane_at_a_time(source, clock, size):
    """Reproduced on main at 80 x 24: three table rows, one plot row, a footer without ?, : and q. Small now means
    one pane fills the body (the instances first; 1-6 choose, esc back), the footer keeps help, commands, quit."""
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        main = app.main

        def shown() -> set[str]:
            return {n for n in ("instances", "curves", "events", "budget", "coverage", "leaderboard")
                    if main.query_one(f"#pane-{n}").region.height > 0}

        assert shown() == {"instances"} and main.query_one("#pane-instances").region.height >= size[1] - 6
        await pilot.pause(0.3)   # the footer composes its keys after the first frames
        visible = {k.key for k in main.query("FooterKey") if k.region.width and k.region.right <= size[0]}
        assert {"question_mark", "colon", "q"} <= visible, visible
        for key in ("2", "6", "5", "4", "3"):
            await pilot.press(key)
            await pilot.pause()
            name = {"2": "curves", "6": "events", "5": "leaderboard", "4": "budget", "3": "coverage"}[key]
            assert shown() == {name} and main.query_one(f"#pane-{name}").region.width >= size[0] - 2
        await pilot.press("escape")
        await pilot.pause()
        assert shown() == {"instances"} and app.focused is main.table
        table = main.table
        before = "".join(seg.text for seg in table.render_line(1))
        table.scroll_to(x=table.max_scroll_x, animate=False)  # sideways to the last columns
        await pilot.pause()
        after = "".join(seg.text for seg in table.render_line(1))
        assert table.scroll_x > 0 and after != before
        assert table.labels["round_a_lr2e-4_w3pct"] in after, "the cell column stays pinned beside the last ones"


async def test_palette_lists_the_key_table_and_read_only_leaves_out_what_mutates(source, clock):
    for read_only, expected in ((False, True), (True, False)):
        app = UsimApp(source, clock=clock, poll_interval=3600, read_only=read_only)
        async with app.run_test(size=SIZE) as pilot:
            await ready(app, pilot)
            titles = {c.title for c in app.get_system_commands(app.main)}
            assert {"Logs · l", "Sort · S", "Ended · e", "Refresh · R", "Help · ?", "Report · W"} <= titles
            assert ("Launch · n" in titles) is expected and ("Relaunch · r" in titles) is expected


async def test_sorting_keeps_the_cursor_on_its_row(source, clock):
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        cursor_to(app, "6")  # a running row, sixth in ledger order
        for _ in range(5):
            await pilot.press("S")
            await pilot.pause()
            assert app.main.table.selected_key == "6", app.main.sort


async def test_c_starts_a_controller_when_none_runs(source, clock):
    """No heartbeat: the header says so and offers `C`, which starts the sweep's controller; read-only refuses."""
    stale = dataclasses.replace(source.current, controller_seen_at=NOW - 10**6)
    source.current = stale
    app = UsimApp(source, clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert "C starts one" in str(app.main.query_one("SweepHeader").render())
        await pilot.press("C")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert ("start_controller", {}) in source.sent and "controller pid 4242 started" in status_text(app)
    source.sent.clear()
    app = UsimApp(source, clock=clock, poll_interval=3600, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("C")
        await pilot.pause()
        assert not source.sent


async def test_w_writes_the_report(demo_ledger, clock, tmp_path, monkeypatch):
    from usim_tui.app.source import LedgerSource

    monkeypatch.chdir(tmp_path)
    led, _, _ = demo_ledger
    app = UsimApp(LedgerSource(led), clock=clock, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("W")
        for _ in range(300):
            await pilot.pause(0.2)
            if "report" in status_text(app) and "writing" not in status_text(app):
                break
        assert (tmp_path / "reports" / "demo" / "report.md").is_file(), status_text(app)
        assert "failed" not in status_text(app)
        # on main the line was the last file written (`reports/demo/timeline.png`): it names the report
        figures = len([p for p in (tmp_path / "reports" / "demo").iterdir() if p.suffix in (".png", ".svg")])
        assert status_text(app) == f"report written: reports/demo/report.md ({figures} figures)", status_text(app)


def test_a_duplicate_names_its_original_as_the_cell_column_does_and_never_cuts_a_value():
    from usim_tui.app.widgets.instances import duplicate_label

    labels = {"round_b_cap96": "B·cap96", "round_a_lr3e-4_w5pct": "A·lr3e-4_w5pct",
              "round_a_lr4.5e-4_w6pct": "A·lr4.5e-4_w6pct", "round_a_lr4.5e-4_w5pct": "A·lr4.5e-4_w5pct"}
    assert duplicate_label("round_b_cap96", "round_a_lr3e-4_w5pct", labels) == "= A·lr3e-4_w5pct"
    assert duplicate_label("round_a_lr4.5e-4_w6pct", "round_a_lr4.5e-4_w5pct", labels) == "= …w5pct"
