"""The budget guard: spent + committed + expected cost of a new attempt must fit the budget.

spent      Σ price × billed time per attempt (GPU while running, storage while the instance exists,
           stopped included), reconciled upward with the provider's own figure where it gives one.
committed  per live attempt, the remaining expected cost: planning.hours_per_cell × price minus what it has
           run already, never less than one poll interval of burn.
At the cap (spent + one poll of worst-case burn ≥ budget) every instance is destroyed with reason `budget`,
so spent never exceeds the budget by more than one poll interval of burn.
"""

from __future__ import annotations

from collections.abc import Sequence

from usim_core.sweep import SweepSpec
from usim_tui.fleet.store.rows import AttemptRow
from usim_tui.fleet.store.snapshot import BudgetView
from usim_tui.fleet.store.states import BILLS_GPU, NOT_BILLING, UNSETTLED, AttemptState

DEFAULT_POLL_S = 5.0


def launch_price(spec: SweepSpec) -> float:
    """$/h a new attempt is planned at (what the next launch is expected to cost)."""
    return spec.provider.price_per_hour if spec.provider.kind == "local" else spec.planning.price_per_hour


def reserve_price(spec: SweepSpec) -> float:
    """$/h reserved for an instance whose price is not known yet (a create in flight): the most an offer may
    cost (max_dph), never the planning guess."""
    return spec.provider.price_per_hour if spec.provider.kind == "local" else spec.provider.max_dph


def expected_attempt_cost(spec: SweepSpec) -> float:
    return spec.planning.hours_per_cell * launch_price(spec)


def rate(state: str, price: float, storage: float) -> float:
    """$/h billed in one observed state: GPU only while running; storage while it exists (not offline)."""
    if state in NOT_BILLING:
        return 0.0
    return (price if state in BILLS_GPU else 0.0) + storage


def worst_rate(price: float, storage: float) -> float:
    """$/h an instance could bill between two polls whatever it does meanwhile."""
    return price + storage


def accrue(prev_state: str, state: str, price: float, storage: float, seconds: float) -> float:
    """Cost of an interval between two observations: the higher of the two states' rates (a pending instance
    that became running just after the last poll has billed GPU for most of it)."""
    return max(rate(prev_state, price, storage), rate(state, price, storage)) * max(0.0, seconds) / 3600.0


def _reserves(a: AttemptRow) -> bool:
    """Live and not already destroyed at the provider: it may bill until the next poll and beyond."""
    return a.live and a.state != AttemptState.DESTROYING


def committed(spec: SweepSpec, attempts: Sequence[AttemptRow], now: float,
              poll_interval: float = DEFAULT_POLL_S) -> float:
    total = 0.0
    for a in attempts:
        if not _reserves(a):
            continue
        price = a.price_per_hour or reserve_price(spec)
        begun = next((x for x in (a.started_at, a.created_at) if x is not None), now)
        remaining_s = max(spec.planning.hours_per_cell * 3600 - (now - begun), poll_interval)
        total += worst_rate(price, a.storage_per_hour or 0.0) * remaining_s / 3600
    return total


def burn_per_hour(attempts: Sequence[AttemptRow]) -> float:
    return sum(rate(a.state, a.price_per_hour or 0.0, a.storage_per_hour or 0.0) for a in attempts)


def worst_burn_per_hour(spec: SweepSpec, attempts: Sequence[AttemptRow]) -> float:
    return sum(worst_rate(a.price_per_hour or reserve_price(spec), a.storage_per_hour or 0.0)
               for a in attempts if _reserves(a))


def spent(attempts: Sequence[AttemptRow]) -> float:
    return sum(a.spent for a in attempts)


def can_launch(spec: SweepSpec, attempts: Sequence[AttemptRow], now: float,
               poll_interval: float = DEFAULT_POLL_S) -> tuple[bool, str]:
    s, c, e = spent(attempts), committed(spec, attempts, now, poll_interval), expected_attempt_cost(spec)
    if s + c + e <= spec.budget + 1e-12:
        return True, ""
    return False, (f"budget: spent ${s:.3f} + committed ${c:.3f} + next attempt ${e:.3f} "
                   f"> budget ${spec.budget:.2f}")


def at_cap(spec: SweepSpec, attempts: Sequence[AttemptRow], poll_interval: float = DEFAULT_POLL_S,
           provider_reported: float | None = None) -> bool:
    """True when one more poll interval at worst-case burn could cross the budget, counting the spend as the
    higher of our accrual and the provider's own figure (its account credit used since the sweep began)."""
    so_far = max(spent(attempts), provider_reported or 0.0)
    return so_far + worst_burn_per_hour(spec, attempts) * poll_interval / 3600 >= spec.budget


def budget_view(spec: SweepSpec, attempts: Sequence[AttemptRow], now: float, remaining_cells: int = 0,
                poll_interval: float = DEFAULT_POLL_S) -> BudgetView:
    s = spent(attempts)
    c = committed(spec, attempts, now, poll_interval)
    burn = burn_per_hour(attempts)
    storage = sum(a.storage_per_hour or 0.0 for a in attempts if a.state == AttemptState.STOPPED)
    live_price = sum(a.price_per_hour or 0.0 for a in attempts if a.live)
    finish = now + c / live_price * 3600 if live_price > 0 else None
    return BudgetView(budget=spec.budget, spent=round(s, 6), committed=round(c, 6), burn_per_hour=burn,
                      storage_per_hour=storage,
                      projected_total=round(s + c + remaining_cells * expected_attempt_cost(spec), 6),
                      projected_finish=finish, attempt_price=launch_price(spec),
                      attempt_cost=round(expected_attempt_cost(spec), 6))


def billed(a: AttemptRow, state: str, now: float, started_at: float | None = None, prev: str | None = None) -> float:
    """The attempt's spend after billing the interval since it was last billed, at the higher rate of `prev`
    (the state recorded before this listing) and `state` (the one observed now). `started_at`: when the
    provider says it reached running (it may have run and stopped between two polls)."""
    since = a.billed_until or a.created_at or now
    prev = prev or a.state
    if prev in UNSETTLED:
        prev = state
    cost = accrue(prev, state, a.price_per_hour, a.storage_per_hour, now - since)
    if started_at and started_at >= since and state != AttemptState.RUNNING and prev != AttemptState.RUNNING:
        cost += a.price_per_hour * (now - started_at) / 3600
    spent_now = a.spent + cost
    if a.provider_cost is not None:
        spent_now = max(spent_now, a.provider_cost)    # reconcile upward with the provider's own figure
    return spent_now


def billed_blind(spec: SweepSpec, a: AttemptRow, now: float) -> float:
    """The attempt's spend when the listing failed: billed at its worst-case rate until we can see again."""
    price = a.price_per_hour or reserve_price(spec)
    since = a.billed_until or a.created_at or now
    return a.spent + worst_rate(price, a.storage_per_hour) * max(0.0, now - since) / 3600
