"""Reports built from real SQLite ledgers of the demo sweep (driven through the Ledger API as the controller
does), read back through `usim-tui report`."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from report_support import T0, eval_json

from usim_core.eval.schema import validate_report
from usim_core.sweep import expand
from usim_tui.cli import main


def report(path: Path, out: Path, *extra: str) -> str:
    assert main(["report", "--ledger", str(path), "--out", str(out), *extra]) == 0
    return (out / "report.md").read_text()


def images(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def section(md: str, title: str) -> str:
    start = md.index(f"## {title}")
    nxt = md.find("\n## ", start + 1)
    return md[start: nxt if nxt > 0 else None]


def test_fixture_eval_json_matches_the_eval_schema():
    validate_report(eval_json("full", 0.25, 1))


def test_complete_demo_report(demo_ledger, tmp_path, repo):
    path, rollouts = demo_ledger(finished=4)
    out = tmp_path / "rep"
    md = report(path, out, "--format", "html")
    html = (out / "report.html").read_text()

    db = sqlite3.connect(path)
    spent = sum(r[0] for r in db.execute("SELECT spent FROM attempts"))
    assert f"${spent:.3f} / $0.500" in md
    assert "| cells finished | 4 / 4 |" in md and "What is missing" not in md
    planned = expand(repo / "configs/sweeps/demo.yaml").spec.planned_cost_per_cell
    assert f"${spent / 4:.3f} (planned ${planned:.3f})" in md

    # figures: every referenced file exists, every written PNG is referenced, HTML references the same
    refs = images(md)
    assert {"timeline.png", "curves_codec.png", "curves_operator.png", "coverage_round_a.png"} <= set(refs)
    assert sorted(refs) == sorted(p.name for p in out.glob("*.png"))
    assert all((out / r).stat().st_size > 1000 for r in refs)
    assert all(f'src="{r}"' in html for r in refs)

    board = section(md, "3. Leaderboard")
    best = min(rollouts, key=rollouts.get)
    for cell, value in rollouts.items():
        row = next(line for line in board.splitlines() if line.startswith(f"| {cell}"))
        assert f"| {value + 0.1:.4g} | full | {value:.4g} |" in row   # val (small, ranks) then test
    assert f"Champion: `{best}`" in board
    assert "| baseline: persistence |  |  | 0.5 |" in board
    cov = section(md, "2. Coverage")
    assert "| lr \\ warmup | 0% | 10% |" in cov
    assert all(f"finished {v:.4g}" in cov for v in rollouts.values())
    # TTC gain from the full eval JSON (gain = 0.01 x seed in the fixture)
    assert "1.00%" in board
    assert "tracking.wandb.mode is not `online`" in md


def test_half_finished_report_says_what_is_missing(demo_ledger, tmp_path):
    path, rollouts = demo_ledger(finished=2)
    md = report(path, tmp_path / "rep")
    summary = section(md, "1. Summary")
    assert "in progress or incomplete" in summary
    assert "| cells finished | 2 / 4 |" in summary and "| cells running | 1 |" in summary
    assert "| cells not started | 1 |" in summary
    missing = summary[summary.index("What is missing"):]
    names = re.findall(r"^\| (round_a\S+) \| (\w+) \|", missing, flags=re.M)
    assert len(names) == 2 and {s for _, s in names} == {"running", "pending"}
    assert not set(n for n, _ in names) & set(rollouts)
    nxt = section(md, "7. Next steps")
    assert "2 cells remain uncovered" in nxt and "(observed)" in nxt
    # curves only for finished cells: the running cell's loss is not plotted as a result
    assert len(section(md, "3. Leaderboard").split("**champion**")) == 2


def test_failed_attempt_and_relaunch_are_reported(demo_ledger, tmp_path):
    path, _ = demo_ledger(finished=4, failed_first=True)
    md = report(path, tmp_path / "rep")
    fail = section(md, "6. Failures")
    assert re.search(r"\| exited_error \| 1 \| \$0\.00\d \|", fail)
    assert "ImportError: cannot import name 'LazyLinear'" in fail and "reason=" not in fail   # the reason, not prose
    timeline = section(md, "5. Training curves")
    assert "#1 | cpu | localhost | 0.350 | destroyed | exited_error" in timeline
    assert "#2 | cpu | localhost | 0.350 | destroyed | finished" in timeline


@pytest.mark.parametrize("argv, needle", [
    (["report", "--ledger", "nope.sqlite", "--out", "x"], "nope.sqlite does not exist"),
    (["report", "--ledger", "nope.sqlite", "--out", "x", "--format", "pdf"], "allowed values: md, html"),
])
def test_bad_input_fails_with_a_clear_message(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_crash_loop_and_cells_waiting_for_a_relaunch(demo_ledger, tmp_path):
    from usim_tui.fleet.store.ledger import Ledger

    path, _ = demo_ledger(finished=1, failed_first=True)
    led = Ledger(path)
    loop = "3 cells failed the same way within 15 min: exited_error: ImportError"
    led.set_sweep("demo", crash_loop=loop, paused=1)
    second = led.cells("demo")[1].name
    aid = led.attempts("demo", second)[0].id
    led.set_attempt(aid, state="destroyed", reason="exited_error", ended_at=T0 + 2000)   # the running one failed
    led.close()
    md = report(path, tmp_path / "rep")
    summary = section(md, "1. Summary")
    assert f"**Launching is paused by a crash loop**: `{loop}`" in summary
    assert "| cells waiting for a relaunch | 1 |" in summary and "| cells not started | 2 |" in summary
    assert re.search(rf"^\| {second} \| pending \| 1 \| exited_error \|$", summary, flags=re.M)
    assert f"**Crash loop**: launching was paused on the shared error `{loop}`" in section(md, "6. Failures")


def test_results_lost_on_a_host_are_said_in_the_report(demo_ledger, tmp_path):
    from usim_tui.fleet.store.ledger import Ledger

    path, _ = demo_ledger(finished=2)
    led = Ledger(path)
    aid = led.attempts("demo")[0].id
    led.set_attempt(aid, results="results lost: the budget cap: money beats data")
    led.close()
    fail = section(report(path, tmp_path / "rep"), "6. Failures")
    assert "### Results lost" in fail and "the budget cap: money beats data" in fail
