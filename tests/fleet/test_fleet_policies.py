"""Pure policies and budget math, one behaviour per test."""

from __future__ import annotations

import pytest

from usim_core.sweep import ProviderSettings
from usim_tui.fleet.control import policies
from usim_tui.fleet.providers.base import (
    EXITED,
    FAILED,
    LOADING,
    OFFLINE,
    PENDING,
    RUNNING,
    STOPPED,
    Observed,
)
from usim_tui.fleet.store import budget
from usim_tui.fleet.store.rows import AttemptRow, CellRow
from usim_tui.fleet.store.states import CellState

S = ProviderSettings(startup_deadline_s=100, max_runtime_s=1000)


def att(**kw):
    base = dict(id=1, sweep="s", cell="c", attempt=1, label="usim:s:c:1", state=RUNNING, reason=None, done_event=0,
                error_event=None, started_event=1, created_at=0.0, started_at=10.0, provider_id="p",
                price_per_hour=1.0, storage_per_hour=0.0, spent=0.0, step=None)
    return AttemptRow(**{**base, **kw})


def cell(name, not_before=0.0):
    return CellRow(sweep="s", name=name, duplicate_of=None, ord=0, state=CellState.PENDING, reason=None,
                   not_before=not_before, counted_from=0)


def obs(state, msg="", code=None):
    return Observed(provider_id="p", label="usim:s:c:1", state=state, status_msg=msg, exit_code=code)


def test_assess_each_terminal_signature():
    assert policies.assess(att(done_event=1), obs(EXITED, code=0), 50, S).reason == "finished"
    assert policies.assess(att(error_event="boom"), obs(RUNNING), 50, S).message == "boom"
    v = policies.assess(att(), obs(PENDING, "x: OCI runtime create failed: y"), 50, S)
    assert v.reason == "container_error" and v.exclude_machine
    assert policies.assess(att(), obs(FAILED), 50, S).reason == "container_error"
    assert policies.assess(att(state=OFFLINE, state_since=0.0), obs(OFFLINE), S.offline_grace_s + 1, S).reason == "offline"
    assert policies.assess(att(state=OFFLINE, state_since=0.0), obs(OFFLINE), 50, S) is None   # may come back
    assert policies.assess(att(), obs(STOPPED), 50, S).reason == "outbid"
    v = policies.assess(att(), obs(EXITED, code=1), 50, S, "Traceback\nImportError: no module x\n")
    assert v.reason == "exited_error" and "exit code 1" in v.message and "ImportError: no module x" in v.message
    assert policies.assess(att(), obs(RUNNING), 50, S) is None


def test_assess_deadlines():
    assert policies.assess(att(started_event=0), obs(LOADING), 99, S) is None
    v = policies.assess(att(started_event=0), obs(LOADING, "Pulling image"), 101, S)
    assert v.reason == "startup_timeout" and v.exclude_machine and "Pulling image" in v.message
    assert policies.assess(att(), obs(RUNNING), 1011, S).reason == "max_runtime"


def test_crash_loop_needs_the_same_error_across_cells():
    f = policies.Failure
    same = [f("a", "exited_error", "ImportError: x at 0x7f3a1", 0), f("b", "exited_error", "ImportError: x at 0x9", 1),
            f("c", "exited_error", "ImportError: x at 0x11", 2)]
    assert "ImportError" in policies.crash_loop(same, 10)
    assert policies.crash_loop(same, 10_000) is None                       # outside the window
    assert policies.crash_loop(same[:2], 10) is None                       # two failures, two cells: not yet
    assert policies.crash_loop([*same[:2], f("a", "exited_error", "ImportError: x at 0x5", 3)], 10)  # 3 across 2 cells
    mixed = [f("a", "exited_error", "ImportError", 0), f("b", "exited_error", "KeyError", 0),
             f("c", "offline", "ImportError", 0)]
    assert policies.crash_loop(mixed, 10) is None
    late = [f(c, "exited_error", "full evaluation exited with status 1", 0, early=False) for c in "abcd"]
    assert policies.crash_loop(late, 10) is None                           # after training progress: independent
    oci = [f(c, "container_error", "OCI runtime create failed", 0) for c in "abcd"]
    assert policies.crash_loop(oci, 10) is None                            # a machine fault, not the build
    assert policies.is_early(att(step=None)) and not policies.is_early(att(step=40))


def test_machine_faults_have_their_own_limit():
    def a(n, reason, state="destroyed"):
        return att(attempt=n, reason=reason, state=state)
    atts = [a(1, "startup_timeout"), a(2, "offline"), a(3, "exited_error"), a(4, "outbid"), a(5, "no_capacity"),
            a(6, "container_error"), a(7, None, RUNNING)]
    assert policies.attempts_used(atts) == 2                               # the crash and the live one
    assert policies.machine_faults_used(atts) == 4
    trained = att(attempt=4, reason="outbid", state="destroyed", step=40)
    assert policies.machine_faults_used([*atts[:3], trained, *atts[4:]]) == 4, "progress alone is not kept"
    banked = trained._replace(checkpoint_at=100.0, checkpoint="operator epoch 2")
    assert policies.machine_faults_used([*atts[:3], banked, *atts[4:]]) == 3, \
        "an outbid after a resume point came home costs the cell nothing: the next attempt resumes from it"
    assert policies.exhausted(atts, 0, max_attempts=3, max_machine_faults=6) is None
    assert "max_attempts=2" in policies.exhausted(atts, 0, max_attempts=2, max_machine_faults=6)
    assert "max_machine_faults=4" in policies.exhausted(atts, 0, max_attempts=3, max_machine_faults=4)
    assert policies.exhausted(atts, 4, max_attempts=2, max_machine_faults=2) is None   # relaunch resets counts


def test_next_launches_respects_concurrency_attempts_backoff_and_live():
    cells = [cell(n) for n in "abc"] + [cell("d", not_before=100)]
    by = {"a": [att(cell="a", state="leaked")],                            # unconfirmed destroy: never relaunch
          "b": [att(cell="b", state="destroyed", reason="exited_error"),
                att(cell="b", attempt=2, state="destroyed", reason="exited_error")]}
    assert policies.next_launches(cells, by, 50, concurrency=4, max_attempts=2, blocked=False) == ["c"]
    assert policies.next_launches(cells, by, 50, concurrency=1, max_attempts=2, blocked=False) == []
    assert policies.next_launches(cells, by, 150, concurrency=4, max_attempts=3, blocked=False) == ["c", "d", "b"]
    assert policies.next_launches(cells, by, 150, concurrency=4, max_attempts=3, blocked=True) == []


def test_surplus_live_keeps_the_started_attempt():
    a1 = att(id=1, attempt=1, started_event=0)
    a2 = att(id=2, attempt=2, started_event=1)
    assert policies.surplus_live([a1, a2]) == [1]
    assert policies.surplus_live([a1]) == []


def test_budget_accrual_launch_and_cap(demo_sweep):
    spec = demo_sweep.spec
    assert budget.accrue(PENDING, RUNNING, 1.0, 0.1, 3600) == 1.1       # higher of the two rates
    assert budget.accrue(STOPPED, STOPPED, 1.0, 0.1, 3600) == 0.1        # storage bills while stopped
    assert budget.accrue(OFFLINE, OFFLINE, 1.0, 0.1, 3600) == 0.0
    live = [att(started_at=0.0, spent=0.4)]
    ok, why = budget.can_launch(spec, live, now=0.0)
    assert ok  # 0.4 + 0.05 h x $1 + 0.0175 <= 0.5
    ok, why = budget.can_launch(spec, [att(started_at=0.0, spent=0.45)], now=0.0)
    assert not ok and "budget" in why
    assert budget.committed(spec, live, now=10_000) == 1.0 * 5.0 / 3600  # at least one poll of burn
    assert budget.at_cap(spec, [att(spent=0.499)])
    assert not budget.at_cap(spec, [att(spent=0.49)])
    assert budget.at_cap(spec, [att(spent=0.49)], provider_reported=0.499)   # the provider's bill counts too


def test_a_create_in_flight_is_reserved_at_max_dph_not_the_planning_price(demo_sweep):
    spec = demo_sweep.spec
    spec.provider = spec.provider.model_copy(update={"kind": "vast", "max_dph": 0.9})
    in_flight = att(state="launching", price_per_hour=0.0, started_at=None, created_at=0.0)
    assert budget.worst_burn_per_hour(spec, [in_flight]) == 0.9 > spec.planning.price_per_hour
    assert budget.committed(spec, [in_flight], now=0.0) == pytest.approx(0.9 * spec.planning.hours_per_cell)


def test_a_cell_on_n_gpus_is_planned_and_reserved_at_n_times_the_sweeps_prices(demo_sweep):
    """Every $/h of a sweep file is for a host of provider.num_gpus GPUs; a cell on N GPUs costs N / that times
    it: planned (the launch check, the projection) and reserved while its offer's price is unknown. Once
    launched, an attempt bills at its own offer's price, whatever its GPUs."""
    spec = demo_sweep.spec
    spec.provider = spec.provider.model_copy(update={"kind": "vast", "max_dph": 0.45})
    hours, plan = spec.planning.hours_per_cell, spec.planning.price_per_hour
    assert budget.expected_attempt_cost(spec, 2) == pytest.approx(2 * hours * plan) == spec.planned_cost(2)
    assert budget.expected_attempt_cost(spec) == pytest.approx(hours * plan) == spec.planned_cost_per_cell
    in_flight = att(state="launching", price_per_hour=0.0, started_at=None, created_at=0.0, num_gpus=2)
    assert budget.worst_burn_per_hour(spec, [in_flight]) == pytest.approx(0.9)
    assert budget.worst_burn_per_hour(spec, [in_flight._replace(price_per_hour=0.61)]) == 0.61   # its offer's
    spent = spec.budget - 1.5 * hours * plan          # room for a 1-GPU attempt, not for a 2-GPU one
    ok1, _ = budget.can_launch(spec, [att(state="destroyed", spent=spent)], now=0.0, num_gpus=1)
    ok2, why = budget.can_launch(spec, [att(state="destroyed", spent=spent)], now=0.0, num_gpus=2)
    assert ok1 and not ok2 and "next attempt on 2 GPUs" in why
    view = budget.budget_view(spec, [], now=0.0, remaining_gpus=[1, 2, 4])
    assert view.projected_total == pytest.approx(7 * hours * plan)
    quad = spec.provider.model_copy(update={"num_gpus": 4})   # prices given for 4-GPU hosts
    assert quad.host_price(1.6, 1) == pytest.approx(0.4) and quad.host_price(1.6, 8) == pytest.approx(3.2)
