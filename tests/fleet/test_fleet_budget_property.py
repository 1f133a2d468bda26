"""Property: over random fault schedules, what the provider really bills never exceeds the budget by more than
one poll interval of burn, and the sweep always settles with nothing left running."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usim_tui.fleet.clock import VirtualClock
from usim_tui.fleet.process.open import open_sweep
from usim_tui.fleet.providers.sim import OUTCOMES, Script, SimProvider

POLL = 5.0


def make(tmp, sweep, sim, clock):
    opened = open_sweep(sweep, provider=sim, ledger=tmp / "l.sqlite", runs_root=tmp / "runs", clock=clock,
                        poll_interval=POLL, run_preflight=False, log=lambda m: None, env={})
    return opened.ledger, opened.controller


scripts = st.builds(Script, outcome=st.sampled_from(OUTCOMES), pending_s=st.floats(0, 30),
                    loading_s=st.floats(0, 60), run_s=st.floats(1, 900))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(scripts, min_size=1, max_size=12), budget=st.floats(0.01, 0.3),
       list_faults=st.lists(st.integers(0, 200), max_size=10), no_capacity=st.integers(0, 3),
       price=st.floats(0.1, 3.0), empty=st.lists(st.integers(0, 200), max_size=6), destroy_s=st.floats(0, 3.0))
async def test_spend_never_exceeds_budget_by_more_than_one_poll(tmp_path_factory, demo_sweep, plan, budget,
                                                                 list_faults, no_capacity, price, empty, destroy_s):
    """Also with destroys paced at up to 3 s each and listings that come back empty while everything runs."""
    demo_sweep.spec.budget = budget
    clock = VirtualClock()
    it = iter(plan * 10)
    sim = SimProvider(clock, lambda spec: next(it, Script()), price=price, storage=0.05)
    sim.no_capacity = no_capacity
    sim.destroy_s = destroy_s
    led, ctl = make(tmp_path_factory.mktemp("b"), demo_sweep, sim, clock)
    worst_burn = demo_sweep.spec.concurrency * (price + 0.05)
    faults, empties = set(list_faults), set(empty)
    ticks = [0]
    sim.fail_next["list"] = 1 if 0 in faults else 0

    def check(ctl) -> None:   # after each tick: the bill holds; the next listing fails or is empty on schedule
        assert sim.true_cost() <= budget + worst_burn * POLL / 3600 + 1e-9
        ticks[0] += 1
        sim.fail_next["list"] = 1 if ticks[0] in faults else 0
        sim.empty_lists = 1 if ticks[0] in empties else 0

    why = await ctl.run(until=clock.now() + 2400 * POLL, on_tick=check)   # all-stuck plans use ~1200 polls
    assert why != "until" and (ctl.done or ctl.stalled)
    assert not sim.alive()
    assert led.snapshot().budget.spent >= sim.true_cost() - 1e-6


async def test_a_run_that_starts_and_exits_within_one_poll_is_billed(tmp_path, demo_sweep):
    """Found by the property above: started at the very instant of creation, exited before the first listing.
    The GPU second must not vanish from the ledger."""
    clock = VirtualClock()
    sim = SimProvider(clock, lambda spec: Script(outcome="done", pending_s=0.0, loading_s=1.8745303556406155e-22, run_s=1.0),
                      price=1.0, storage=0.05)
    led, ctl = make(tmp_path, demo_sweep, sim, clock)
    await ctl.run(until=clock.now() + 50 * POLL)
    assert ctl.done and not sim.alive()
    assert led.snapshot().budget.spent >= sim.true_cost() - 1e-9
