"""A report of a rehearsed night with the seed night's faults: the real controller against the Vast emulator
on a virtual clock, written to a real ledger, read back through `usim-tui report`."""

from __future__ import annotations

import asyncio
import re
import sqlite3

import pytest

from usim_core.sweep import expand
from usim_tui.cli import main
from usim_tui.emulator.faults import load_faults
from usim_tui.emulator.rehearse import rehearse_usim


@pytest.fixture(scope="module")
def rehearsed(tmp_path_factory):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    root = tmp_path_factory.mktemp("night")
    sweep = expand(repo / "configs/sweeps/overnight_sota.yaml")
    asyncio.run(rehearse_usim(sweep, load_faults(repo / "configs/faults/seed_night.yaml"), 0, root=root))
    out = root / "report"
    assert main(["report", "--ledger", str(root / "ledger.sqlite"), "--out", str(out), "--format", "html"]) == 0
    return root / "ledger.sqlite", out, (out / "report.md").read_text()


def section(md: str, title: str) -> str:
    start = md.index(f"## {title}")
    nxt = md.find("\n## ", start + 1)
    return md[start: nxt if nxt > 0 else None]


@pytest.mark.slow
def test_rehearsal_report_matches_the_ledger(rehearsed):
    path, out, md = rehearsed
    db = sqlite3.connect(path)
    cells = dict(db.execute("SELECT name, state FROM cells"))
    attempts = db.execute("SELECT cell, attempt, reason, spent FROM attempts").fetchall()
    spent = sum(a[3] for a in attempts)
    finished = sum(s == "finished" for s in cells.values())
    to_run = sum(s != "duplicate" for s in cells.values())
    summary = section(md, "1. Summary")
    assert f"| cells finished | {finished} / {to_run} |" in summary
    assert f"| spend / budget | ${spent:.3f} / $5.250" in summary
    assert f"${spent / finished:.3f} (planned $0.350)" in summary

    # failures: every reason with its count and cost, as the ledger has them; overnight_sota stops losers early
    # (section 6): those are no failures
    fail = section(md, "7. Failures")
    reasons: dict[str, list[float]] = {}
    for _, _, reason, cost in attempts:
        if reason not in (None, "finished", "user", "stopped_early"):
            reasons.setdefault(reason, []).append(cost)
    assert reasons, "the seed night's faults must produce failed attempts"
    for reason, costs in reasons.items():
        assert f"| {reason} | {len(costs)} | ${sum(costs):.3f} |" in fail
    stuck = [a for a in attempts if a[2] == "startup_timeout"]
    assert len(re.findall(r"startup_timeout \|$", fail, flags=re.M)) == len(stuck)
    assert f"Stuck instances cost ${sum(a[3] for a in stuck):.3f}" in fail

    # the timeline lists every attempt; the cells that never finished are named as missing
    timeline = section(md, "5. Training curves")
    assert all(f"| {c}#{n} |" in timeline for c, n, _, _ in attempts)
    early = section(md, "6. Early stopping")
    stopped = [n for n, s in cells.items() if s == "stopped_early"]
    assert all(f"| {n} |" in early and f"| {n} |" not in fail for n in stopped)
    assert "stopped_early" not in fail
    unfinished = [n for n, s in cells.items() if s not in ("finished", "duplicate", "stopped_early")]
    if unfinished:
        assert "What is missing" in summary and all(f"| {n} |" in summary for n in unfinished)

    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert "timeline.png" in refs and sorted(refs) == sorted(p.name for p in out.glob("*.png"))
    html = (out / "report.html").read_text()
    assert all(f'src="{r}"' in html for r in refs)
