"""The panes' pure parts: sparkline, grid axes, leaderboard ranking and gates, budget thresholds, stages, help."""

from __future__ import annotations

import dataclasses

from app_support import make_snapshot

from usim_tui.app.bindings import MAIN, help_rows
from usim_tui.app.format import AMBER_AT, BLOCKS, RED_AT, duration, short_names, sparkline
from usim_tui.app.widgets.budget import level
from usim_tui.app.widgets.coverage import grid_axes
from usim_tui.app.widgets.leaderboard import RANK_BY, gate, ranked
from usim_tui.fleet.store.resumes import stage_of


def test_sparkline_follows_the_shape_and_width():
    assert sparkline([]) == "" and sparkline([float("nan")]) == ""
    down = sparkline([10 - i for i in range(100)], width=10)
    assert len(down) == 10 and down[0] == BLOCKS[-1] and down[-1] == BLOCKS[0]
    assert list(down) == sorted(down, reverse=True)
    assert sparkline([1.0, 1.0, 1.0]) == BLOCKS[0] * 3


def test_duration_has_seconds_under_an_hour():
    assert duration(None) == "-" and duration(59) == "59s" and duration(252) == "4m12s"
    assert duration(61 * 60) == "1h01m" and duration(3599) == "59m59s"


def test_short_names_drop_the_shared_front_never_the_tail():
    names = ["round_a_lr1e-3_w0pct", "round_a_lr1e-3_w5pct", "round_a_lr3e-4_w0pct"]
    short = short_names(names, 14)
    assert len(set(short.values())) == 3 and all(len(v) <= 14 for v in short.values())
    assert short["round_a_lr1e-3_w0pct"] == "…lr1e-3_w0pct" and short["round_a_lr1e-3_w5pct"].endswith("w5pct")
    assert short_names(names, 30) == {n: n for n in names}


def test_grid_axes_come_from_the_tags_in_sweep_order():
    snap, _, _ = make_snapshot()
    a = [c for c in snap.cells if c.round == "round_a"]
    assert grid_axes(a) == ("lr", ["2e-4", "3e-4", "4.5e-4"], "warmup", ["3%", "5%", "6%"])
    assert grid_axes([c for c in snap.cells if c.round == "round_b"]) is None  # a list round


def test_leaderboard_ranks_finished_cells_and_applies_the_gates():
    snap, _, _ = make_snapshot()
    order = [c.name for c in ranked(snap.cells)]
    assert order[0] == "round_b_cap64" and len(order) == 3
    by = {c.name: c for c in snap.cells}
    assert gate(by["round_b_cap64"].metrics, "mass") is False          # drift 0.02 > 1e-2
    assert gate(by["round_a_lr2e-4_w5pct"].metrics, "energy") is False  # energy grew
    assert gate({"gate_mass": 1.0, "mass_drift": 9.0}, "mass") is True  # an explicit gate wins
    assert gate({}, "energy") is None
    assert gate({"energy_violation": 0.0}, "energy") is True and gate({"energy_violation": 0.01}, "energy") is False


def test_budget_levels_at_the_stated_thresholds():
    snap, _, _ = make_snapshot()
    b = snap.budget
    at = lambda used: dataclasses.replace(b, spent=used * b.budget, committed=0.0)  # noqa: E731
    assert level(at(AMBER_AT - 0.01)) == "ok"
    assert level(at(AMBER_AT)) == "warn" and level(at(RED_AT - 0.01)) == "warn"
    assert level(at(RED_AT)) == "danger"


def test_stage_of_metric_keys():
    assert [stage_of(k) for k in ("train/codec/loss", "val/operator/loss", "operator/train_loss", "loss")] == \
        ["codec", "operator", "operator", ""]


def test_help_lists_every_key():
    text = " ".join(f"{k} {w}" for k, w in help_rows())
    for b in MAIN:
        assert (b.key_display or b.key) in text or b.action.startswith("focus_pane")
    assert "1-6" in text


def test_leaderboard_ranks_on_val_never_on_test():
    """The val (small) eval ranks; the best test number with a worse val number goes below."""
    snap, _, _ = make_snapshot()
    by = {c.name: c for c in snap.cells}
    val = {"round_a_lr2e-4_w3pct": 0.30, "round_a_lr2e-4_w5pct": 0.10, "round_b_cap64": 0.20}
    cells = tuple(dataclasses.replace(c, small_metrics={RANK_BY: val[c.name]}) if c.name in val else c
                  for c in snap.cells)
    order = [c.name for c in ranked(cells)]
    assert order == ["round_a_lr2e-4_w5pct", "round_b_cap64", "round_a_lr2e-4_w3pct"], order
    assert by["round_b_cap64"].metrics[RANK_BY] < by["round_a_lr2e-4_w5pct"].metrics[RANK_BY]


async def test_leaderboard_pane_redraws_when_only_a_val_score_changes():
    """The pane shows the val score it ranks by, and redraws when only that changes."""
    from rich.table import Table
    from textual.app import App

    from usim_tui.app.widgets.leaderboard import Leaderboard

    snap, _, _ = make_snapshot()
    finished = [c.name for c in ranked(snap.cells)]

    def with_val(vals):
        return tuple(dataclasses.replace(c, small_metrics={RANK_BY: vals[c.name]}) if c.name in vals else c
                     for c in snap.cells)

    def shown(lb):
        table = lb.content
        assert isinstance(table, Table) and [c.header for c in table.columns][:2] == ["cell", "val"]
        return list(table.columns[1]._cells)

    class One(App):
        def compose(self):
            yield Leaderboard(id="lb")

    async with One().run_test(size=(70, 12)) as pilot:
        lb = pilot.app.query_one(Leaderboard)
        lb.show(with_val({n: 0.1 * (i + 1) for i, n in enumerate(finished)}))
        assert shown(lb) == ["0.1", "0.2", "0.3"]
        lb.show(with_val({n: 0.1 * (3 - i) + 0.05 for i, n in enumerate(finished)}))
        assert shown(lb) == ["0.15", "0.25", "0.35"]


def test_details_say_a_cells_gpus_and_its_hosts():
    from rich.console import Console

    from usim_tui.app.screens.details import details_table

    snap, _, _ = make_snapshot()
    a = dataclasses.replace(snap.attempts[0], num_gpus=2)
    c = dataclasses.replace(next(c for c in snap.cells if c.name == a.cell), num_gpus=2)
    console = Console(record=True, width=120)
    console.print(details_table(c, a, snap.now))
    text = console.export_text()
    assert "2 per host, data-parallel (torchrun)" in text and f"/ 2x {a.gpu}" in text
    console.print(details_table(dataclasses.replace(c, num_gpus=1), dataclasses.replace(a, num_gpus=1), snap.now))
    assert "data-parallel" not in console.export_text() and "2x" not in console.export_text()
