"""Resuming a cell on another host, in the emulator's simulated hosts: a resumed run writes what
`usim-core train --resume` writes (timeline.resume_script), the resume point a host's events describe is what
a pull brings home (SimSSH.pull_resume) and what a push of it resumes from, and the machine that outbid us
asks the clearing price until the market falls back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usim_tui.emulator.faults import FaultProfile, rng_for
from usim_tui.emulator.replay import load_curves
from usim_tui.emulator.timeline import plan_instance, point_of, resume_script
from usim_tui.fleet.control.host_runs import describe_point, resume_point
from usim_tui.fleet.store.states import MACHINE_REASONS

ROOT = Path(__file__).resolve().parents[2]
PROFILE = FaultProfile(name="none")


@pytest.fixture(scope="module")
def plan():
    curves = load_curves(ROOT / "curves" / "overnight_sota.json")
    label = "usim:overnight_sota:round_b_cap128:1"
    replay = curves.replay("round_b_cap128", rng_for(0, f"curve:{label}"))
    return plan_instance(PROFILE, rng_for(0, label), 0.0, label=label, bad_build=False, traps=True,
                         over_ssh=True, replay=replay)


def decoded(script: list[tuple[float, str]]) -> list[dict]:
    return [json.loads(line.removeprefix("@usim ")) for _, line in script if line.startswith("@usim ")]


def test_a_run_resumed_mid_stage_starts_at_the_epoch_after_its_checkpoint_and_takes_only_the_rest(plan):
    events = decoded(plan.script)
    ops = [i for i, e in enumerate(events) if e["kind"] == "metric" and e["stage"] == "operator"]
    at = ops[3]   # the checkpoint after the operator's 4th epoch
    point = point_of(line.removeprefix("@usim ") for _, line in plan.script[:at + 1])
    assert point == {"finished": ["codec"], "stage": "operator", "epoch": 3, "step": events[at]["step"],
                     "t": events[at]["t"]}
    end = plan.script_end[0]
    script, left = resume_script(plan.script, end, point)
    got = decoded(script)
    assert got[0]["kind"] == "started" and got[0]["resume"] is True
    assert got[1] == {**got[1], "kind": "stage_end", "stage": "codec", "skipped": True}
    assert got[2]["kind"] == "stage_start" and got[2]["stage"] == "operator"
    assert got[2]["resumed_at_step"] == events[at]["step"]
    first = next(e for e in got if e["kind"] == "metric")
    assert first["stage"] == "operator" and first["epoch"] == 4, "the epoch after the checkpoint, not epoch 0"
    assert [e["kind"] for e in got[3:]] == [e["kind"] for e in events[at + 1:]], "then the rest, event for event"
    assert left == pytest.approx(end - plan.script[at][0]), "it takes what was left, not the whole run again"


def test_a_run_resumed_at_a_stage_boundary_skips_the_finished_stages_and_starts_the_next(plan):
    events = decoded(plan.script)
    end_op = next(i for i, e in enumerate(events) if e["kind"] == "stage_end" and e["stage"] == "operator")
    point = point_of(line.removeprefix("@usim ") for _, line in plan.script[:end_op + 1])
    assert point == {"finished": ["codec", "operator"]}
    got = decoded(resume_script(plan.script, plan.script_end[0], point)[0])
    assert [e["stage"] for e in got if e["kind"] == "stage_end" and e.get("skipped")] == ["codec", "operator"]
    assert next(e for e in got if e["kind"] == "stage_start")["stage"] == "diffusion_residual"
    assert not any(e["kind"] == "metric" and e["stage"] == "operator" for e in got)


def test_a_run_resumed_after_its_last_stage_skips_every_stage_and_resumes_at_its_end_losing_nothing(plan):
    """Reproduced on main (a rehearsal, seed 3 of the rough market at a bid): a host outbid during the final
    evaluation came back and its run resumed in place with every stage skipped, yet the ledger charged the whole
    last stage as training lost: the emulator's skipped `stage_end` carried no step (the trainer's does) and the
    ingest read a skipped last stage as "resumed at its step 0"."""
    from usim_tui.fleet.store.ingest import ingest

    events = decoded(plan.script)
    ends = {e["stage"]: e["step"] for e in events if e["kind"] == "stage_end"}
    last = max(i for i, e in enumerate(events) if e["kind"] == "stage_end")
    point = point_of(line.removeprefix("@usim ") for _, line in plan.script[:last + 1])
    got = decoded(resume_script(plan.script, plan.script_end[0], point)[0])
    skipped = [e for e in got if e["kind"] == "stage_end" and e.get("skipped")]
    assert [(e["stage"], e["step"]) for e in skipped] == list(ends.items()), "each with its final step, as trained"
    assert not any(e["kind"] in ("stage_start", "metric") for e in got)
    stage = list(ends)[-1]
    fields = ingest(got).attempt
    assert (fields["resumed_stage"], fields["resumed_step"]) == (stage, ends[stage]), \
        "resumed at the end of the last stage: nothing its host trained was lost"


def test_a_run_resumed_before_its_first_checkpoint_says_resume_and_trains_everything_again(plan):
    """Reproduced on main (a rehearsal, seed 6 of the rough market at a bid): a host outbid before its run's first
    checkpoint came back, its run started again with `--resume`, and its `started` event said resume false (the
    trainer says what it was started with)."""
    script, end = resume_script(plan.script, plan.script_end[0], {"finished": []})
    got, original = decoded(script), decoded(plan.script)
    assert got[0]["kind"] == "started" and got[0]["resume"] is True
    assert [e["kind"] for e in got] == [e["kind"] for e in original] and end == plan.script_end[0], \
        "and the whole run again"


def test_a_pulled_resume_point_is_read_back_from_its_files_and_events(tmp_path):
    folder = tmp_path / "resume"
    (folder / "checkpoints").mkdir(parents=True)
    for name in ("codec.pt", "operator.last.pt"):
        (folder / "checkpoints" / name).write_bytes(b"x")
    events = [{"kind": "metric", "stage": "operator", "epoch": e, "step": 10 * (e + 1), "t": 100.0 + e}
              for e in range(4)]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    import os
    os.utime(folder / "checkpoints" / "operator.last.pt", (101.5, 101.5))   # written after epoch 1's event
    point = resume_point(folder)
    assert point["files"] == ["checkpoints/codec.pt", "checkpoints/operator.last.pt"]
    assert point["finished"] == ["codec"] and (point["stage"], point["epoch"], point["step"]) == ("operator", 1, 20), \
        "the epoch the checkpoint was written after, not the newest event"
    assert describe_point(point) == "operator epoch 2"
    (folder / "checkpoints" / "operator.last.pt").unlink()
    (folder / "checkpoints" / "operator.pt").write_bytes(b"x")
    assert describe_point(resume_point(folder)) == "operator finished"


async def test_the_machine_that_outbid_us_asks_its_clearing_price_until_the_market_falls_back():
    from test_emulator_market import ROUGH, emulator, rent_at_min_bid, search, session

    from usim_tui.emulator.server import serve

    emu = emulator(ROUGH)
    async with serve(emu) as url, session(emu) as s:
        o, inst = await rent_at_min_bid(s, url)
        first = inst.outbids[0]
        emu.clock.advance(first.at + 1 - emu.clock.now())
        clearing = inst.clearing(emu.clock.now())
        emu.destroy(inst.id)
        again = next(x for x in await search(s, url, "bid") if x["machine_id"] == o["machine_id"])
        assert again["min_bid"] == pytest.approx(clearing) and clearing > o["min_bid"], \
            "re-renting the machine just lost costs what outbid us"
        emu.clock.advance(first.back_at + 1 - emu.clock.now())
        back = next(x for x in await search(s, url, "bid") if x["machine_id"] == o["machine_id"])
        assert back["min_bid"] == o["min_bid"], "once the market falls back, its quiet min_bid again"


def test_a_rehearsed_rough_market_resumes_outbid_cells_from_their_pulled_checkpoints(tmp_path):
    import asyncio

    from usim_tui.emulator.commands import _sweep, with_pricing
    from usim_tui.emulator.faults import load_faults
    from usim_tui.emulator.rehearse import rehearse_usim
    from usim_tui.emulator.replay import pick_curves
    from usim_tui.fleet.store.ledger import Ledger

    sweep = with_pricing(_sweep("overnight_sota"), "interruptible")
    # seed 2: a night with every path below (moves, mid-stage resumes, in-place restarts); every assertion holds
    # on seeds 2-4, 6, 7 and 9 too, while 0, 1, 5 and 8 lack a path (fewer than three moves, no in-place restart)
    res = asyncio.run(rehearse_usim(sweep, load_faults("rough_market"), 2, root=tmp_path, early_stop=False,
                                    curves=pick_curves(None, sweep.name)))
    assert res.outbids >= 5 and res.lost_results == 0
    led = Ledger(tmp_path / "ledger.sqlite", read_only=True)
    attempts = led.attempts(sweep.name)
    resumed = [a for a in attempts if a.resumed_from is not None]   # moved to a new host
    assert len(resumed) >= 3, [(a.cell, a.attempt, a.reason) for a in attempts]
    by = {(a.cell, a.attempt): a for a in attempts}
    for a in resumed:
        src = by[(a.cell, a.resumed_from)]
        before = [b for b in attempts if b.cell == a.cell and src.attempt <= b.attempt < a.attempt
                  and b.reason != "no_capacity"]
        assert before[-1].reason in MACHINE_REASONS, before[-1]   # the host was lost, not the run
        assert src.checkpoint and src.checkpoint_at is not None, "it resumed from a point pulled during training"
    mid = [a for a in resumed if a.resumed_step]
    assert mid, "at least one resumed in the middle of a stage"
    # an attempt's `step` is its step in its latest stage (a resumed run that went on to a later stage may be at
    # a smaller one), so whether it trained on is read from its events: it wrote metrics after resuming
    events_of = {a.id: [e.data or {} for e in led.attempt_events(a.id, limit=1000)] for a in mid}
    trained = [a for a in mid if any(e.get("kind") == "metric" for e in events_of[a.id])]
    assert trained, "a resumed run trained on"
    for a in trained:   # its curve runs on: the first epoch it writes is the one after the checkpoint's
        events = events_of[a.id]
        start = next(e for e in events if e.get("kind") == "stage_start" and e.get("resumed_at_step"))
        assert start["resumed_at_step"] == a.resumed_step
        first = next(e for e in events if e.get("kind") == "metric")
        assert first["stage"] == start["stage"] and first["epoch"] > 0, (a.cell, a.attempt, first)
        assert first["step"] > a.resumed_step
    finished = {c.name for c in led.cells(sweep.name) if c.state == "finished"}
    assert any(a.cell in finished for a in resumed), "and a resumed cell finished"
    kept = {p.parent.name for p in (tmp_path / "runs" / sweep.name).glob("*/resume")}
    assert not kept & finished, "a finished cell's results hold its checkpoint: its resume point is gone"
    said = [(a.id, e.data or {}) for a in attempts for e in led.attempt_events(a.id, 1000) if e.kind == "outbid"]
    raised = {aid: d["bid"] for aid, d in said if d.get("action") == "raise"}   # the last raise of each
    assert raised and any(d.get("action") == "move" for _, d in said)
    for a in attempts:
        if a.id in raised:   # billed at its last bid from the raise on
            assert a.bid == pytest.approx(raised[a.id])
            assert a.price_per_hour == pytest.approx(a.bid + a.storage_per_hour)
    in_place = [(a, e.data) for a in attempts for e in led.attempt_events(a.id, 1000)
                if e.kind == "resume" and (e.data or {}).get("in_place")]
    assert in_place, "a raised bid ran it again: resumed in place"
    restarted = []
    for a, _ in in_place:
        events = led.attempt_events(a.id, 100000)
        starts = [e.data for e in events if (e.data or {}).get("kind") == "started"]
        if len(starts) >= 2:
            assert starts[-1]["resume"] is True, "its trainer started again with --resume"
            restarted.append(a)
        else:   # outbid again before its trainer's new start came home: it trained nothing more there
            at = max(e.t for e in events if e.kind == "resume" and (e.data or {}).get("in_place"))
            assert a.reason in MACHINE_REASONS, a
            assert not any((e.data or {}).get("kind") == "metric" and e.t > at for e in events)
    assert restarted, "a trainer started again with --resume in place"
    lost = [a for a in attempts if a.lost_s > 0]
    assert lost and all(a.reason in MACHINE_REASONS for a in lost), "what lost hosts had trained past the point"
    for a in resumed:   # its curve in the app and the report runs on from the attempt it resumed from
        key = f"train/{a.resumed_stage}/loss"
        own = led.metric_series([a.id], [key])[a.id].get(key, [])
        whole = led.run_on_series([a.id], [key], max_points=10_000)[a.id].get(key, [])
        steps = [s for s, _ in whole]
        assert steps == sorted(set(steps)), "one point a step, in order"
        if own and a.resumed_step:
            before = [s for s in steps if s <= a.resumed_step]
            assert before and before[-1] == a.resumed_step and whole[len(before):] == own, \
                "the source's points up to the resume step, then its own"
    stopped = [a for a in attempts if a.reason == "outbid" and a.started_event]
    assert all(a.results and a.results.startswith("not pulled: the host is stopped") for a in stopped), \
        "a stopped host has no SSH: it is not waited on"

    from rich.console import Console

    from usim_tui.app.screens.details import details_table
    from usim_tui.report.data import gather
    from usim_tui.report.render import write_report

    snap = led.snapshot(sweep.name)
    bid = next(v for v in snap.attempts if v.bid is not None and v.resumed_from is not None)
    cell = next(c for c in snap.cells if c.name == bid.cell)
    shown = Console(width=160, record=True)
    shown.print(details_table(cell, bid, snap.now))
    text = shown.export_text()
    assert f"interruptible at a bid of ${bid.bid:.3f}/h" in text or "interruptible at a bid of" in text, text
    assert f"from #{bid.resumed_from}'s resume point" in text and "host" in text and "lost (" in text
    assert cell.interrupted and set(cell.interrupted) <= MACHINE_REASONS
    assert f"({', '.join(f'{k} {cell.interrupted.count(k)}' for k in dict.fromkeys(cell.interrupted))})" in text
    (md,) = [f for f in write_report(gather(led, sweep.name), tmp_path / "report", "md") if f.suffix == ".md"]
    report = md.read_text()
    assert "saved at a bid (vs on demand)" in report and "attempts resumed from a pulled checkpoint" in report
    led.close()


def test_the_bid_is_raised_only_while_staying_costs_less_than_moving():
    from usim_tui.fleet.control.bidding import RAISE_STEP, costs

    kw = dict(remaining_h=0.5, storage_per_hour=0.01, poll_h=30 / 3600)
    c = costs(0.20, 0.20, 0.30, lost_h=0.1, start_h=0.2, **kw)
    assert c.bid == pytest.approx(0.20 * RAISE_STEP) and c.stay < c.move, "a long start-up elsewhere: stay"
    assert c.move == pytest.approx(0.20 * (0.1 + 0.2) + 0.01 * 0.2), "lost work and waiting at the bid, storage"
    c = costs(0.20, 0.20, 0.30, lost_h=0.0, start_h=0.01, **kw)
    assert c.stay > c.move, "a new host in half a minute and nothing lost: move"
    assert costs(0.30, 0.20, 0.30, lost_h=1, start_h=1, **kw) is None, "at its cap: nothing left to raise"
    c = costs(0.29, 0.20, 0.30, lost_h=1, start_h=1, **kw)
    assert c.bid == 0.30, "never past the cap"
    assert c.stay == pytest.approx((0.30 - 0.20) * 0.5 + 0.01 * 30 / 3600), "every raise counts from the first bid"


def test_a_run_resumed_at_a_stage_boundary_names_where_and_its_source_is_charged_what_it_trained_past(tmp_path):
    """Reproduced on main (a cold try): a run resumed from a point whose stages had all finished (no `.last.pt`)
    showed "at step ? of ?" and charged its lost host nothing for the stage it had trained past the point."""
    from usim_tui.fleet.store.ingest import ingest
    from usim_tui.fleet.store.ledger import Ledger

    got = ingest([{"kind": "started", "resume": True, "t": 10.0},
                  {"kind": "stage_end", "stage": "codec", "step": 40, "skipped": True, "t": 10.0},
                  {"kind": "stage_end", "stage": "operator", "step": 90, "skipped": True, "t": 10.0}])
    assert (got.attempt["resumed_stage"], got.attempt["resumed_step"]) == ("diffusion_residual", 0)
    got = ingest([{"kind": "stage_start", "stage": "operator", "resumed_at_step": 30, "t": 11.0}])
    assert (got.attempt["resumed_stage"], got.attempt["resumed_step"]) == ("operator", 30), "a .last.pt names its step"

    from usim_core.sweep import expand
    sweep = expand(ROOT / "configs/sweeps/demo.yaml")
    led = Ledger(tmp_path / "l.sqlite")
    led.ensure_sweep(sweep)
    src = led.new_attempt(sweep.name, sweep.cells[0].name, 1, "usim:x:y:1", "r", 0.0)
    for step, t, key in ((10, 100.0, "train/operator/loss"), (20, 200.0, "train/operator/loss"),
                         (5, 260.0, "train/diffusion_residual/loss"), (10, 320.0, "train/diffusion_residual/loss")):
        led.add_metrics(src, step, {key: 1.0}, t)
    assert led.trained_at(src, "diffusion_residual", 0) == (200.0, 320.0), "the stage before it ended at 200"
    assert led.trained_at(src, "operator", 10) == (100.0, 320.0)
    led.close()
