"""The ledger: migrations, idempotent sweep recording, snapshots, metric series, command queue."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import pytest

from usim_core.sweep import expand
from usim_tui.fleet.store.ledger import SCHEMA_VERSION, Ledger, event_digest

DEMO = Path(__file__).resolve().parents[2] / "configs/sweeps/demo.yaml"


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path / "l.sqlite")
    led.ensure_sweep(expand(DEMO))
    return led


def test_wal_and_schema_version(ledger, tmp_path):
    assert ledger.q1("PRAGMA journal_mode")[0] == "wal"
    assert ledger.q1("PRAGMA user_version")[0] == SCHEMA_VERSION
    Ledger(tmp_path / "l.sqlite")  # reopening does not re-run migrations
    db = sqlite3.connect(tmp_path / "l.sqlite")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        Ledger(tmp_path / "l.sqlite")


def test_ensure_sweep_idempotent_and_load_back(ledger):
    sweep = expand(DEMO)
    ledger.ensure_sweep(sweep)
    assert len(ledger.cells("demo")) == len(sweep.cells) == 4
    back = ledger.load_sweep("demo")
    assert [c.name for c in back.cells] == [c.name for c in sweep.cells]
    assert back.cells[1].config == sweep.cells[1].config
    assert back.spec.budget == sweep.spec.budget


def test_each_cell_keeps_its_gpus_and_each_attempt_the_gpus_it_was_launched_for(tmp_path, capsys):
    """Reproduced before v5: a sweep loaded back from its ledger (a relaunch with no controller) lost its cells'
    num_gpus, so a 2-GPU cell would have rented a 1-GPU host; and the pending cells' planned cost ignored it."""
    sweep = expand(DEMO)
    sweep.cells[0].num_gpus = 2
    led = Ledger(tmp_path / "l.sqlite")
    led.ensure_sweep(sweep)
    back = led.load_sweep("demo")
    assert [c.num_gpus for c in back.cells] == [2, 1, 1, 1]
    a = led.new_attempt("demo", sweep.cells[0].name, 1, "usim:demo:x:1", "/tmp/x", t=0.0, num_gpus=2)
    assert led.attempt(a).num_gpus == 2
    snap = led.snapshot("demo", now=0.0)
    assert [c.num_gpus for c in snap.cells] == [2, 1, 1, 1] and snap.attempts[0].num_gpus == 2
    per_cell = sweep.spec.planned_cost(1)
    # the 2-GPU cell is live (reserved at 2x the local price for the planning hours), the three others pending
    assert snap.budget.projected_total == pytest.approx(2 * per_cell + 3 * per_cell)
    led.close()
    from usim_tui.fleet.process.commands import _status

    assert _status(argparse.Namespace(ledger=str(tmp_path / "l.sqlite"), sweep=None, runs_root="runs", json=False)) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()[2:]}
    assert "[2 GPUs]" in lines[sweep.cells[0].name] and "GPUs" not in lines[sweep.cells[1].name]


def test_snapshot_states_costs_and_series(ledger):
    cells = [c.name for c in ledger.cells("demo")]
    a = ledger.new_attempt("demo", cells[0], 1, "usim:demo:x:1", "/tmp/x", t=100.0)
    ledger.set_attempt(a, state="running", price_per_hour=0.5, spent=0.25, provider_id="p1", started_at=110.0)
    for step in range(10):
        ledger.add_metrics(a, step, {"codec/loss": 1.0 / (step + 1)}, t=None)
    snap = ledger.snapshot("demo", now=200.0)
    by = {c.name: c for c in snap.cells}
    assert by[cells[0]].state == "running" and by[cells[0]].cost == 0.25 and by[cells[0]].attempts == 1
    assert by[cells[1]].state == "pending"
    assert snap.budget.spent == 0.25 and snap.budget.burn_per_hour == 0.5
    assert snap.attempts[0].loss_history[0] == 1.0 and snap.attempts[0].loss_history[-1] == pytest.approx(0.1)
    series = ledger.metric_series([a], max_points=4)[a]["codec/loss"]
    assert len(series) == 4 and series[0] == (0, 1.0) and series[-1][0] == 9
    assert ledger.intents("demo")[0].action == "create" and ledger.intents("demo")[0].outcome is None


def test_events_deduplicated_by_digest(ledger):
    ev = {"kind": "metric", "step": 3, "t": 1.0, "loss": 0.5}
    d = event_digest(7, ev)
    assert ledger.add_event("demo", 1.0, "metric", "m", attempt_id=7, digest=d)
    assert not ledger.add_event("demo", 1.0, "metric", "m", attempt_id=7, digest=d)
    assert len(ledger.attempt_events(7)) == 1


def test_command_queue(ledger):
    i = ledger.enqueue("demo", "pause")
    ledger.enqueue("demo", "destroy", attempt_id=3)
    with pytest.raises(ValueError, match="allowed"):
        ledger.enqueue("demo", "explode")
    taken = ledger.take_commands("demo", t=1.0)
    assert [(c.command, c.args) for c in taken] == [("pause", {}), ("destroy", {"attempt_id": 3})]
    assert ledger.take_commands("demo", t=2.0) == []
    ledger.finish_command(i, "ok")
    assert ledger.command(i).result == "ok"


def old_ledger(path: Path, version: int, *rows: tuple[str, tuple]) -> Ledger:
    """A ledger file as schema `version` left it, holding `rows` ((INSERT statement, values) each), then opened
    by this usim (which migrates it)."""
    from usim_tui.fleet.store.ledger import MIGRATIONS

    db = sqlite3.connect(path)
    db.executescript(";".join(MIGRATIONS[:version]))
    for sql, values in rows:
        db.execute(sql, values)
    db.execute(f"PRAGMA user_version={version}")
    db.commit()
    db.close()
    return Ledger(path)


def test_a_v1_ledger_migrates_and_keeps_its_rows(tmp_path):
    led = old_ledger(tmp_path / "old.sqlite", 1, ("INSERT INTO sweeps (name, provider, path, spec_json, budget, "
                                                  "created_at) VALUES ('demo', 'vast', 'x', '{}', 1.0, 0)", ()))
    assert led.q1("PRAGMA user_version")[0] == SCHEMA_VERSION
    assert led.provider_reported("demo") is None                 # no credit reading yet, no per-instance costs
    led.set_sweep("demo", credit_start=10.0, credit_now=9.25)
    assert led.provider_reported("demo") == 0.75


def test_a_v2_ledger_splits_small_and_full_eval_metrics(tmp_path):
    """v2 kept both evals in one metrics_json, the full one marked `_full`; v3 gives each its own column."""
    cells = [("a", '{"nrmse_rollout": 0.3, "_full": 1.0}'), ("b", '{"nrmse_rollout": 0.5}'), ("c", "{}")]
    insert = ("INSERT INTO cells (sweep, name, round, tags_json, overrides_json, config_json, config_hash, run_id, "
              "ord, metrics_json) VALUES ('demo', ?, 'r', '[]', '{}', '{}', 'h', 'id', ?, ?)")
    led = old_ledger(tmp_path / "old.sqlite", 2, *[(insert, (name, i, m)) for i, (name, m) in enumerate(cells)])
    got = {c.name: (c.small_metrics, c.full_metrics, c.metrics) for c in led.cells("demo")}
    assert got == {"a": ({}, {"nrmse_rollout": 0.3}, {"nrmse_rollout": 0.3}),
                   "b": ({"nrmse_rollout": 0.5}, {}, {"nrmse_rollout": 0.5}), "c": ({}, {}, {})}


def test_a_v4_ledger_gives_its_cells_and_attempts_one_gpu(tmp_path):
    led = old_ledger(tmp_path / "old.sqlite", 4,
                     ("INSERT INTO cells (sweep, name, round, tags_json, overrides_json, config_json, config_hash, "
                      "run_id, ord) VALUES ('demo', 'a', 'r', '[]', '{}', '{}', 'h', 'id', 0)", ()),
                     ("INSERT INTO attempts (sweep, cell, attempt, label, state) VALUES ('demo', 'a', 1, "
                      "'usim:demo:a:1', 'running')", ()))
    assert led.q1("PRAGMA user_version")[0] == SCHEMA_VERSION
    assert led.cell("demo", "a").num_gpus == 1 and led.cell("demo", "a").cell.num_gpus == 1
    assert led.attempts("demo")[0].num_gpus == 1


def test_a_ledger_that_cannot_be_opened_is_one_line_naming_it(tmp_path):
    from usim_core.config import ConfigError

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"ledger .*a-file/runs/l\.sqlite: cannot open it"):
        Ledger(blocker / "runs" / "l.sqlite")
