"""The budget guard: spent + committed + expected cost of a new attempt must fit the budget.

spent      Σ price × billed time per attempt (GPU while running, storage while the instance exists,
           stopped included), reconciled upward with the provider's own figure where it gives one.
committed  per live attempt, the remaining expected cost: planning.hours_per_cell × price minus what it has
           run already, never less than one poll interval of burn.
A cell on a host of N GPUs is planned and reserved at N / provider.num_gpus times the sweep's prices (planning,
max_dph, the local price): every $/h of a sweep file is for a provider.num_gpus-GPU host. Once launched, an
attempt bills at its own offer's price.
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


def launch_price(spec: SweepSpec, num_gpus: int | None = None) -> float:
    """$/h a new attempt on a host of `num_gpus` GPUs (default provider.num_gpus) is planned at."""
    p = spec.provider
    price = p.price_per_hour if p.kind == "local" else spec.planning.price_per_hour
    return p.host_price(price, num_gpus or p.num_gpus)


def reserve_price(spec: SweepSpec, num_gpus: int | None = None) -> float:
    """$/h reserved for an instance whose price is not known yet (a create in flight): the most an offer for
    its host may cost (max_dph, scaled to its GPUs), never the planning guess."""
    p = spec.provider
    return p.host_price(p.price_per_hour if p.kind == "local" else p.max_dph, num_gpus or p.num_gpus)


def expected_attempt_cost(spec: SweepSpec, num_gpus: int | None = None) -> float:
    return spec.planning.hours_per_cell * launch_price(spec, num_gpus)


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
        price = a.price_per_hour or reserve_price(spec, a.num_gpus)
        begun = next((x for x in (a.started_at, a.created_at) if x is not None), now)
        remaining_s = max(spec.planning.hours_per_cell * 3600 - (now - begun), poll_interval)
        total += worst_rate(price, a.storage_per_hour or 0.0) * remaining_s / 3600
    return total


def burn_per_hour(attempts: Sequence[AttemptRow]) -> float:
    return sum(rate(a.state, a.price_per_hour or 0.0, a.storage_per_hour or 0.0) for a in attempts)


def worst_burn_per_hour(spec: SweepSpec, attempts: Sequence[AttemptRow]) -> float:
    return sum(worst_rate(a.price_per_hour or reserve_price(spec, a.num_gpus), a.storage_per_hour or 0.0)
               for a in attempts if _reserves(a))


def spent(attempts: Sequence[AttemptRow]) -> float:
    return sum(a.spent for a in attempts)


def can_launch(spec: SweepSpec, attempts: Sequence[AttemptRow], now: float,
               poll_interval: float = DEFAULT_POLL_S, num_gpus: int | None = None) -> tuple[bool, str]:
    """Does a new attempt on a host of `num_gpus` GPUs (default provider.num_gpus) fit the budget?"""
    s, c = spent(attempts), committed(spec, attempts, now, poll_interval)
    e = expected_attempt_cost(spec, num_gpus)
    if s + c + e <= spec.budget + 1e-12:
        return True, ""
    on = f" on {num_gpus} GPUs" if num_gpus and num_gpus > 1 else ""
    return False, (f"budget: spent ${s:.3f} + committed ${c:.3f} + next attempt{on} ${e:.3f} "
                   f"> budget ${spec.budget:.2f}")


def at_cap(spec: SweepSpec, attempts: Sequence[AttemptRow], poll_interval: float = DEFAULT_POLL_S,
           provider_reported: float | None = None) -> bool:
    """True when one more poll interval at worst-case burn could cross the budget, counting the spend as the
    higher of our accrual and the provider's own figure (its account credit used since the sweep began)."""
    so_far = max(spent(attempts), provider_reported or 0.0)
    return so_far + worst_burn_per_hour(spec, attempts) * poll_interval / 3600 >= spec.budget


def budget_view(spec: SweepSpec, attempts: Sequence[AttemptRow], now: float, remaining_gpus: Sequence[int] = (),
                poll_interval: float = DEFAULT_POLL_S) -> BudgetView:
    """`remaining_gpus`: the GPUs of each cell still to run (each planned at its own host's price)."""
    s = spent(attempts)
    c = committed(spec, attempts, now, poll_interval)
    burn = burn_per_hour(attempts)
    storage = sum(a.storage_per_hour or 0.0 for a in attempts if a.state == AttemptState.STOPPED)
    live_price = sum(a.price_per_hour or 0.0 for a in attempts if a.live)
    finish = now + c / live_price * 3600 if live_price > 0 else None
    return BudgetView(budget=spec.budget, spent=round(s, 6), committed=round(c, 6), burn_per_hour=burn,
                      storage_per_hour=storage,
                      projected_total=round(s + c + sum(expected_attempt_cost(spec, n) for n in remaining_gpus), 6),
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
    price = a.price_per_hour or reserve_price(spec, a.num_gpus)
    since = a.billed_until or a.created_at or now
    return a.spent + worst_rate(price, a.storage_per_hour) * max(0.0, now - since) / 3600
