"""Fault profiles: strict validation, seeded draws, and what the shipped profiles produce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usim_core.config import ConfigError
from usim_core.eval.schema import METRIC_KEYS
from usim_tui.cli import main
from usim_tui.emulator.faults import FaultProfile, load_faults, rng_for
from usim_tui.emulator.timeline import plan_instance

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_key_and_bad_values_name_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stuck_loadin: {p: 0.5}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*stuck_loadin.*stuck_loading"):
        load_faults(bad)
    bad.write_text("offline: {p: 1.5}\n")
    with pytest.raises(ConfigError, match=r"offline.p"):
        load_faults(bad)
    bad.write_text("image_pull_s: [100, 10]\n")
    with pytest.raises(ConfigError, match=r"low, high"):
        load_faults(bad)


def test_draws_are_seeded_per_label_and_seed_night_is_the_earlier_night():
    night = load_faults(ROOT / "configs/faults/seed_night.yaml")
    assert load_faults(ROOT / "configs/faults/none.yaml").stuck_loading.p == 0
    plans = [plan_instance(night, rng_for(7, f"usim:s:c{i}:1"), 0.0, label="x", bad_build=False, traps=True)
             for i in range(400)]
    again = plan_instance(night, rng_for(7, "usim:s:c3:1"), 0.0, label="x", bad_build=False, traps=True)
    assert again.phases == plans[3].phases and again.logs == plans[3].logs
    stuck = sum("stuck_loading" in p.faults for p in plans) / len(plans)
    assert 0.4 < stuck < 0.6
    for p in plans:
        if "stuck_loading" in p.faults:
            running = next(ph.at for ph in p.phases if ph.actual == "running")
            assert running > 3 * 3600, "stuck for hours"
    evals = [json.loads(line.removeprefix("@usim ")) for p in plans for _, line in p.logs if '"eval"' in line]
    assert {e["name"] for e in evals} == {"small", "full"}
    for e in evals:   # the eval JSON's flat keys, in range, so rehearsal ledgers have leaderboards
        assert set(e["metrics"]) == set(METRIC_KEYS) and 0.04 < e["metrics"]["nrmse_rollout"] < 0.16
    bad = plan_instance(night, rng_for(1, "b"), 0.0, label="x", bad_build=True, traps=True)
    run_at = next(ph.at for ph in bad.phases if ph.actual == "running")
    exit_at = next(ph.at for ph in bad.phases if ph.actual == "exited")
    assert exit_at - run_at <= 62 or "stuck_loading" in bad.faults


def test_without_the_trap_a_dead_script_keeps_the_gpu_billing():
    prof = FaultProfile(name="t", eval_failure={"p": 1.0})
    trapped = plan_instance(prof, rng_for(0, "a"), 0.0, label="a", bad_build=False, traps=True)
    bare = plan_instance(prof, rng_for(0, "a"), 0.0, label="a", bad_build=False, traps=False)
    assert trapped.phases[-1].actual == "exited" and bare.phases[-1].actual == "running"


def test_rehearse_cli_json_compares_usim_and_naive(capsys):
    # invented trainer output (--curves none): the rule never has a val curve to act on, so every cell runs to
    # the end and the faults alone decide (the recorded curves' night: tests/emulator/test_emulator_replay.py)
    rc = main(["rehearse", str(ROOT / "configs/sweeps/overnight_sota.yaml"), "--faults",
               str(Path(__file__).parent / "data" / "one_bad_cell.yaml"), "--seed", "3", "--json", "--curves", "none"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for policy in ("usim", "naive"):
        for key in ("finished", "cells", "spent", "budget", "cost_per_finished", "overshoot", "champion",
                    "champion_metric", "stopped_early"):
            assert key in out[policy]
    u, n = out["usim"], out["naive"]
    finals = u["finals"]   # each finished cell's val score: the champion is the best of them
    assert len(finals) == u["finished"] and u["stopped_early"] == 0
    assert u["champion"] == min(finals, key=finals.get) and u["champion_metric"] == finals[u["champion"]]
    assert u["cells"] == n["cells"] == 15
    assert u["finished"] == u["finishable"] == n["finishable"] == 13, "all but the duplicate and the bad build"
    assert u["overshoot"] == 0 and u["spent"] <= u["budget"]
    assert u["stuck_instances"] > 0 and u["stuck_to_replacement_s"]["max"] < 1800, \
        "a stuck instance is replaced within the startup deadline plus a few polls"
    assert n["stuck_to_replacement_s"]["never"] == n["stuck_instances"], "naive never replaces"
    # usim finishes 13 cells to naive's 8 and pays each one's install over SSH as a real host bills it, so the
    # night's totals are close; what a finished config costs is the comparison that means something
    assert u["finished"] > n["finished"] and u["cost_per_finished"] < 0.75 * n["cost_per_finished"]
    # the controller's estimate never under-counts, and the provider's own figure (credit used) is what it billed
    assert u["estimated_spend"] >= u["spent"] - 1e-3
    assert u["provider_reported_spend"] == pytest.approx(u["spent"], abs=1e-3)


def test_seed_night_crashes_every_relaunch_and_the_crash_loop_pause_stops_paying_for_it(capsys):
    """That night, a build shipped for the relaunches killed every one of them at start-up: the controller
    pauses launching after a few with the shared error, and spends less than the naive policy."""
    rc = main(["rehearse", str(ROOT / "configs/sweeps/overnight_sota.yaml"), "--faults",
               str(ROOT / "configs/faults/seed_night.yaml"), "--seed", "0", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    u, n = out["usim"], out["naive"]
    assert u["note"].startswith("launching paused:") and "ImportError at start-up" in u["note"]
    assert u["faults"]["bad_build"] < 12            # the relaunches already in flight, not all of them
    assert u["night_hours"] < 2                     # then nothing more was launched: it stopped paying
    assert u["overshoot"] == 0 and u["spent"] < n["spent"]


def test_the_served_emulator_honours_bad_build_cells_without_a_sweep_file():
    """`usim-tui emulator` never sees the sweep file: the first `cells` cells it is asked to create are bad."""
    from usim_tui.emulator.state import Emulator
    from usim_tui.fleet.clock import VirtualClock

    emu = Emulator(VirtualClock(), faults=FaultProfile(name="t", bad_build={"cells": 2}))
    labels = [f"usim:s:c{i}:1" for i in range(4)]
    assert [emu.is_bad_build(lb) for lb in labels] == [True, True, False, False]
    assert emu.is_bad_build("usim:s:c0:2") and not emu.is_bad_build("usim:s:c3:2")   # every attempt of a bad cell


def test_rehearsing_a_rule_without_curves_warns_that_it_judges_nothing(capsys):
    rc = main(["rehearse", "overnight_sota", "--faults", "none", "--curves", "none", "--night-hours", "1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["usim"]["stopped_early"] == 0
    assert "early_stop: rule judges nothing here: no recorded curves" in out["meta"]["warning"]


def test_rehearse_pricing_rents_at_a_bid_in_a_rough_market_and_counts_outbids_and_lost_results(capsys):
    """--pricing overrides the sweep's provider.pricing; the JSON says what the market did. The same seed on
    demand meets no outbid (issue 31's comparison is paired by seed)."""
    night = ["rehearse", "overnight_sota", "--faults", "rough_market", "--seed", "0", "--no-early-stop", "--json"]
    assert main([*night, "--pricing", "interruptible"]) == 0
    bid = json.loads(capsys.readouterr().out)
    assert main([*night, "--pricing", "on-demand"]) == 0
    od = json.loads(capsys.readouterr().out)
    assert bid["meta"]["pricing"] == "interruptible" and od["meta"]["pricing"] == "on-demand"
    for key in ("finished", "spent", "cost_per_finished", "lost_results", "outbids"):
        assert key in bid["usim"] and key in od["usim"]
    assert bid["usim"]["outbids"] > 0 and od["usim"]["outbids"] == 0
    assert bid["usim"]["lost_results"] == od["usim"]["lost_results"] == 0
    assert bid["usim"]["overshoot"] == 0 and bid["usim"]["finished"] > 0


def test_a_run_that_finished_on_a_host_whose_results_never_came_home_counts_as_lost():
    """lost_results: a trainer wrote `done` while its instance was alive, and the ledger has the cell neither
    finished nor stopped early; a cell whose results came home, or whose host died before `done`, is not lost."""
    from usim_tui.emulator.rehearse import PolicyResult, _summarise
    from usim_tui.emulator.state import Emulator
    from usim_tui.fleet.clock import VirtualClock

    emu = Emulator(VirtualClock(), faults=FaultProfile(name="t", provisioning_s=(1, 2), image_pull_s=(1, 2)),
                   gentle=True)
    offers = iter(m.offer_id for m in emu.machines)
    for cell in ("home", "lost", "died"):
        emu.create(next(offers), {"label": f"usim:s:{cell}:1", "onstart": "true"})
    emu.clock.advance(12 * 3600)   # the plain onstart path: each synthetic run writes `done` hours in
    died = next(i for i in emu.instances.values() if i.label == "usim:s:died:1")
    assert any('"kind":"done"' in line for _, line in died.plan.logs)
    died.destroyed_at = died.created_at + 60   # gone a minute in, long before its run could end
    res = PolicyResult("usim", 3, 5.0)
    _summarise(emu, res, 0.0, home={"home"})
    assert res.lost_results == 1
    naive = PolicyResult("naive", 3, 5.0)
    _summarise(emu, naive, 0.0)
    assert naive.lost_results is None, "the naive policy keeps no ledger: not known"
