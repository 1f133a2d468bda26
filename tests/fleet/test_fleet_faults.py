"""The provider lies or stalls: empty listings, vanished instances, a kill in the middle of a destroy, destroys
paced at seconds each with hundreds of instances at the cap. Simulated provider, virtual clock."""

from __future__ import annotations

import pytest
from sim_support import make, ticks

from usim_core.sweep import Cell
from usim_tui.fleet.clock import VirtualClock
from usim_tui.fleet.control.reconcile import MASS_DROP
from usim_tui.fleet.process.open import open_sweep
from usim_tui.fleet.providers.base import ProviderError
from usim_tui.fleet.providers.sim import Script, SimProvider


def wide(sweep, n, concurrency=None, budget=None):
    sweep.cells = [Cell(name=f"c{i:03d}", round="r", tags=[], overrides={}, config=sweep.cells[0].config,
                        config_hash=f"h{i}") for i in range(n)]
    sweep.spec.concurrency = concurrency or n
    if budget is not None:
        sweep.spec.budget = budget
    return sweep


def running(led):
    return [a for a in led.attempts(led.sweeps()[-1]) if a.state == "running"]


async def test_one_empty_listing_relaunches_nothing_and_excludes_nothing(tmp_path, demo_sweep):
    clock, prov, led, ctl = make(tmp_path, demo_sweep, lambda spec: Script("done", run_s=3000))
    await ticks(ctl, clock, 6)
    before = {a.id: a.state for a in led.attempts("demo")}
    assert len(running(led)) == 2
    prov.empty_lists = 1            # one well-formed `{"instances": []}`
    await ticks(ctl, clock, 3)
    after = led.attempts("demo")
    assert {a.id for a in after} == set(before), "a replacement was launched"
    assert all(a.state == "running" and a.reason is None for a in after)
    assert not led.excluded_machines("demo")
    assert len(prov.alive()) == 2


async def test_a_listing_that_drops_many_live_instances_is_a_provider_fault(tmp_path, demo_sweep):
    sweep = wide(demo_sweep, 14)
    clock, prov, led, ctl = make(tmp_path, sweep, lambda spec: Script("done", run_s=3000))
    await ticks(ctl, clock, 6)
    assert len(running(led)) == 14 > MASS_DROP
    prov.empty_lists = 2            # two in a row: still not believed, never acted on
    await ctl.tick()
    assert "treated as a provider fault" in led.snapshot().provider_status
    clock.advance(5)
    await ticks(ctl, clock, 4)
    assert len(led.attempts("demo")) == 14 and len(running(led)) == 14 and not led.excluded_machines("demo")
    assert len(prov.alive()) == 14 and led.snapshot().provider_status == "ok"


async def test_a_real_disappearance_is_acted_on_after_a_second_listing(tmp_path, demo_sweep):
    clock, prov, led, ctl = make(tmp_path, demo_sweep, lambda spec: Script("done", run_s=3000))
    await ticks(ctl, clock, 6)
    gone = running(led)[0]
    prov.instances[gone.provider_id].destroyed_at = clock.now()   # destroyed outside usim
    await ctl.tick()
    assert led.attempt(gone.id).state == "running"                  # one listing: not yet believed
    clock.advance(5)
    await ctl.tick()
    a = led.attempt(gone.id)
    assert a.state == "destroyed" and a.reason == "offline" and a.machine_id in led.excluded_machines("demo")
    await ticks(ctl, clock, 2)
    assert len(led.attempts("demo")) == 3                           # its slot went to the next cell, once
    assert led.cell("demo", gone.cell).state == "pending"           # a machine fault: the cell runs again later


class Killed(BaseException):
    """Stands for SIGKILL in the middle of a provider call."""


async def test_an_interrupted_destroy_is_repaired_on_restart(tmp_path, demo_sweep):
    clock, prov, led, ctl = make(tmp_path, demo_sweep, lambda spec: Script("done", run_s=3000))
    await ticks(ctl, clock, 6)
    target = running(led)[0]
    real = prov.destroy

    async def dies(provider_id):
        raise Killed(provider_id)

    prov.destroy = dies
    led.enqueue("demo", "destroy", attempt_id=target.id)
    with pytest.raises(Killed):
        await ctl.tick()
    prov.destroy = real
    (open_intent,) = led.open_destroy_intents("demo")
    assert open_intent.attempt_id == target.id and prov.instances[target.provider_id].destroyed_at is None
    restarted = open_sweep(demo_sweep, provider=prov, ledger=tmp_path / "l.sqlite", runs_root=tmp_path / "runs",
                           clock=clock, poll_interval=5.0, run_preflight=False, log=lambda m: None, env={})
    led2, ctl2 = restarted.ledger, restarted.controller   # a fresh process: new connection, no memory
    await ctl2.tick()
    assert not led2.open_destroy_intents("demo")
    repaired = next(i for i in led2.intents("demo") if i.id == open_intent.id)
    assert repaired.outcome == "interrupted" and "destroying again" in repaired.detail
    assert prov.instances[target.provider_id].destroyed_at is not None


async def test_the_cap_holds_at_200_instances_with_paced_destroys(tmp_path, demo_sweep):
    """200 instances at $0.40/h, destroys paced at 3 s each: the cap destroys them in one bulk call, so the bill
    overshoots the budget by at most one poll of burn."""
    sweep = wide(demo_sweep, 200, budget=4.0)
    sweep.spec.provider = sweep.spec.provider.model_copy(update={"kind": "vast", "max_dph": 0.45})
    clock, prov, led, ctl = make(tmp_path, sweep, lambda spec: Script("done", run_s=10 * 3600), poll=30.0,
                                 price=0.40, storage=0.0)
    prov.destroy_s = 3.0
    why = await ctl.run(until=clock.now() + 12 * 3600)
    burn_per_poll = 200 * 0.40 * 30.0 / 3600
    assert why == "done" and not prov.alive()
    assert prov.true_cost() <= sweep.spec.budget + burn_per_poll
    assert any(a.reason == "budget" for a in led.attempts("demo"))


async def test_a_failing_bulk_destroy_leaves_all_leaked_and_costs_one_call_per_poll(tmp_path, demo_sweep):
    sweep = wide(demo_sweep, 14)
    clock, prov, led, ctl = make(tmp_path, sweep, lambda spec: Script("done", run_s=3000))
    await ticks(ctl, clock, 6)
    calls = []
    real = prov.destroy_many

    async def failing_once(ids):
        calls.append(len(ids))
        if len(calls) == 1:
            raise ProviderError("simulated 503")
        await real(ids)

    prov.destroy_many = failing_once
    await ctl.command("destroy", all=True)
    assert calls == [14] and {a.state for a in led.attempts("demo")} == {"leaked"}   # one call, not 14
    await ticks(ctl, clock, 3)
    assert calls == [14, 14] and not prov.alive()


def canary_sweep(tmp_path, sweep, script):
    clock = VirtualClock()
    prov = SimProvider(clock, lambda spec: script)
    opened = open_sweep(sweep, provider=prov, ledger=tmp_path / "l.sqlite", runs_root=tmp_path / "runs", clock=clock,
                        poll_interval=5.0, run_preflight=True, log=lambda m: None, env={})
    return clock, prov, opened.ledger, opened.controller


async def test_without_torch_the_first_instance_of_an_architecture_is_its_preflight(tmp_path, demo_sweep,
                                                                                    monkeypatch):
    from usim_tui.fleet.control import preflight
    monkeypatch.setattr(preflight, "torch_available", lambda: False)
    clock, prov, led, ctl = canary_sweep(tmp_path, demo_sweep, Script("done", run_s=600))
    await ctl.tick()
    assert len(prov.instances) == 1                       # the canary alone, though concurrency is 2
    for _ in range(6):                                    # it starts and logs its first metric step
        clock.advance(5)
        await ctl.tick()
    assert led.preflight_result("demo", preflight.fingerprint(demo_sweep.cells[0].config))[0]
    assert len(prov.instances) == 2                       # then the rest of the architecture launches


async def test_a_canary_that_dies_at_start_up_fails_its_architecture_for_one_instance(tmp_path, demo_sweep,
                                                                                      monkeypatch):
    from usim_tui.fleet.control import preflight
    monkeypatch.setattr(preflight, "torch_available", lambda: False)
    clock, prov, led, ctl = canary_sweep(tmp_path, demo_sweep, Script("crash", run_s=5))
    why = await ctl.run(until=clock.now() + 3600)
    assert why == "done" and len(prov.instances) == 1
    assert {(c.state, c.reason) for c in led.cells("demo")} == {("failed", "preflight")}
    ok, message = led.preflight_result("demo", preflight.fingerprint(demo_sweep.cells[0].config))
    assert not ok and "died at start-up" in message and "ImportError" in message
