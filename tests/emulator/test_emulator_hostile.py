"""The fleet against the emulator's real-Vast unkindness (faults.VastRealism), on a virtual clock: each test is a
failure reproduced on the earlier fleet (issue 32), now survived."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from usim_core.sweep import expand
from usim_tui.emulator.faults import FaultProfile, load_faults
from usim_tui.emulator.rehearse import rehearse_usim
from usim_tui.fleet.providers.base import parse_label
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.states import EndReason

ROOT = Path(__file__).resolve().parents[2]
GENTLE_VAST = {"listing_lag_s": (0, 0), "slow_create": {"p": 0}, "ssh_refused_s": (0, 0), "ssh_dead": {"p": 0}}


def sweep_file(tmp: Path, cells: int = 1, **provider) -> Path:
    path = tmp / "night.yaml"
    path.write_text(yaml.safe_dump({
        "name": "night", "base": str(ROOT / "configs/runs/burgers_tiny.yaml"), "budget": 5.0,
        "concurrency": cells, "max_attempts": 3,
        "provider": {"kind": "vast", "startup_deadline_s": 900, "max_runtime_s": 10800, **provider},
        "planning": {"price_per_hour": 0.35, "hours_per_cell": 1.0},
        "rounds": [{"name": "r", "list": {f"c{i}": {"seed": i} for i in range(cells)}}],
    }))
    return path


def profile(**kw) -> FaultProfile:
    return FaultProfile.model_validate({"name": "t", "provisioning_s": (5, 10), "image_pull_s": (20, 40), **kw})


def live_by_label(emu) -> dict[str, int]:
    out: dict[str, int] = {}
    for inst in emu.instances.values():
        if inst.destroyed_at is None:
            out[inst.label] = out.get(inst.label, 0) + 1
    return out


async def test_a_tick_whose_listing_failed_launches_nothing(tmp_path):
    """Reproduced on main: every listing answered by a CDN's HTML page (HTTP 200), and an instance was bought
    44 s into the sweep though no listing had succeeded."""
    sweep = expand(sweep_file(tmp_path))
    res = await rehearse_usim(sweep, profile(api={"html_list_p": 1.0}, vast=GENTLE_VAST), night_h=0.5,
                              poll_interval=10.0, root=tmp_path)
    assert res.instances == 0, "nothing is bought while no listing succeeds"
    led = Ledger(tmp_path / "ledger.sqlite")
    assert led.sweep_row("night").provider_status.startswith("list failed: Vast API: instance list failed (HTTP 200)")


async def test_a_create_answered_past_its_timeout_while_the_listing_lags_buys_once(tmp_path):
    """Reproduced on main: the first create answered after 25 s (its timeout 20 s) and the listing lagging: two
    instances bought under one label, both billing for the cell's whole life."""
    sweep = expand(sweep_file(tmp_path))
    prof = profile(vast={**GENTLE_VAST, "slow_create": {"p": 1.0, "duration_s": (150, 150)},
                         "listing_lag_s": (200, 200)})
    twice: list[dict[str, int]] = []
    res = await rehearse_usim(sweep, prof, night_h=3.0, poll_interval=10.0, root=tmp_path,
                              on_tick=lambda ctl, emu: twice.extend([n for n in [live_by_label(emu)]
                                                                     if any(v > 1 for v in n.values())]))
    assert res.instances == 1, "one create, one instance"
    assert not twice, f"two live instances under one label after a poll: {twice[:3]}"
    assert res.finished == 1
    led = Ledger(tmp_path / "ledger.sqlite")
    kinds = [e.kind for _, e in led.journal_after("night")]
    assert "create_error" in kinds and "adopted" in kinds, "the unanswered create is said, then settled by label"


async def test_a_second_instance_under_one_label_is_destroyed_within_one_poll(tmp_path):
    """Reproduced on main: the reconcile keyed the listing by label, so one of two instances with one label was
    never seen: it billed for the cell's whole life."""
    sweep = expand(sweep_file(tmp_path))
    seen: dict[str, object] = {}

    def inject(ctl, emu) -> None:
        if "dup" in seen:
            if "checked" not in seen:
                seen["checked"] = emu.instances[seen["dup"]].destroyed_at
                seen["spent"] = ctl.ledger.attempts("night")[0].spent
            return
        a = ctl.ledger.attempts("night")[0]
        if a.state == "running":   # a create that answered late, or a second buy: same label, another machine
            offer = emu.offers(64)[0]["id"]
            inst = next(iter(emu.instances.values()))
            status, body = emu.create(offer, {"label": a.label, "onstart": inst.onstart, "runtype": inst.runtype,
                                              "disk": 64, "image": inst.image})
            assert status == 200
            seen["dup"], seen["kept"], seen["spent_before"] = body["new_contract"], a.provider_id, a.spent

    res = await rehearse_usim(sweep, profile(vast=GENTLE_VAST), night_h=3.0, poll_interval=10.0, root=tmp_path,
                              on_tick=inject)
    assert seen.get("checked") is not None, "destroyed at the first poll that listed it"
    assert res.finished == 1 and res.instances == 2
    led = Ledger(tmp_path / "ledger.sqlite")
    dup = [e for _, e in led.journal_after("night") if e.kind == "duplicate"]
    assert dup and dup[0].data["provider_id"] == str(seen["dup"]) and dup[0].data["kept"] == seen["kept"]
    assert seen["spent"] > seen["spent_before"], "the duplicate's bill is counted in the attempt's spend"


async def test_dead_ssh_is_its_own_reason_and_two_hosts_in_a_row_pause_launching(tmp_path):
    """Reproduced on main: a host whose listed SSH port never answered was retried every 180 s and destroyed 609 s
    after its create as `startup_timeout`; with every host's SSH dead (three cells) launching never paused."""
    sweep = expand(sweep_file(tmp_path, cells=3))
    deadline = sweep.spec.provider.ssh_deadline_s
    res = await rehearse_usim(sweep, profile(vast={**GENTLE_VAST, "ssh_dead": {"p": 1.0}}), night_h=2.0,
                              poll_interval=10.0, root=tmp_path)
    led = Ledger(tmp_path / "ledger.sqlite")
    ended = [a for a in led.attempts("night") if a.ended_at is not None]
    assert ended and {a.reason for a in ended} == {EndReason.SSH_UNREACHABLE}
    for a in ended:
        assert a.ended_at - a.started_at <= deadline + 3 * 10.0, "given up at the SSH deadline, not the start-up one"
    row = led.sweep_row("night")
    assert row.crash_loop and "SSH did not answer the same way on 2 hosts in a row" in row.crash_loop
    assert res.instances <= 3, "launching paused before another host was bought"
    assert "launching paused" in res.note


@pytest.mark.parametrize("seed", [0, 1])
def test_the_seed_night_with_its_build_fixed_names_every_fault_it_met(tmp_path, seed):
    """Each fault drawn for an instance shows in the journal of its attempt, under the name a person reads."""
    import asyncio

    sweep = expand(ROOT / "configs/sweeps/overnight_sota.yaml")
    night = load_faults(ROOT / "configs/faults/seed_night_fixed.yaml")
    emus = []
    asyncio.run(rehearse_usim(sweep, night, seed, root=tmp_path, on_tick=lambda ctl, emu: emus.append(emu)))
    emu, led = emus[-1], Ledger(tmp_path / "ledger.sqlite")
    explains = {"stuck_loading": EndReason.STARTUP_TIMEOUT, "slow_pull": EndReason.STARTUP_TIMEOUT,
                "ssh_dead": EndReason.SSH_UNREACHABLE, "offline": EndReason.OFFLINE,
                "oci_error": EndReason.CONTAINER_ERROR, "eval_failure": EndReason.EXITED_ERROR}
    attempts = {a.label: a for a in led.attempts(sweep.name)}
    met = 0
    for inst in emu.instances.values():
        a = attempts.get(inst.label)
        if a is None or parse_label(inst.label) is None or a.ended_at is None:
            continue
        faults = inst.plan.faults
        mine = led.attempt_events(a.id, limit=10_000)
        if a.reason not in (EndReason.FINISHED, EndReason.USER, EndReason.BUDGET, EndReason.ORPHAN):
            met += 1   # every failure is one of the faults it met, under that fault's name
            assert a.reason in {explains[f] for f in faults if f in explains}, f"{inst.label}: {a.reason} {faults}"
        if "ssh_dead" in faults and a.started_at is not None and a.reason != EndReason.STARTUP_TIMEOUT:
            met += 1
            assert a.reason == EndReason.SSH_UNREACHABLE
        if "eval_failure" in faults and a.started_event and a.reason == EndReason.EXITED_ERROR:
            met += 1
            assert any("full evaluation exited" in (e.message or "") for e in mine)
        if "slow_create" in faults and inst.answer_delay_s > sweep.spec.provider.create_timeout_s:
            met += 1
            assert any(e.kind == "create_error" for e in mine), f"{inst.label}: the late create is not said"
    assert met >= 5, "the night met its faults"


async def test_a_destroy_soon_after_its_create_is_confirmed_by_the_next_listing(tmp_path):
    """Patience with lagging listings is for instances never listed yet: one destroyed a minute after its
    create is confirmed gone at the next listing, not left `destroying` (and live) for create_settle_s."""
    sweep = expand(sweep_file(tmp_path))
    since: dict[int, float] = {}
    longest = [0.0]

    def watch(ctl, emu) -> None:
        now = emu.clock.now()
        for a in ctl.ledger.attempts("night"):
            if a.state == "destroying":
                since.setdefault(a.id, now)
                longest[0] = max(longest[0], now - since[a.id])
    prof = profile(vast=GENTLE_VAST | {"listing_lag_s": (30, 30)}, bad_build={"from_attempt": 1, "exit_after_s": (10, 20)})
    res = await rehearse_usim(sweep, prof, night_h=1.0, poll_interval=10.0, root=tmp_path, on_tick=watch)
    assert res.instances == 3 and since, "every attempt crashed and was destroyed"
    assert longest[0] <= 3 * 10.0, f"a destroy waited {longest[0]:.0f} s for its confirmation"
