"""Recorded learning curves replayed by the emulator's hosts (usim_tui/emulator/replay.py, curves/*.json)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from usim_core.config import ConfigError
from usim_core.sweep import expand
from usim_tui.emulator.faults import FaultProfile, load_faults, rng_for
from usim_tui.emulator.replay import default_path, load_curves
from usim_tui.emulator.state import Emulator
from usim_tui.emulator.timeline import EVAL_RANGES, plan_instance
from usim_tui.fleet.clock import VirtualClock
from usim_tui.fleet.store.ingest import ingest

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "curves" / "overnight_sota.json"
PROFILE = FaultProfile(name="none")


@pytest.fixture(scope="module")
def curves():
    return load_curves(FILE)


def events_of(plan) -> list[dict]:
    return [json.loads(line.removeprefix("@usim ")) for _, line in plan.logs if line.startswith("@usim ")]


def plan_for(cell: str, curves, seed: int = 0, rng_key: str | None = None):
    label = f"usim:overnight_sota:{cell}:1"
    replay = curves.replay(cell, rng_for(seed, f"curve:{label}"))
    return plan_instance(PROFILE, rng_for(seed, rng_key or label), 0.0, label=label, bad_build=False, traps=True,
                         replay=replay), replay


def test_the_committed_file_covers_every_cell_of_the_sweep_and_is_the_default(curves):
    sweep = expand(ROOT / "configs/sweeps/overnight_sota.yaml")
    assert {c.name for c in sweep.cells} <= set(curves.cells)
    assert default_path("overnight_sota") == FILE
    assert default_path("no_such_sweep") is None
    assert curves.cells["round_c_extended"].epochs > curves.cells["round_c_cap128_ttc"].epochs, \
        "extended trains longer, as in the sweep"


def test_replayed_events_are_the_trainers_and_the_ledger_ingests_the_val_curve(curves):
    plan, replay = plan_for("round_b_cap128", curves)
    events = events_of(plan)
    starts = [e for e in events if e["kind"] == "stage_start"]
    assert [e["stage"] for e in starts] == ["codec", "operator", "diffusion_residual", "consistency_distill"]
    op = next(e for e in starts if e["stage"] == "operator")
    assert {"epochs", "steps", "steps_per_epoch", "resumed_at_step"} <= set(op)
    assert op["epochs"] == curves.cells["round_b_cap128"].epochs == len(replay.val)
    per_epoch = [e for e in events if e["kind"] == "metric" and e["stage"] == "operator"]
    assert [e["epoch"] for e in per_epoch] == list(range(op["epochs"]))
    scored = {"val/operator/nrmse_frame", "val/operator/best_nrmse_frame"}
    assert replay.score, "the committed file carries the trainer's per-epoch rollout score"
    assert all(set(e["metrics"]) == {"train/operator/loss", "val/operator/loss", "val/operator/best", "epoch"} | scored
               and e["total_steps"] == op["steps"] for e in per_epoch)
    assert [e["metrics"]["val/operator/nrmse_frame"] for e in per_epoch] == pytest.approx(replay.score, rel=1e-5)

    got = ingest(events)
    series = [(step, m["val/operator/loss"]) for step, m, _ in got.metrics if "val/operator/loss" in m]
    assert [v for _, v in series] == pytest.approx(replay.val, rel=1e-5)
    assert [s for s, _ in series] == sorted(s for s, _ in series) and series[0][0] == op["steps_per_epoch"]
    best = [m["val/operator/best"] for _, m, _ in got.metrics if "val/operator/best" in m]
    assert best == pytest.approx([min(replay.val[:i + 1]) for i in range(len(replay.val))], rel=1e-5)
    assert got.small_metrics is not None and set(EVAL_RANGES) <= set(got.small_metrics)
    assert got.small_metrics["nrmse_frame"] == pytest.approx(replay.final["nrmse_frame"], rel=1e-5)
    assert got.attempt.get("done_event") == 1


def test_a_replayed_score_is_off_the_same_way_as_its_final_metric(curves):
    """The per-epoch rollout score and the final nrmse_frame are the same model's rollouts: one draw moves both."""
    cell = min(curves.cells, key=lambda n: len(curves.cells[n].runs))
    run = curves.cells[cell].runs[0]
    for seed in range(20):
        r = curves.replay(cell, rng_for(seed, "x"))
        z_final = math.log(r.final["nrmse_frame"] / run.final["nrmse_frame"]) / curves.final_sigma
        z_last = math.log(r.score[-1] / run.score[-1]) / curves.score_sigma[min(len(run.score), len(
            curves.score_sigma)) - 1]
        assert z_last == pytest.approx(z_final, abs=1e-6)


def test_a_costlier_cell_trains_its_operator_longer(curves):
    def total(name: str) -> float:
        c = curves.cells[name]
        return c.cpu_s_per_epoch * c.epochs

    cheap, dear = min(curves.cells, key=total), max(curves.cells, key=total)
    assert total(dear) > 1.2 * total(cheap), "the recording has cells of different cost"

    def operator_span(cell: str) -> float:
        plan, _ = plan_for(cell, curves, rng_key="same draws for both")   # the profile's draw is the same
        ev = events_of(plan)
        start = next(e["t"] for e in ev if e["kind"] == "stage_start" and e["stage"] == "operator")
        end = next(e["t"] for e in ev if e["kind"] == "stage_end" and e["stage"] == "operator")
        return end - start

    assert operator_span(dear) / operator_span(cheap) == pytest.approx(total(dear) / total(cheap), rel=1e-3)


def test_noise_is_seeded_and_of_the_measured_size(curves):
    cell = min(curves.cells, key=lambda n: len(curves.cells[n].runs))   # one recorded run: only the noise varies
    recorded = curves.cells[cell].runs[0].val
    again = [curves.replay(cell, rng_for(5, "x")).val for _ in range(2)]
    assert again[0] == again[1], "same seed, same curve"
    other = curves.replay(cell, rng_for(6, "x")).val
    assert other != again[0]
    # log(replayed / recorded) is one standard-normal draw times the measured sigma of each epoch
    zs = []
    for seed in range(400):
        val = curves.replay(cell, rng_for(seed, "x")).val
        z = [math.log(v / r) / curves.sigma_at(e) for e, (v, r) in enumerate(zip(val, recorded, strict=True))]
        assert max(z) - min(z) < 1e-6
        zs.append(z[0])
    assert statistics.pstdev(zs) == pytest.approx(1.0, abs=0.15)
    assert abs(statistics.fmean(zs)) < 0.15


def test_a_cells_expected_metric_is_what_its_replays_scatter_around(curves):
    cell = max(curves.cells, key=lambda n: len(curves.cells[n].runs))   # several recorded runs: their centre
    runs = curves.cells[cell].runs
    assert len(runs) >= 2
    centre = curves.expected(cell)
    assert min(r.final["nrmse_frame"] for r in runs) < centre < max(r.final["nrmse_frame"] for r in runs)
    logs = [math.log(curves.replay(cell, rng_for(seed, "x")).final["nrmse_frame"]) for seed in range(600)]
    assert statistics.fmean(logs) == pytest.approx(math.log(centre), abs=0.03)
    assert curves.expected("no_such_cell") is None


def test_a_cell_without_curves_keeps_the_invented_output(curves):
    label = "usim:overnight_sota:no_such_cell:1"
    emu = Emulator(VirtualClock(), faults=PROFILE, curves=curves)
    assert emu.replay_for(label) is None and emu.replay_for("not-ours") is None
    plain = plan_instance(PROFILE, rng_for(0, label), 0.0, label=label, bad_build=False, traps=True)
    assert any(e["kind"] == "metric" and set(e["metrics"]) == {"loss"} for e in events_of(plain))
    assert emu.replay_for("usim:overnight_sota:round_b_cap64:2") is not None


def test_curves_leave_the_faults_a_host_meets_unchanged(curves):
    """Same seed, same machines: a host's faults are drawn before its script, and its replay from its own draws."""
    night = load_faults(ROOT / "configs/faults/seed_night.yaml")
    hit = set()
    for i in range(30):
        label = f"usim:overnight_sota:round_b_cap64:{i + 1}"
        a = plan_instance(night, rng_for(3, label), 0.0, label=label, bad_build=False, traps=True, over_ssh=True)
        b = plan_instance(night, rng_for(3, label), 0.0, label=label, bad_build=False, traps=True, over_ssh=True,
                          replay=curves.replay("round_b_cap64", rng_for(3, f"curve:{label}")))
        assert a.faults == b.faults and a.interrupt_at == b.interrupt_at
        assert [(p.at, p.actual) for p in a.phases] == [(p.at, p.actual) for p in b.phases]
        assert a.script != b.script
        hit.update(a.faults)
    assert hit, "the profile drew some faults in these 30 hosts"


@pytest.mark.parametrize(("edit", "key"), [
    (lambda d: d.pop("noise"), "noise: missing"),
    (lambda d: d["cells"]["round_b_cap64"].update(cpu_s_per_epoch=-1), "cells.round_b_cap64.cpu_s_per_epoch"),
    (lambda d: d["cells"]["round_b_cap64"]["runs"][0].update(val=[]), "cells.round_b_cap64.runs[0].val: empty"),
    (lambda d: d["cells"]["round_b_cap64"]["runs"][0]["final"].pop("nrmse_frame"),
     "cells.round_b_cap64.runs[0].final.nrmse_frame: missing"),
    (lambda d: d["cells"]["round_b_cap64"].update(epochs="8"), "cells.round_b_cap64.epochs: expected an integer"),
])
def test_a_malformed_file_is_refused_naming_the_file_and_the_key(tmp_path, edit, key):
    data = json.loads(FILE.read_text())
    edit(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        load_curves(bad)
    assert str(bad) in str(err.value) and key in str(err.value)


def test_an_unreadable_file_is_refused_naming_it(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for path in (broken, tmp_path / "absent.json"):
        with pytest.raises(ConfigError, match=str(path)):
            load_curves(path)


def test_a_rehearsal_fills_the_ledger_with_the_replayed_val_curves_and_the_rule_acts_on_them(curves, tmp_path):
    """The real controller over HTTP and SSH, on the virtual clock, with the sweep's stopping rule: every attempt's
    ledger holds its host's replayed val/operator/loss, one point per epoch (a stopped one up to its stop, a
    finished one all of it, with its small eval's nrmse_frame), and the rule, which saw no curve in the invented
    output, now stops cells."""
    import asyncio

    from usim_tui.emulator.rehearse import rehearse_usim
    from usim_tui.fleet.store.ledger import Ledger

    sweep = expand(ROOT / "configs/sweeps/overnight_sota.yaml")
    seen = {}
    res = asyncio.run(rehearse_usim(sweep, load_faults("none"), seed=1, root=tmp_path, curves=curves,
                                    on_tick=lambda ctl, emu: seen.setdefault("emu", emu)))
    assert res.finished > 0 and res.stopped_early > 0 and res.finished + res.stopped_early == 14
    replays = seen["emu"].replays
    ledger = Ledger(tmp_path / "ledger.sqlite", read_only=True)
    try:
        ended = [a for a in ledger.attempts(sweep.name) if a.reason in ("finished", "stopped_early")]
        series = ledger.metric_series([a.id for a in ended], ["val/operator/loss"])
        cells = {c.name: c for c in ledger.cells(sweep.name)}
        for a in ended:
            vals = [v for _, v in series[a.id].get("val/operator/loss", [])]
            full = replays[a.label].val
            assert vals and vals == pytest.approx(full[:len(vals)], rel=1e-5), a.label
            if a.reason == "finished":
                assert len(vals) == len(full)
                assert cells[a.cell].metrics["nrmse_frame"] == pytest.approx(replays[a.label].final["nrmse_frame"],
                                                                             rel=1e-5)
            else:
                assert len(vals) < len(full), "stopped before its last epoch"
    finally:
        ledger.close()
