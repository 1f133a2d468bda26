from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from usim_core.config import ConfigError
from usim_core.sweep import budget_plan, expand, format_value

REPO = Path(__file__).resolve().parents[2]
SOTA = REPO / "configs/sweeps/overnight_sota.yaml"


def test_overnight_sweep_has_the_fifteen_cells_of_the_night():
    sweep = expand(SOTA)
    names = [c.name for c in sweep.cells]
    lrs = ["2e-4", "3e-4", "4.5e-4"]
    expected_a = [f"round_a_lr{lr}_w{w}pct" for lr in lrs for w in (3, 5, 6)]
    assert names == expected_a + ["round_b_cap64", "round_b_cap96", "round_b_cap128",
                                  "round_c_cap128_ttc", "round_c_extended", "round_c_tokens48"]
    assert not any("29e5" in n for n in names)
    by = {c.name: c for c in sweep.cells}
    op = by["round_a_lr4.5e-4_w6pct"].config["stages"]["operator"]
    assert op["lr"] == pytest.approx(4.5e-4) and op["warmup"] == pytest.approx(0.06)
    assert by["round_a_lr4.5e-4_w6pct"].tags == ["round-a", "lr=4.5e-4", "warmup=6%"]
    assert by["round_b_cap128"].config["model"]["operator"]["heads"] == 8
    assert by["round_b_cap64"].config["model"]["operator"]["hidden_dim"] == 64
    ttc = by["round_c_cap128_ttc"].config["eval"]["ttc"]
    assert (ttc["candidates"], ttc["max_evaluations"]) == (12, 200)
    ext = by["round_c_extended"].config["stages"]
    assert [ext[s]["epochs"] for s in ("operator", "diffusion_residual", "consistency_distill")] == [35, 10, 10]
    t48 = by["round_c_tokens48"].config
    assert t48["model"]["codec"]["latent_tokens"] == 48 and t48["stages"]["operator"]["batch_size"] == 10
    assert sweep.spec.budget == 5.25 and sweep.spec.planning.price_per_hour == 0.35
    assert sweep.spec.provider.gpu == "RTX 4090"


def test_round_b_cap96_is_reported_as_the_duplicate_it_is():
    sweep = expand(SOTA)
    dups = {c.name: c.duplicate_of for c in sweep.duplicates}
    assert dups == {"round_b_cap96": "round_a_lr3e-4_w5pct"}
    a = sweep.cell("round_a_lr3e-4_w5pct")
    assert sweep.cell("round_b_cap96").config_hash == a.config_hash
    # names and tags differ, the experiment does not
    assert sweep.cell("round_b_cap96").config["tracking"] != a.config["tracking"]


def test_cells_carry_stable_run_ids_and_tracking():
    one, two = expand(SOTA), expand(SOTA)
    assert [c.run_id for c in one.cells] == [c.run_id for c in two.cells]
    assert len({c.run_id for c in one.cells}) == 15
    cell = one.cells[0]
    wb = cell.config["tracking"]["wandb"]
    assert wb["run_name"] == cell.name and wb["group"] == "overnight_sota" and wb["run_id"] == cell.run_id
    assert "round-a" in wb["tags"] and "overnight" in wb["tags"]


def test_format_value_never_truncates():
    assert format_value(3e-4, "sci") == ("3e-4", "3e-4")
    assert format_value(2.9e-4, "sci") == ("2.9e-4", "2.9e-4")
    assert format_value(0.05, "pct") == ("5pct", "5%")
    assert format_value(0.055, "pct") == ("5.5pct", "5.5%")


def _sweep(tmp_path: Path, rounds: list, base: str | None = None) -> Path:
    spec = {"name": "t", "base": base or str(REPO / "configs/runs/burgers_tiny.yaml"), "budget": 1.0,
            "rounds": rounds}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_axis_that_does_not_change_the_config_is_refused(tmp_path):
    path = _sweep(tmp_path, [{"name": "r", "grid": [
        {"key": "stages.operator.warmup", "name": "warmup", "values": [0.05, 0.050]}]}])
    with pytest.raises(ConfigError, match="resolve to the same config"):
        expand(path)


def test_unknown_override_key_is_refused_with_suggestion(tmp_path):
    path = _sweep(tmp_path, [{"name": "r", "grid": [
        {"key": "stages.operator.warmup_epochs", "name": "w", "values": [1, 2]}]}])
    with pytest.raises(ConfigError) as err:
        expand(path)
    assert "stages.operator.warmup_epochs" in str(err.value)
    assert "did you mean stages.operator.warmup" in str(err.value)


def test_sweep_file_typos_are_refused(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "base": "x.yaml", "budjet": 1, "rounds": []}))
    with pytest.raises(ConfigError) as err:
        expand(path)
    assert "did you mean budget?" in str(err.value)


def test_cli_expand_json_and_exit_codes(tmp_path):
    out = subprocess.run([sys.executable, "-m", "usim_core", "sweep", "expand", str(SOTA), "--json"],
                         capture_output=True, text=True, check=True)
    cells = json.loads(out.stdout)
    assert len(cells) == 15
    assert {"name", "round", "tags", "overrides", "config"} <= set(cells[0])
    assert cells[0]["overrides"]["stages.operator.lr"] == pytest.approx(2e-4)
    table = subprocess.run([sys.executable, "-m", "usim_core", "sweep", "expand", str(SOTA)],
                           capture_output=True, text=True, check=True).stdout
    assert "DUPLICATE of round_a_lr3e-4_w5pct" in table
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  operator:\n    lr: fast\n")
    res = subprocess.run([sys.executable, "-m", "usim_core", "config", "validate", str(bad)],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert "stages.operator.lr" in res.stderr and "expected a number" in res.stderr
    ok = subprocess.run([sys.executable, "-m", "usim_core", "config", "validate",
                         str(REPO / "configs/runs/burgers_base.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0 and "ok" in ok.stdout


def test_a_round_can_rent_hosts_with_more_gpus_and_its_cells_stay_the_same_experiment(tmp_path):
    lrs = {"key": "stages.operator.lr", "name": "lr", "values": [1e-3, 3e-3], "format": "sci"}
    path = _sweep(tmp_path, [{"name": "small", "grid": [lrs]}, {"name": "big", "num_gpus": 4, "grid": [lrs]}])
    sweep = expand(path)
    assert [(c.name, c.num_gpus) for c in sweep.cells] == [
        ("small_lr1e-3", 1), ("small_lr3e-3", 1), ("big_lr1e-3", 4), ("big_lr3e-3", 4)]
    # the batch is the global batch: the same config on 4 GPUs is the same experiment, reported as a duplicate
    assert sweep.cell("big_lr1e-3").config_hash == sweep.cell("small_lr1e-3").config_hash
    assert sweep.cell("big_lr1e-3").duplicate_of == "small_lr1e-3"
    assert sweep.cell("big_lr3e-3").to_dict()["num_gpus"] == 4


def test_num_gpus_is_validated_against_the_batch_it_splits(tmp_path):
    path = _sweep(tmp_path, [{"name": "huge", "num_gpus": 64, "list": {"x": {}}}])
    with pytest.raises(ConfigError) as err:
        expand(path)
    msg = str(err.value)
    assert str(path) in msg and "cell huge_x" in msg and "stages.codec.batch_size 32" in msg
    assert "round huge's num_gpus (64)" in msg
    path = _sweep(tmp_path, [{"name": "r", "num_gpus": 0, "list": {"x": {}}}])
    with pytest.raises(ConfigError, match=r"rounds\.0\.num_gpus"):
        expand(path)


def _planned(tmp_path, budget, early_stop, after_share=0.0):
    base = Path(__file__).resolve().parents[2] / "configs/runs/burgers_tiny.yaml"
    path = tmp_path / "plan.yaml"
    path.write_text(f"""
name: plan
base: {base}
budget: {budget}
planning: {{price_per_hour: 1.0, hours_per_cell: 1.0, stage_share: 0.8, after_share: {after_share}}}
{"early_stop: {metric: val/operator/best, unit: percent, grace: 10, eta: 3, min_compared: 2, continue_best: 1}"
 if early_stop else ""}
rounds:
  - name: a
    grid:
      - {{key: stages.operator.lr, name: lr, values: [1.0e-4, 2.0e-4, 3.0e-4, 4.0e-4, 5.0e-4, 6.0e-4]}}
      - {{key: stages.operator.warmup, name: w, values: [0.0, 0.05, 0.1]}}
""")
    return budget_plan(expand(path))


def test_the_budget_plan_counts_on_the_stopping_rule(tmp_path):
    """18 cells at $1 each: $18 to the end. With rungs at 10%, 30% and 90% of the stage, 1 in 3 going on past each
    (besides the one no rule judges), a stopped cell paying the 20% of its run outside the stage, and the best
    one stopped running again, it is planned at much less, and refused only below that."""
    full = _planned(tmp_path, 10.0, early_stop=False)
    assert full.full == pytest.approx(18.0) and full.fraction == 1.0 and not full.fits
    ruled = _planned(tmp_path, 10.0, early_stop=True)
    reach0 = 18
    reach1 = 1 + 17 / 3                         # past rung 0 (10%): the unjudged one, and 1 in 3 of the rest
    reach2 = 1 + (reach1 - 1) / 3               # past rung 1 (30%)
    reach3 = 1 + (reach2 - 1) / 3               # past rung 2 (90%)
    stage = (reach0 * 0.1 + reach1 * 0.2 + reach2 * 0.6 + reach3 * 0.1) / 18
    assert ruled.fraction == pytest.approx(1 - 0.8 * (1 - stage) + 1 / 18)
    assert ruled.expected < 10.0 < ruled.full and ruled.fits
    assert not _planned(tmp_path, 0.9 * ruled.expected, early_stop=True).fits
    assert "with early stopping about $" in ruled.line() and "rungs at 10, 30, 90 percent" in ruled.line()
    assert ruled.line().endswith(": fits") and not full.line().endswith(": fits")
    # stages after the judged one (here 15% of a cell's hours): a stopped cell never pays them, a finishing one does
    after = _planned(tmp_path, 10.0, early_stop=True, after_share=0.15)
    assert after.fraction == pytest.approx(ruled.fraction - 0.15 * (1 - reach3 / 18))


def test_planning_shares_past_a_whole_cell_are_refused_naming_both(tmp_path):
    with pytest.raises(ConfigError, match=r"stage_share 0.8 \+ planning.after_share 0.3 is more than a cell's hours"):
        _planned(tmp_path, 10.0, early_stop=True, after_share=0.3)


@pytest.mark.parametrize(("rule", "says"), [
    ("{grace: 100}", "early_stop.grace 100 percent: the first rung must lie before the stage's end"),
    ("{unit: epochs, grace: 5}", "early_stop.grace 5 epochs: no cell trains past it (the longest trains 5 epochs"),
])
def test_a_rule_no_cell_can_reach_is_refused(tmp_path, rule, says):
    base = Path(__file__).resolve().parents[2] / "configs/runs/burgers_tiny.yaml"   # operator: 5 epochs
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nbase: {base}\nbudget: 1\nearly_stop: {rule}\nrounds:\n  - name: a\n    grid:\n"
                    "      - {key: stages.operator.lr, name: lr, values: [1.0e-3, 2.0e-3]}\n")
    with pytest.raises(ConfigError, match="s.yaml") as err:
        expand(path)
    assert says in str(err.value)


def test_a_base_that_is_not_there_is_named_with_the_sweep_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nbase: ../runs/burgers_tiny.yaml\nbudget: 1\nrounds:\n  - name: a\n    grid:\n"
                    "      - {key: stages.operator.lr, name: lr, values: [1.0e-3, 2.0e-3]}\n")
    with pytest.raises(ConfigError) as err:
        expand(path)
    assert str(err.value).startswith(f"{path}: base: ../runs/burgers_tiny.yaml is ") and "not a file" in str(err.value)


def test_interruptible_pricing_outside_vast_is_refused_naming_the_key(tmp_path):
    base = Path(__file__).resolve().parents[2] / "configs/runs/burgers_tiny.yaml"
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nbase: {base}\nbudget: 1\nprovider: {{kind: local, pricing: interruptible}}\n"
                    "rounds:\n  - name: a\n    list: {x: {}}\n")
    with pytest.raises(ConfigError, match=r"s.yaml") as err:
        expand(path)
    assert "provider.pricing 'interruptible'" in str(err.value) and "kind: vast" in str(err.value)
    path.write_text(path.read_text().replace("pricing: interruptible", "pricing: sometimes"))
    with pytest.raises(ConfigError, match="on-demand.*interruptible.*interruptible-fallback"):
        expand(path)
