"""Issue 30: a night with early stopping (the real controller over the simulated provider, whose runs print the
trainer's operator events) reported through `usim-tui report`: the stopped cells in their own section with
their reason and cost, never among the failures; the rungs figure; the money they cost."""

from __future__ import annotations

from pathlib import Path

import pytest
from early_stop_support import es_sweep, ranked_curve

from usim_tui.cli import main
from usim_tui.fleet.clock import VirtualClock
from usim_tui.fleet.process.open import open_sweep
from usim_tui.fleet.providers.sim import Script, SimProvider
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.states import CellState, EndReason


def night(tmp_path: Path, *, continue_best: int = 1, stop_by_hand: bool = False) -> Path:
    """9 cells, rungs at 20% and 60% of the operator's epochs; cell k ends at 0.1 x (1 + k). Returns the ledger."""
    sweep = es_sweep(tmp_path, continue_best=continue_best)
    rank = {c.name: i for i, c in enumerate(sweep.cells)}

    def script(spec):
        return Script(outcome="done", run_s=600.0, curve=ranked_curve(rank[spec.cell]))

    clock = VirtualClock()
    opened = open_sweep(sweep, provider=SimProvider(clock, script), ledger=tmp_path / "l.sqlite",
                        runs_root=tmp_path / "runs", clock=clock, poll_interval=5.0, run_preflight=False,
                        log=lambda m: None, env={})
    ctl, led = opened.controller, opened.ledger
    return _run(ctl, clock, led, sweep.cells[1].name if stop_by_hand else None)


def _run(ctl, clock, led, by_hand: str | None) -> Path:
    import asyncio

    async def go() -> None:
        if by_hand:   # a person stops the second best cell once it runs, before any rung
            while not any(a.state == "running" and a.epoch is not None for a in led.attempts("es", by_hand)):
                await ctl.tick()
                clock.advance(ctl.poll_interval)
            assert await ctl.command("stop_early", cell=by_hand) == "ok"
        assert await ctl.run(until=clock.now() + 2000 * ctl.poll_interval) == "done"

    asyncio.run(go())
    return led.path


def report(ledger: Path, out: Path) -> str:
    assert main(["report", "--ledger", str(ledger), "--out", str(out)]) == 0
    return (out / "report.md").read_text()


def section(md: str, title: str) -> str:
    start = md.index(f"## {title}")
    nxt = md.find("\n## ", start + 1)
    return md[start: nxt if nxt > 0 else None]


def table_row(text: str, first: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {first} "))
    return [c.strip() for c in line.strip("|").split("|")]


@pytest.fixture(scope="module")
def es_night(tmp_path_factory) -> Path:
    return night(tmp_path_factory.mktemp("es"), stop_by_hand=True)


def test_stopped_cells_have_their_section_with_reason_and_cost_not_the_failures(es_night, tmp_path):
    led = Ledger(es_night)
    cells = {c.name: c for c in led.cells("es")}
    stopped = [c for c in cells.values() if c.state == CellState.STOPPED_EARLY]
    assert len(stopped) >= 4, [c.state for c in cells.values()]
    snap = led.snapshot("es")
    cost = {c.name: c.cost for c in snap.cells}
    md = report(es_night, tmp_path / "rep")

    early = section(md, "6. Early stopping")
    assert "val/operator/loss" in early and "SuccessiveHalvingPruner" in early
    for c in stopped:
        row = table_row(early, c.name)
        assert row[-1] == c.reason and row[6] == f"${cost[c.name]:.3f}", row
        if c.reason.startswith("stopped early at rung"):
            assert row[1].startswith("rung ") and row[3] != "", row     # the rung and its cut-off
        else:
            assert row[1] == "by a person" and c.reason.startswith("stopped early by a person"), row
    assert any(table_row(early, c.name)[1] == "by a person" for c in stopped)
    total = sum(cost[c.name] for c in stopped)
    assert f"**{len(stopped)} cell(s) stopped early**, costing ${total:.3f} in all" in early
    summary = section(md, "1. Summary")
    assert f"| cells stopped early | {len(stopped)}, costing ${total:.3f} (section 6) |" in summary
    assert "What is missing" not in summary and "**ended" not in summary   # decided: neither missing nor failed
    continued = [c for c in cells.values() if c.continued]
    assert continued and all(f"`{c.name}` (finished)" in early for c in continued)

    failures = section(md, "7. Failures")
    assert "No attempt failed." in failures and "stopped_early" not in failures
    assert not any(c.name in failures for c in stopped)
    assert "## 8. Next steps" in md and "## 9. W&B runs" in md
    assert EndReason.STOPPED_EARLY in section(md, "5. Training curves")   # the attempts table says how each ended


def test_the_rungs_figure_is_written_and_referenced(es_night, tmp_path):
    out = tmp_path / "rep"
    md = report(es_night, out)
    assert "](rungs.png)" in section(md, "6. Early stopping")
    png = out / "rungs.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    rungs = [r for r in Ledger(es_night).rungs("es")]
    table = section(md, "6. Early stopping")
    for k in sorted({r.rung for r in rungs}):   # the cut-off of each rung: its last judgement's
        last = [r for r in rungs if r.rung == k][-1]
        row = table_row(table, str(k))
        assert row[2] == str(sum(1 for r in rungs if r.rung == k)) and row[4] == format(last.cutoff, ".4g"), row


def test_the_figure_data_is_what_the_rule_read(es_night):
    """The curves drawn are the rule's: at every stop, the attempt's point at that position has the rung's value."""
    from usim_tui.report.data import gather

    led = Ledger(es_night)
    data = gather(led, "es")
    es = data.early_stop
    assert es is not None and es.unit == "percent" and es.rungs
    for r in es.rungs:
        assert dict(es.points[r.attempt_id])[r.position] == pytest.approx(r.value)


def test_without_early_stop_the_sections_keep_their_numbers(tmp_path):
    from report_support import attempt

    from usim_tui.report.analysis import has_early_stopping
    from usim_tui.report.model import ReportData
    from usim_tui.report.render import numbers

    data = ReportData(sweep="x", provider="local", now=0.0, budget=1.0, spent=0.0, planned_cost_per_cell=0.1,
                      cells=[], attempts=[attempt(1, "c", "exited_error", 0, 10)])
    assert not has_early_stopping(data) and numbers(data)["failures"] == 6 and numbers(data)["wandb"] == 8
    data.attempts.append(attempt(2, "d", EndReason.STOPPED_EARLY, 0, 10))   # a person's stop, no rule
    assert has_early_stopping(data) and numbers(data)["early_stopping"] == 6 and numbers(data)["failures"] == 7
