"""Early stopping in the real controller over the simulated provider (its runs print the trainer's operator
events, one metric per epoch): losers are stopped at the rungs with their own state and reason, their results
kept, their money spent on the cells still waiting; a person's keep holds; a restarted controller decides as the
first one did; stuck and crashing cells are never judged; the best stopped cell is continued to the end."""

from __future__ import annotations

import pytest
from early_stop_support import BASE, N_EPOCHS, es_sweep, ranked_curve
from sim_support import make, ticks

from usim_core.sweep import expand
from usim_tui.fleet.providers.sim import Script
from usim_tui.fleet.store.states import CellState, EndReason


def _scripts(sweep, ranks=None, outcomes=None, run_s=600.0):
    ranks = ranks or {c.name: i for i, c in enumerate(sweep.cells)}
    outcomes = outcomes or {}
    return lambda spec: Script(outcome=outcomes.get(spec.cell, "done"), run_s=run_s, curve=ranked_curve(ranks[spec.cell]))


async def _night(ctl, clock, polls=2000):
    why = await ctl.run(until=clock.now() + polls * ctl.poll_interval)
    assert why == "done", why


async def test_losers_stop_at_the_rungs_their_results_kept_and_the_night_costs_less(tmp_path):
    sweep = es_sweep(tmp_path)
    clock, prov, led, ctl = make(tmp_path, sweep, _scripts(sweep))
    await _night(ctl, clock)
    cells = {c.name: c for c in led.cells("es")}
    stopped = [c for c in cells.values() if c.state == CellState.STOPPED_EARLY]
    finished = [c for c in cells.values() if c.state == CellState.FINISHED]
    assert len(stopped) >= 5 and finished and len(stopped) + len(finished) == 9
    best = sweep.cells[0].name
    assert cells[best].state == CellState.FINISHED
    for c in stopped:
        assert c.reason.startswith("stopped early at rung ") and "val/operator/loss" in c.reason and "cut-off" in c.reason
        (a,) = led.attempts("es", c.name)
        assert a.reason == EndReason.STOPPED_EARLY and a.state == "destroyed" and not a.done_event
        assert a.epoch is not None and a.epoch < N_EPOCHS - 1    # it did not train to the end
    rungs = led.rungs("es")
    assert {r.cell for r in rungs} == set(cells) and all(r.position >= 20 for r in rungs)
    for r in rungs:   # a stop is always a value worse than its rung's cut-off, among enough cells
        assert not r.stop or (r.value > r.cutoff and r.compared >= 3)
    assert not prov.alive()

    full_dir = tmp_path / "full"
    full_dir.mkdir()
    clock2, prov2, led2, ctl2 = make(full_dir, sweep, _scripts(sweep), early_stop=False)
    await _night(ctl2, clock2)
    assert {c.state for c in led2.cells("es")} == {CellState.FINISHED} and not led2.rungs("es")
    assert prov.true_cost() < 0.7 * prov2.true_cost()


async def test_no_cell_is_stopped_before_min_compared_cells_reached_its_rung(tmp_path):
    """One cell at a time, the worst first: Optuna alone would stop the second against the first."""
    sweep = es_sweep(tmp_path, concurrency=1, min_compared=3)
    ranks = {c.name: 8 - i for i, c in enumerate(sweep.cells)}   # each cell better than the one before
    clock, prov, led, ctl = make(tmp_path, sweep, _scripts(sweep, ranks))
    await _night(ctl, clock)
    first = [r for r in led.rungs("es") if r.rung == 0][:2]
    assert [r.compared for r in first] == [1, 2] and not any(r.stop for r in first)
    assert all(led.cell("es", c.name).state == CellState.FINISHED for c in sweep.cells[:2])


async def test_a_kept_cell_is_never_stopped(tmp_path):
    sweep = es_sweep(tmp_path)
    worst = sweep.cells[-1].name
    clock, prov, led, ctl = make(tmp_path, sweep, _scripts(sweep))
    assert await ctl.command("keep", cell=worst, on=True) == "ok"
    await _night(ctl, clock)
    assert led.cell("es", worst).state == CellState.FINISHED
    mine = [r for r in led.rungs("es") if r.cell == worst]
    assert mine and all(r.keep and not r.stop for r in mine)
    assert any("kept by a person" in r.why for r in mine)


async def test_stop_early_by_hand_pulls_then_ends_the_cell_with_its_reason(tmp_path):
    sweep = es_sweep(tmp_path, concurrency=1)
    cell = sweep.cells[0].name
    clock, prov, led, ctl = make(tmp_path, sweep, _scripts(sweep))
    while not any(a.state == "running" and a.epoch is not None for a in led.attempts("es", cell)):
        await ticks(ctl, clock, 1)
    assert await ctl.command("stop_early", cell=cell) == "ok"
    c = led.cell("es", cell)
    assert c.state == CellState.STOPPED_EARLY and c.reason.startswith("stopped early by a person")
    await ticks(ctl, clock, 3)
    (a,) = led.attempts("es", cell)
    assert a.reason == EndReason.STOPPED_EARLY and a.state == "destroyed"
    assert await ctl.command("stop_early", cell=cell) == "not running"


async def test_a_restarted_controller_decides_as_the_first_one_did(tmp_path):
    sweep = es_sweep(tmp_path)
    whole = tmp_path / "whole"
    whole.mkdir()
    clock, prov, led, ctl = make(whole, sweep, _scripts(sweep))
    await _night(ctl, clock)
    expected = [(r.cell, r.rung, r.stop) for r in led.rungs("es")]

    cut = tmp_path / "cut"
    cut.mkdir()
    clock, prov, led, ctl = make(cut, sweep, _scripts(sweep))
    while len(led.rungs("es")) < 5:
        await ticks(ctl, clock, 1)
    from usim_tui.fleet.process.open import open_sweep

    again = open_sweep(sweep, provider=prov, ledger=cut / "l.sqlite", runs_root=cut / "runs", clock=clock,
                       poll_interval=ctl.poll_interval, run_preflight=False, log=lambda m: None, env={})
    assert again.controller.early.rule.judged(led.rungs("es")[0].cell) >= 1   # replayed from the ledger
    await _night(again.controller, clock)
    assert [(r.cell, r.rung, r.stop) for r in again.ledger.rungs("es")] == expected


@pytest.mark.parametrize("outcome, reason", [("stuck", EndReason.STARTUP_TIMEOUT), ("crash", EndReason.EXITED_ERROR)])
async def test_stuck_and_crashing_cells_are_never_judged(tmp_path, outcome, reason):
    sweep = es_sweep(tmp_path)
    bad = sweep.cells[4].name
    good = _scripts(sweep)

    def scripts(spec):   # the bad cell crashes at start-up (before its operator stage prints) or never starts
        return Script(outcome=outcome, run_s=60.0) if spec.cell == bad else good(spec)

    clock, prov, led, ctl = make(tmp_path, sweep, scripts)
    await _night(ctl, clock, polls=4000)
    assert not [r for r in led.rungs("es") if r.cell == bad]
    assert led.cell("es", bad).state == CellState.FAILED
    assert {a.reason for a in led.attempts("es", bad)} == {reason}


async def test_the_best_stopped_cell_is_continued_to_the_end(tmp_path):
    sweep = es_sweep(tmp_path, continue_best=1)
    clock, prov, led, ctl = make(tmp_path, sweep, _scripts(sweep))
    await _night(ctl, clock)
    continued = [c for c in led.cells("es") if c.continued]
    assert len(continued) == 1
    c = continued[0]
    assert c.state == CellState.FINISHED and c.keep
    atts = led.attempts("es", c.name)
    assert [a.reason for a in atts] == [EndReason.STOPPED_EARLY, EndReason.FINISHED]
    stopped = [x for x in led.cells("es") if x.state == CellState.STOPPED_EARLY]
    last = {r.cell: r for r in led.rungs("es")}
    ranked = sorted([c, *stopped], key=lambda x: (-last[x.name].rung, last[x.name].value))
    assert ranked[0].name == c.name    # the one continued was the best of those stopped


async def test_freed_money_launches_the_cells_still_waiting(tmp_path):
    """A budget that pays for about 5 of the 9 cells to the end, the best cell last in line: without the rule it
    never finishes; with it every cell gets its chance and the best finishes."""
    sweep = es_sweep(tmp_path, concurrency=3, budget=0.9)
    ranks = dict(zip([c.name for c in sweep.cells], [4, 7, 1, 8, 3, 5, 2, 6, 0], strict=True))
    scripts = _scripts(sweep, ranks=ranks, run_s=1000.0)
    clock, prov, led, ctl = make(tmp_path, sweep, scripts)
    await _night(ctl, clock)
    states = [c.state for c in led.cells("es")]
    assert CellState.PENDING not in states and led.cell("es", sweep.cells[-1].name).state == CellState.FINISHED

    full_dir = tmp_path / "full"
    full_dir.mkdir()
    clock2, prov2, led2, ctl2 = make(full_dir, sweep, scripts, early_stop=False)
    await _night(ctl2, clock2)
    assert led2.cell("es", sweep.cells[-1].name).state != CellState.FINISHED


@pytest.mark.slow
async def test_the_real_trainer_is_judged_at_its_rungs_on_what_it_wrote(tmp_path):
    """Three real `usim-core train` runs on the local provider: every cell is judged at the first epoch of its
    operator stage on the val/operator/best its trainer wrote, and whatever the rule decides is carried out."""
    import time

    from usim_tui.fleet.process.open import open_sweep

    path = tmp_path / "real.yaml"
    path.write_text(f"""
name: real
base: {BASE}
budget: 1.0
concurrency: 3
planning: {{price_per_hour: 0.35, hours_per_cell: 0.05}}
provider: {{kind: local, price_per_hour: 0.35, startup_deadline_s: 600, max_runtime_s: 1200}}
set:
  data.generate.n: 12
  stages.codec.max_steps: 6
  stages.operator.epochs: 3
  stages.operator.min_lr: 1.0e-8
  stages.diffusion_residual.max_steps: 4
  stages.consistency_distill.max_steps: 4
  eval.small.trajectories: 1
  eval.small.horizons: [1, 4]
  eval.small.modes: [operator]
  eval.full.enabled: false
early_stop: {{metric: val/operator/best, unit: epochs, grace: 1, eta: 2, min_compared: 2, continue_best: 0}}
rounds:
  - name: a
    grid:
      - {{key: stages.operator.lr, name: lr, values: [1.0e-7, 1.0e-3, 3.0e-3], format: sci}}
""")
    sweep = expand(path)
    opened = open_sweep(sweep, ledger=tmp_path / "l.sqlite", runs_root=tmp_path / "runs", poll_interval=0.5,
                        run_preflight=False, log=lambda m: None, env={"USIM_THREADS": "1", "WANDB_MODE": "disabled"})
    try:
        why = await opened.controller.run(until=time.time() + 900)
    finally:
        await opened.close()
    led = opened.ledger
    assert why == "done", why
    rungs = led.rungs("real")
    assert sorted(r.cell for r in rungs if r.rung == 0) == sorted(c.name for c in sweep.cells)
    for r in rungs:
        series = led.metric_series([r.attempt_id], ["val/operator/best", "operator/epoch"])[r.attempt_id]
        at = dict(series["operator/epoch"])
        written = [v for step, v in series["val/operator/best"] if at.get(step) == r.position - 1]
        assert written == [r.value], (r, series)     # the value its trainer wrote at that epoch
        assert not r.stop or (r.value > r.cutoff and r.compared >= 2)
    last = {r.cell: r for r in rungs}
    for c in led.cells("real"):   # stopped where its last judgement said so, and only there
        assert (c.state == CellState.STOPPED_EARLY) == bool(last[c.name].stop), (c, last[c.name])
        assert not any(r.stop for r in rungs if r.cell == c.name and r is not last[c.name])
    assert any(c.state == CellState.FINISHED for c in led.cells("real"))


def test_a_rule_changed_since_the_ledger_was_written_replays_what_fits():
    from usim_core.sweep import EarlyStop
    from usim_tui.fleet.stopping.rule import Rule

    first = Rule(EarlyStop(grace=10, eta=3, min_compared=2))
    rows = [(f"c{i}", 0, 12, v, False) for i, v in enumerate((0.5, 0.9, 0.3))]
    rows += [("c2", 1, 31, 0.2, False)]
    for row in rows:
        first.judge(*row)
    later = Rule(EarlyStop(grace=20, eta=3, min_compared=2))   # grace raised in the sweep file
    assert later.replay(rows) == 4 and later.judged("c2") == 0
    same = Rule(EarlyStop(grace=10, eta=3, min_compared=2))
    assert same.replay(rows) == 0 and same.judged("c2") == 2 and same.values == first.values


async def test_the_budget_cap_still_holds_with_the_rule(tmp_path):
    """Nine cells at once on a budget that pays for less than their first rung: the cap stops everything, the
    rule's pulls included, within one poll of burn."""
    sweep = es_sweep(tmp_path, budget=0.2)
    clock, prov, led, ctl = make(tmp_path, sweep, _scripts(sweep, run_s=3000.0))
    await _night(ctl, clock)
    assert led.sweep_row("es").budget_stop and not prov.alive()
    burn = 9 * (0.4 + 0.02) * ctl.poll_interval / 3600    # every instance, one poll
    assert prov.true_cost() <= sweep.spec.budget + burn
    assert {a.reason for a in led.attempts("es")} <= {EndReason.BUDGET, EndReason.STOPPED_EARLY}
