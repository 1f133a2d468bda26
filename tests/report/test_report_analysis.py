"""The pure analysis on hand-built records: every expected number is computed here from the inputs."""

from __future__ import annotations

import dataclasses
import math
import statistics

import pytest
from report_support import ev, val_ev

from usim_tui.report import analysis as A
from usim_tui.report.model import PRIMARY


def rollout(data, name):
    return data.cell(name).metrics[PRIMARY]


def test_summary_counts_spend_and_cost_per_finished(data):
    s = A.summarize(data)
    finished = [c for c in data.cells if c.state == "finished"]
    assert (s.total, s.finished, s.failed, s.not_started, s.duplicates) == (7, len(finished), 1, 1, 1)
    assert s.cost_per_finished == pytest.approx(data.spent / len(finished))
    assert not s.complete and {c.name for c in s.missing} == {"round_a_lr3e-3_w10pct", "round_b_cap128"}
    last_end = max(a.ended_at for a in data.attempts)
    assert s.wall_clock_s == pytest.approx(last_end - min(a.created_at for a in data.attempts))


def test_wall_clock_runs_to_now_while_an_attempt_is_live(data):
    live = dataclasses.replace(data.attempts[-1], ended_at=None)
    d = dataclasses.replace(data, attempts=[*data.attempts[:-1], live])
    assert A.summarize(d).wall_clock_s == pytest.approx(d.now - min(a.created_at for a in d.attempts))


def test_coverage_matrix_places_every_grid_cell(data):
    cov = {c.round: c for c in A.coverage(data)}
    a = cov["round_a"]
    assert a.axes == ["lr", "warmup"] and a.rows == ["1e-3", "3e-3"] and a.cols == ["0%", "10%"]
    assert a.grid[("3e-3", "10%")].state == "failed"
    assert a.grid[("1e-3", "0%")].name == "round_a_lr1e-3_w0pct"
    assert cov["round_b"].axes == [] and len(cov["round_b"].cells) == 4


def test_champion_is_the_best_cell_that_passes_the_gates(data):
    board = A.leaderboard(data)
    assert [c.metrics[PRIMARY] for c in board] == sorted(c.metrics[PRIMARY] for c in board)
    assert board[0].name == "round_a_lr3e-3_w0pct"            # lowest error but its mass drift fails the gate
    assert A.passes_gates(board[0].metrics) is False
    assert A.champion(data).name == "round_a_lr1e-3_w0pct"
    assert A.baselines(data)["persistence"][PRIMARY] == 0.64


def test_group_stats_are_mean_and_spread_over_the_group(data):
    stats = {g.value: g for g in A.group_stats(data, "lr")}
    xs = [rollout(data, "round_a_lr1e-3_w0pct"), rollout(data, "round_a_lr1e-3_w10pct")]
    assert stats["1e-3"].n == 2 and stats["1e-3"].mean == pytest.approx(statistics.fmean(xs))
    assert stats["1e-3"].std == pytest.approx(statistics.stdev(xs))
    assert stats["3e-3"].n == 1 and stats["3e-3"].std is None  # the failed cell does not count
    assert [g.value for g in A.group_stats(data, "warmup")] == ["0%", "10%"]


def test_noise_comes_from_repeats_that_differ_only_by_seed(data):
    noise = A.run_noise(data)
    assert noise.groups == [["round_b_cap64", "round_b_cap64_seed18"]] and noise.dof == 1
    assert noise.std == pytest.approx(statistics.stdev([0.40, 0.42]))
    stats = A.group_stats(data, "lr")
    spread = max(g.mean for g in stats) - min(g.mean for g in stats)
    se = noise.std * math.sqrt(1 / stats[0].n + 1 / stats[1].n)
    assert A.exceeds_noise(stats, noise) is (spread > 2 * se)
    loud = A.Noise(groups=[["x", "y"]], std=1.0, dof=1)
    assert A.exceeds_noise(stats, loud) is False
    assert A.exceeds_noise(stats, A.Noise(groups=[], std=None, dof=0)) is None


def test_failures_shared_errors_and_stuck_instances(data):
    by = A.failures_by_reason(data)
    assert by["exited_error"] == (2, pytest.approx(0.05)) and by["startup_timeout"] == (1, pytest.approx(0.06))
    assert "finished" not in by
    shared = A.shared_errors(data)
    assert shared == [("ImportError: LazyLinear", ["round_a_lr3e-3_w10pct#1", "round_a_lr3e-3_w10pct#2"])]
    stuck = A.stuck_attempts(data)
    assert [s.attempt.attempt_id for s in stuck] == [6] and stuck[0].cost == 0.06


def test_an_instance_still_loading_past_the_deadline_is_stuck(data):
    waiting = dataclasses.replace(data.attempts[0], attempt_id=99, reason=None, started_at=None, ended_at=None,
                                  created_at=data.now - 1000)
    d = dataclasses.replace(data, attempts=[*data.attempts, waiting])
    stuck = {s.attempt.attempt_id: s for s in A.stuck_attempts(d)}
    assert stuck[99].seconds == pytest.approx(1000)
    d.startup_deadline_s = 2000
    assert 99 not in {s.attempt.attempt_id for s in A.stuck_attempts(d)}


def test_next_steps_cost_the_uncovered_cells_and_refine_around_the_champion(data):
    ns = A.next_steps(data)
    finished = sum(c.state == "finished" for c in data.cells)
    assert ns.champion.name == "round_a_lr1e-3_w0pct" and ns.observed
    assert ns.cost_per_cell == pytest.approx(data.spent / finished)
    assert {c.name for c in ns.uncovered} == {"round_a_lr3e-3_w10pct", "round_b_cap128"}
    grid = {a["key"]: a for a in ns.next_round["grid"]}
    lr = grid["stages.operator.lr"]
    # 1e-3 is the low edge of [1e-3, 3e-3]: one step below, the geometric midpoint above, and itself
    assert lr["values"] == pytest.approx([1e-3 / 3, 1e-3, math.sqrt(3e-6)], rel=2e-3)
    assert lr["name"] == "lr" and lr["format"] == "sci"
    assert grid["stages.operator.warmup"]["format"] == "pct" and 0.0 in grid["stages.operator.warmup"]["values"]
    assert ns.next_cells == len(lr["values"]) * len(grid["stages.operator.warmup"]["values"])


def test_next_steps_with_nothing_finished_use_the_plan(data):
    cells = [dataclasses.replace(c, state="pending", evals=[]) for c in data.cells]
    ns = A.next_steps(dataclasses.replace(data, cells=cells))
    assert ns.champion is None and not ns.observed and ns.cost_per_cell == data.planned_cost_per_cell
    assert ns.next_round is None


@pytest.mark.parametrize("text, value", [("1e-3", 1e-3), ("10%", 0.1), ("0%", 0.0), ("cap64", None)])
def test_axis_number(text, value):
    assert A.axis_number(text) == value


def test_cells_are_ranked_and_the_champion_chosen_on_val_never_on_test(data):
    """A cell whose test number is best but whose val number is worse is not the champion: the report ranks
    as the leaderboard command does (usim_core/eval/leaderboard.py), on the val (small) eval."""
    best_test = data.cell("round_a_lr1e-3_w10pct")
    best_test.evals = [ev(0.10), val_ev(0.50)]
    board = A.leaderboard(data)
    assert board[-1] is best_test, [c.name for c in board]
    assert A.champion(data).name == "round_a_lr1e-3_w0pct"
    vals = [c.val.metrics[PRIMARY] for c in board]
    assert vals == sorted(vals)


def test_no_champion_without_a_val_eval(data):
    for c in data.cells:
        c.evals = [e for e in c.evals if e.split != "small"]
    assert A.leaderboard(data) and A.champion(data) is None


def test_group_comparisons_name_their_best_on_val(data):
    """Section 4's "best lr" follows the val means of the groups, not their test means."""
    for name in ("round_a_lr3e-3_w0pct",):
        data.cell(name).evals = [ev(0.01), val_ev(0.90)]   # the 3e-3 group is best on test, worst on val
    by = {g.value: g for g in A.group_stats(data, "lr")}
    assert by["3e-3"].mean < by["1e-3"].mean and by["3e-3"].val_mean > by["1e-3"].val_mean
    assert A.best_group(list(by.values())).value == "1e-3"
    for c in data.cells:
        c.evals = [e for e in c.evals if e.split != "small"]
    assert A.best_group(A.group_stats(data, "lr")) is None
