"""Which resume point a new attempt starts from (control/host_runs.py): its cell's newest one, but only while
every attempt since the one that pulled it lost its host; a run's own failure or a person's relaunch starts the
cell from zero, however many lost hosts come after."""

from __future__ import annotations

import json
from pathlib import Path

from usim_core.sweep import expand
from usim_tui.fleet.control.host_runs import HostRuns
from usim_tui.fleet.store.journal import Journal
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.states import EndReason

DEMO = Path(__file__).resolve().parents[2] / "configs/sweeps/demo.yaml"


def setup(tmp_path: Path, reasons: list[EndReason | None]) -> tuple[HostRuns, Ledger, str, int]:
    """A cell whose attempt 1 pulled a resume point, then attempts 2.. ended for `reasons`; returns the host
    runs, the ledger, the cell and the id of the next (new) attempt."""
    sweep = expand(DEMO)
    led = Ledger(tmp_path / "l.sqlite")
    led.ensure_sweep(sweep)
    cell = sweep.cells[0].name
    runs = HostRuns(led, None, Journal(led, sweep.name, lambda _: None), sweep, tmp_path / "runs", {})  # type: ignore[arg-type]
    point = runs.resume_dir(cell)
    (point / "checkpoints").mkdir(parents=True)
    (point / "checkpoints" / "codec.pt").write_bytes(b"x")
    (point / "resume.json").write_text(json.dumps({"files": ["checkpoints/codec.pt"], "finished": ["codec"],
                                                   "attempt": 1, "at": 10.0}))
    for n, reason in enumerate([EndReason.OUTBID, *reasons], start=1):   # None: a create that never happened
        aid = led.new_attempt(sweep.name, cell, n, f"usim:{sweep.name}:{cell}:{n}", str(tmp_path / str(n)), t=n)
        led.set_attempt(aid, state="destroyed" if reason is not None else "not_created", reason=reason)
    nxt = led.new_attempt(sweep.name, cell, len(reasons) + 2, "usim:x", str(tmp_path / "next"), t=100.0)
    return runs, led, cell, nxt


def test_a_new_attempt_after_lost_hosts_resumes_from_its_cells_point(tmp_path):
    runs, led, _, nxt = setup(tmp_path, [EndReason.STARTUP_TIMEOUT, EndReason.OFFLINE])
    files = runs._resume_files(led.attempt(nxt), now=100.0)
    assert files is not None and list(files) == ["checkpoints/codec.pt"]
    assert led.attempt(nxt).resumed_from == 1


def test_a_runs_own_failure_since_the_point_starts_the_cell_from_zero_even_after_lost_hosts(tmp_path):
    """Reproduced on main (a rehearsal, seed 7 of the rough market at a bid): attempt 5 pulled a point, then its
    run failed (exited_error); attempts 6-8 never started (stuck hosts) and attempt 9 resumed from attempt 5's
    point, though a run's own failure starts the cell again from zero (docs/fleet.md)."""
    runs, led, _, nxt = setup(tmp_path, [EndReason.EXITED_ERROR, EndReason.STARTUP_TIMEOUT,
                                         EndReason.STARTUP_TIMEOUT])
    assert runs._resume_files(led.attempt(nxt), now=100.0) is None
    assert led.attempt(nxt).resumed_from is None


def test_a_relaunch_by_hand_since_the_point_starts_the_cell_from_zero(tmp_path):
    runs, led, cell, nxt = setup(tmp_path, [EndReason.STARTUP_TIMEOUT, EndReason.STARTUP_TIMEOUT])
    led.set_cell("demo", cell, counted_from=1)   # a person relaunched it after attempt 1, whose point it is
    assert runs._resume_files(led.attempt(nxt), now=100.0) is None


def test_a_create_that_never_happened_between_lost_hosts_does_not_break_the_chain(tmp_path):
    """Reproduced (a cold try, rehearsal seed 4 at a bid): an outbid attempt pulled a point, the next create
    answered HTTP 503 and settled as never created (no reason), a stuck host followed, and the attempt after it
    started from zero: the create that never happened counted as a failure of the run."""
    runs, led, _, nxt = setup(tmp_path, [None, EndReason.STARTUP_TIMEOUT])
    assert runs._resume_files(led.attempt(nxt), now=100.0) is not None
    assert led.attempt(nxt).resumed_from == 1


def test_a_host_set_up_that_failed_since_the_point_starts_the_cell_from_zero(tmp_path):
    runs, led, _, nxt = setup(tmp_path, [EndReason.HOST_SETUP, EndReason.STARTUP_TIMEOUT])
    assert runs._resume_files(led.attempt(nxt), now=100.0) is None
