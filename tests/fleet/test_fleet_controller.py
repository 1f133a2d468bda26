"""The controller over the simulated provider and a virtual clock: every policy and provider error path."""

from __future__ import annotations

import pytest
from sim_support import make, ticks

from usim_tui.fleet.control.reconcile import LEAK_AFTER_POLLS
from usim_tui.fleet.providers.sim import Script


async def drive(ctl, clock, polls=400):
    why = await ctl.run(until=clock.now() + polls * ctl.poll_interval)
    assert why != "until", "sweep did not settle"


def cells(led):
    return {c.name: c for c in led.snapshot().cells}


async def test_all_cells_finish_with_metrics_and_cost(tmp_path, demo_sweep):
    clock, prov, led, ctl = make(tmp_path, demo_sweep)
    await drive(ctl, clock)
    snap = led.snapshot()
    assert {c.state for c in snap.cells} == {"finished"}
    for c in snap.cells:
        assert 0.1 <= c.metrics["nrmse_rollout"] < 0.2 and c.cost > 0
    assert not prov.alive()                       # every finished instance destroyed
    assert all(a.reason == "finished" and a.state == "destroyed" for a in snap.attempts)
    assert snap.budget.spent == pytest.approx(prov.true_cost(), rel=0.35)
    assert snap.budget.spent >= prov.true_cost() - 1e-6   # never under-counts (view rounds to 1e-6)
    a = snap.attempts[0]
    series = led.metric_series([a.attempt_id])[a.attempt_id]["codec/loss"]
    assert len(series) >= 5 and series[0][1] > series[-1][1]
    intents = led.intents("demo")
    assert all(i.outcome for i in intents)     # every side effect has its outcome
    assert {i.action for i in intents} == {"create", "destroy"}


async def test_each_cell_is_launched_billed_and_budgeted_on_its_own_gpus(tmp_path, demo_sweep):
    """A 2-GPU cell is launched for a 2-GPU host (the sim bills $/h per GPU), recorded with its GPUs, and costs
    twice a 1-GPU cell."""
    demo_sweep.cells[0].num_gpus = 2
    seen = []
    clock, prov, led, ctl = make(tmp_path, demo_sweep, lambda spec: seen.append(spec.num_gpus) or Script())
    await drive(ctl, clock)
    snap = led.snapshot()
    assert {c.state for c in snap.cells} == {"finished"} and sorted(seen) == [1, 1, 1, 2]
    by = {a.cell: a for a in snap.attempts}
    two, one = by[demo_sweep.cells[0].name], by[demo_sweep.cells[1].name]
    assert (two.num_gpus, one.num_gpus) == (2, 1)
    assert two.price_per_hour == pytest.approx(2 * one.price_per_hour)
    assert two.spent == pytest.approx(2 * one.spent, rel=0.1)


async def test_a_cell_on_more_gpus_waits_while_cheaper_cells_fit_the_budget(tmp_path, demo_sweep):
    """Room for a 1-GPU cell, not for a 2-GPU one: the 1-GPU cells run (the 2-GPU cell first in the sweep does not
    block them), the 2-GPU cell never launches, and the sweep stops at its budget once no pending cell fits."""
    demo_sweep.cells[0].num_gpus = 2
    demo_sweep.spec.budget = 0.03          # a 1-GPU cell is planned at $0.0175, a 2-GPU one at $0.035
    demo_sweep.spec.concurrency = 1
    clock, prov, led, ctl = make(tmp_path, demo_sweep)
    await drive(ctl, clock)
    snap = led.snapshot()
    launched = [a.cell for a in snap.attempts]
    assert demo_sweep.cells[0].name not in launched and len(launched) >= 2, launched
    assert {c.state for c in snap.cells if c.name in launched} == {"finished"}
    assert led.sweep_row("demo").budget_stop == 1 and snap.budget.spent <= 0.03
    notes = [e.message for e in snap.events if e.kind == "budget"]
    assert any("next attempt on 2 GPUs $0.035" in m for m in notes), notes


def with_cells(sweep, n):
    from usim_core.sweep import Cell
    sweep.cells += [Cell(name=f"extra{i}", round="r", tags=[], overrides={}, config=sweep.cells[0].config,
                         config_hash=f"h{i}") for i in range(n)]
    return sweep


@pytest.mark.parametrize("outcome,reason,machine", [
    ("crash", "exited_error", False), ("error", "exited_error", False), ("offline", "offline", True),
    ("outbid", "outbid", True), ("oci", "container_error", True), ("stuck", "startup_timeout", True),
    ("silent", "startup_timeout", True),
])
async def test_failures_relaunch_until_their_limit(tmp_path, demo_sweep, outcome, reason, machine):
    """Run failures use max_attempts (2 here); machine faults their own max_machine_faults (3 here)."""
    first = demo_sweep.cells[0].name
    demo_sweep.spec.max_machine_faults = 3

    def script(spec):
        return Script(outcome, run_s=10_000 if outcome == "silent" else 60) if spec.cell == first else Script()
    clock, prov, led, ctl = make(tmp_path, demo_sweep, script)
    await drive(ctl, clock, polls=600)
    limit = 3 if machine else demo_sweep.spec.max_attempts
    c = cells(led)[first]
    assert c.state == "failed" and c.reason == reason and c.attempts == limit
    atts = [a for a in led.snapshot().attempts if a.cell == first]
    assert all(a.reason == reason and a.state == "destroyed" for a in atts)
    assert [a.attempt for a in atts] == list(range(1, limit + 1))
    if machine and reason != "outbid":   # the bad machine is never used again by this sweep
        assert {a.machine_id for a in atts} <= led.excluded_machines("demo")
    elif reason == "outbid":   # the market's doing, not the machine's: it is not excluded
        assert not {a.machine_id for a in atts} & led.excluded_machines("demo")
    assert sum(c.state == "finished" for c in led.snapshot().cells) == 3
    assert not prov.alive()


async def test_machine_faults_do_not_use_up_max_attempts(tmp_path, demo_sweep):
    """Two stuck machines and an OCI error, then a crash, then a good run: the cell still finishes with
    max_attempts=2 (only the crash counted against it)."""
    first = demo_sweep.cells[0].name
    plan = iter([Script("stuck"), Script("oci"), Script("stuck"), Script("crash", run_s=30), Script()])
    clock, prov, led, ctl = make(tmp_path, demo_sweep, lambda spec: next(plan) if spec.cell == first else Script())
    await drive(ctl, clock, polls=800)
    atts = [a for a in led.snapshot().attempts if a.cell == first]
    assert [a.reason for a in atts] == ["startup_timeout", "container_error", "startup_timeout", "exited_error",
                                        "finished"]
    assert cells(led)[first].state == "finished"


async def test_crash_loop_pauses_launching_and_surfaces_the_error(tmp_path, demo_sweep):
    sweep = with_cells(demo_sweep, 4)
    sweep.spec.max_attempts = 3
    # the bad build of the earlier night: an ImportError at start-up, before any training step
    clock, prov, led, ctl = make(tmp_path, sweep, lambda spec: Script("crash", run_s=5))
    await drive(ctl, clock)
    snap = led.snapshot()
    assert snap.crash_loop and "LazyLinear" in snap.crash_loop
    assert len(prov.instances) <= 4                 # stopped early: not 8 cells x 3 attempts
    assert ctl.stalled and not prov.alive()
    launched = len(prov.instances)
    await ctl.command("resume")                     # the user fixed it: launching goes on
    await ctl.tick()
    assert len(prov.instances) > launched and led.snapshot().crash_loop is None


async def test_independent_late_failures_are_not_a_crash_loop(tmp_path, demo_sweep):
    """Every cell's first attempt trains, then its full eval exits the same way: relaunched, not paused."""
    sweep = with_cells(demo_sweep, 2)
    sweep.spec.concurrency = 6
    eval_fail = "full evaluation exited with status 1"
    clock, prov, led, ctl = make(tmp_path, sweep, lambda spec: Script("error", run_s=60, message=eval_fail)
                                 if spec.attempt == 1 else Script())
    await drive(ctl, clock)
    snap = led.snapshot()
    assert snap.crash_loop is None
    assert sum(a.reason == "exited_error" for a in snap.attempts) == 6
    assert {c.state for c in snap.cells} == {"finished"}


async def test_log_reads_are_bounded_per_poll_and_miss_nothing(tmp_path, demo_sweep):
    """Paid logs: at most log_reads_per_poll fetches per poll plus one final read per ended attempt; a start-up
    deadline is judged only after a fresh read, so unread running attempts are not killed as stuck."""
    sweep = with_cells(demo_sweep, 6)
    sweep.spec.concurrency = 10
    sweep.spec.provider.startup_deadline_s = 20      # running at 15 s: most are unread at the deadline
    clock, prov, led, ctl = make(tmp_path, sweep, lambda spec: Script(run_s=120), logs_are_cheap=False)
    ctl.logs.reads_per_poll = 1
    for _ in range(400):
        before = prov.log_calls
        ended = sum(1 for i in prov.alive() if i.phase(clock.now())[0] == "exited")
        await ctl.tick()
        assert prov.log_calls - before <= 1 + ended
        if ctl.done:
            break
        clock.advance(ctl.poll_interval)
    snap = led.snapshot()
    assert {c.state for c in snap.cells} == {"finished"}
    assert all(a.reason == "finished" for a in snap.attempts), [a.reason for a in snap.attempts]
    assert all(0.1 <= c.metrics["nrmse_rollout"] < 0.2 for c in snap.cells)   # read at exit


async def test_final_read_alone_decides_and_a_failed_one_is_retried(tmp_path, demo_sweep):
    """No running reads at all: each attempt's events are read once at exit; two failed final reads are retried
    before a verdict, so no finished run is called failed."""
    clock, prov, led, ctl = make(tmp_path, demo_sweep, logs_are_cheap=False)
    ctl.logs.reads_per_poll = 0
    prov.fail_next["logs"] = 2
    await drive(ctl, clock)
    snap = led.snapshot()
    assert {c.state for c in snap.cells} == {"finished"}
    assert [a.reason for a in snap.attempts] == ["finished"] * 4 and prov.log_calls == 4
    a = snap.attempts[0]
    assert len(led.metric_series([a.attempt_id])[a.attempt_id]["codec/loss"]) >= 5


async def test_no_capacity_backs_off_and_does_not_use_attempts(tmp_path, demo_sweep):
    clock, prov, led, ctl = make(tmp_path, demo_sweep)
    prov.no_capacity = 3
    await drive(ctl, clock, polls=800)
    snap = led.snapshot()
    assert {c.state for c in snap.cells} == {"finished"}
    assert sum(a.reason == "no_capacity" and a.state == "not_created" for a in snap.attempts) == 3


async def test_create_timeout_that_succeeded_is_adopted_by_label(tmp_path, demo_sweep):
    clock, prov, led, ctl = make(tmp_path, demo_sweep)
    prov.create_then_fail = 1
    await ctl.tick()
    first = led.snapshot().attempts[0]
    assert first.state == "launching" and first.provider_id is None
    clock.advance(5)
    await ctl.tick()
    first = led.snapshot().attempts[0]
    assert first.provider_id == "1001" and first.state in ("pending", "loading")
    await drive(ctl, clock)
    assert len(prov.instances) == 4                 # no second instance for that cell


async def test_list_failure_is_surfaced_and_billed_conservatively(tmp_path, demo_sweep):
    clock, prov, led, ctl = make(tmp_path, demo_sweep)
    await ctl.tick()
    prov.fail_next["list"] = 3
    for _ in range(3):
        clock.advance(5)
        await ctl.tick()
        assert led.snapshot().provider_status.startswith("list failed")
    assert led.snapshot().budget.spent >= prov.true_cost()
    clock.advance(5)
    await ctl.tick()
    assert led.snapshot().provider_status == "ok"


async def test_failed_destroy_leaks_blocks_relaunch_and_is_retried(tmp_path, demo_sweep):
    first = demo_sweep.cells[0].name
    clock, prov, led, ctl = make(tmp_path, demo_sweep,
                                 lambda spec: Script("crash", run_s=10) if spec.cell == first else Script("done"))
    prov.fail_next["destroy"] = 6        # the crash at t=25 s: destroy fails there and on the retries
    await ticks(ctl, clock, 7)
    atts = [a for a in led.snapshot().attempts if a.cell == first]
    assert atts[0].state == "leaked" and len(atts) == 1   # never relaunched over a leak
    assert any("ALERT" in e.message for e in led.snapshot().events)
    await drive(ctl, clock)
    atts = [a for a in led.snapshot().attempts if a.cell == first]
    assert atts[0].state == "destroyed" and len(atts) == 2 and not prov.alive()


async def test_an_instance_still_listed_after_destroy_is_leaked_then_destroyed_again(tmp_path, demo_sweep):
    """A destroy the provider answered ok, but the instance is still listed LEAK_AFTER_POLLS polls later: it is
    marked leaked with an alert and destroyed again; its cell is never relaunched before the instance is gone."""
    first = demo_sweep.cells[0].name
    clock, prov, led, ctl = make(tmp_path, demo_sweep,
                                 lambda spec: Script("crash", run_s=10) if spec.cell == first else Script("done"))
    prov.destroys_ignored = 1            # the first destroy (the crash's) is accepted and does nothing
    listed_while_destroying = 0
    while not any(e.kind == "leaked" for e in led.snapshot().events):
        await ctl.tick()
        (a,) = led.attempts("demo", first)   # never a second attempt while the first may still run
        listed_while_destroying += a.state == "destroying" and prov.instances[a.provider_id].destroyed_at is None
        clock.advance(5)
        assert clock.now() < 1_761_000_000 + 600, "never marked leaked"
    assert listed_while_destroying == LEAK_AFTER_POLLS
    alert = next(e for e in led.snapshot().events if e.kind == "leaked")
    assert f"still listed {LEAK_AFTER_POLLS} polls after destroy" in alert.message
    destroys = [i for i in led.intents("demo") if i.action == "destroy" and i.attempt_id == a.id]
    assert len(destroys) == 2 and all(i.outcome == "ok" for i in destroys)   # destroyed again at once
    await drive(ctl, clock)
    atts = led.attempts("demo", first)
    assert atts[0].state == "destroyed" and len(atts) == 2 and not prov.alive()


async def test_orphan_instance_is_recorded_and_destroyed(tmp_path, demo_sweep):
    from usim_tui.fleet.providers.base import LaunchSpec
    clock, prov, led, ctl = make(tmp_path, demo_sweep)
    await prov.create(LaunchSpec(label="usim:demo:ghost:1", sweep="demo", cell="ghost", attempt=1, config={},
                                 run_dir="x"))
    await ctl.tick()
    ghost = next(a for a in led.snapshot().attempts if a.cell == "ghost")
    assert ghost.reason == "orphan" and ghost.state == "destroying"
    assert prov.instances["1001"].destroyed_at is not None


async def test_budget_cap_destroys_everything(tmp_path, demo_sweep):
    demo_sweep.spec.budget = 0.03
    clock, prov, led, ctl = make(tmp_path, demo_sweep, lambda spec: Script("done", run_s=3000), price=2.0)
    await drive(ctl, clock)
    snap = led.snapshot()
    assert any(a.reason == "budget" for a in snap.attempts) and not prov.alive()
    assert prov.true_cost() <= 0.03 + 2 * 2.02 * 5 / 3600


async def test_commands_pause_destroy_relaunch(tmp_path, demo_sweep):
    demo_sweep.spec.concurrency = 4
    clock, prov, led, ctl = make(tmp_path, demo_sweep, lambda spec: Script("done", run_s=600))
    led.enqueue("demo", "pause")
    await ctl.tick()
    assert led.snapshot().paused and not prov.instances
    led.enqueue("demo", "resume")
    await ctl.tick()
    snap = led.snapshot()
    assert len(snap.attempts) == 4
    target = snap.attempts[0]
    cid = led.enqueue("demo", "destroy", cell=target.cell)
    clock.advance(5)
    await ctl.tick()
    assert led.command(cid).result == "ok"
    assert cells(led)[target.cell].state == "failed" and cells(led)[target.cell].reason == "user"
    led.enqueue("demo", "relaunch", cell=target.cell)
    for _ in range(3):
        clock.advance(5)
        await ctl.tick()
    atts = [a for a in led.snapshot().attempts if a.cell == target.cell]
    assert len(atts) == 2 and atts[1].state not in ("destroyed",)
    live_per_cell = {}
    for i in prov.alive():
        live_per_cell[i.label.split(":")[2]] = live_per_cell.get(i.label.split(":")[2], 0) + 1
    assert max(live_per_cell.values()) == 1


async def test_an_instance_listed_again_after_its_destroy_was_confirmed_is_leaked_and_destroyed(tmp_path, demo_sweep):
    """Believed gone (confirmed destroyed), then listed again: an alert, the state `leaked`, a new destroy."""
    clock, prov, led, ctl = make(tmp_path, demo_sweep, lambda spec: Script("done", run_s=3000))
    await ticks(ctl, clock, 6)
    a = next(x for x in led.attempts("demo") if x.state == "running")
    led.set_attempt(a.id, state="destroyed", ended_at=clock.now())   # as if a listing had confirmed a destroy
    await ctl.tick()
    alert = next(e for e in led.snapshot().events if e.kind == "leaked")
    assert "is still listed" in alert.message and alert.data == {"from": "destroyed", "to": "leaked"}
    assert led.attempt(a.id).state == "destroying"                   # leaked, then destroyed again in the tick
    assert prov.instances[a.provider_id].destroyed_at is not None


async def test_a_finished_result_survives_a_relaunch_destroyed_by_the_user(tmp_path, demo_sweep):
    """`launch` a finished cell again, then destroy that new attempt: the cell is still finished with its
    result (it was marked `failed (user)` and dropped from the leaderboard)."""
    clock, prov, led, ctl = make(tmp_path, demo_sweep)
    await drive(ctl, clock)
    name = demo_sweep.cells[0].name
    before = led.cell("demo", name)
    assert before.state == "finished" and before.metrics
    assert await ctl.command("launch", cell=name) == "ok"
    (second,) = [a for a in led.attempts("demo", name) if a.attempt == 2]
    await ctl.command("destroy", attempt_id=second.id)
    after = led.cell("demo", name)
    assert after.state == "finished" and after.metrics == before.metrics


async def test_a_container_that_never_started_is_diagnosed_from_the_daemon_log(tmp_path, demo_sweep):
    clock, prov, led, ctl = make(tmp_path, demo_sweep, lambda spec: Script("oci", run_s=60))
    await ticks(ctl, clock, 4)
    a = next(x for x in led.attempts("demo") if x.reason == "container_error")
    assert "daemon log:" in a.message and "nvidia-container-cli" in a.message, a.message
