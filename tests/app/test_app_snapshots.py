"""Snapshot tests (fixed clock and data): main screen, help, details, the coverage matrix of a real ledger.

Regenerate with `pytest tests/app/test_app_snapshots.py --snapshot-update` on Python 3.11 only.
"""

from __future__ import annotations

import sys

import pytest

from usim_tui.app.app import UsimApp
from usim_tui.app.source import LedgerSource

SIZE = (160, 50)


@pytest.fixture(autouse=True)
def one_python(request):
    if request.config.getoption("--snapshot-update", default=False) and sys.version_info[:2] != (3, 11):
        pytest.exit("regenerate the app snapshots on Python 3.11 only (rendering differs across versions)")


async def first_poll(pilot) -> None:
    app = pilot.app
    for _ in range(100):
        await pilot.pause(0.02)
        if app.polls and app.main.table.row_count:
            break
    app.main.table.move_cursor(row=0)
    await pilot.pause(0.2)
    app.clear_notifications()   # a toast lives 5 s of real time: on a loaded machine it may be gone at the snapshot
    await pilot.pause(0.05)


def test_main_screen(snap_compare, source, clock):
    assert snap_compare(UsimApp(source, clock=clock, poll_interval=3600), terminal_size=SIZE, run_before=first_poll)


def test_help_screen(snap_compare, source, clock):
    assert snap_compare(UsimApp(source, clock=clock, poll_interval=3600), terminal_size=SIZE, run_before=first_poll,
                        press=["question_mark"])


def test_details_screen(snap_compare, source, clock):
    async def on_running(pilot) -> None:
        await first_poll(pilot)
        pilot.app.main.table.move_cursor(row=pilot.app.main.table.get_row_index("3"))
        await pilot.pause(0.2)

    assert snap_compare(UsimApp(source, clock=clock, poll_interval=3600), terminal_size=SIZE, run_before=on_running,
                        press=["enter"])


def test_coverage_of_a_real_demo_ledger(snap_compare, demo_ledger, clock):
    led, _, _ = demo_ledger
    app = UsimApp(LedgerSource(led), clock=clock, poll_interval=3600, mode="attached")

    async def focus_coverage(pilot) -> None:
        await first_poll(pilot)
        await pilot.press("3")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=focus_coverage)


def test_main_screen_large(snap_compare, source, clock):
    assert snap_compare(UsimApp(source, clock=clock, poll_interval=3600), terminal_size=(200, 55), run_before=first_poll)


def test_main_screen_small(snap_compare, source, clock):
    """100 x 30 (a small terminal): one pane at a time, the instances filling the body; the footer keeps ?, : and q."""
    assert snap_compare(UsimApp(source, clock=clock, poll_interval=3600), terminal_size=(100, 30), run_before=first_poll)
