"""The budget guard: spent + committed + expected cost of a new attempt must fit the budget.

spent      Σ price × billed time per attempt (GPU while running, storage while the instance exists,
           stopped included), reconciled upward with the provider's own figure where it gives one.
committed  per live attempt, the remaining expected cost: planning.hours_per_cell × price minus what it has
           run already, never less than one poll interval of burn.
At the cap (spent + one poll of worst-case burn ≥ budget) every instance is destroyed with reason `budget`,
so spent never exceeds the budget by more than one poll interval of burn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from usim_core.sweep import SweepSpec
from usim_tui.fleet.providers.base import OFFLINE, RUNNING
from usim_tui.fleet.snapshot import BudgetView

GONE_STATES = ("destroyed", "not_created")
DEFAULT_POLL_S = 5.0


def launch_price(spec: SweepSpec) -> float:
    """$/h assumed for an attempt not yet created."""
    return spec.provider.price_per_hour if spec.provider.kind == "local" else spec.planning.price_per_hour


def expected_attempt_cost(spec: SweepSpec) -> float:
    return spec.planning.hours_per_cell * launch_price(spec)


def rate(state: str, price: float, storage: float) -> float:
    """$/h billed in one observed state: GPU only while running; storage while it exists (not offline)."""
    if state in GONE_STATES or state == OFFLINE:
        return 0.0
    return (price if state == RUNNING else 0.0) + storage


def worst_rate(price: float, storage: float) -> float:
    """$/h an instance could bill between two polls whatever it does meanwhile."""
    return price + storage


def accrue(prev_state: str, state: str, price: float, storage: float, seconds: float) -> float:
    """Cost of an interval between two observations: the higher of the two states' rates (a pending instance
    that became running just after the last poll has billed GPU for most of it)."""
    return max(rate(prev_state, price, storage), rate(state, price, storage)) * max(0.0, seconds) / 3600.0


def _is_live(a: Mapping[str, Any]) -> bool:
    return a["state"] not in GONE_STATES


def committed(spec: SweepSpec, attempts: Sequence[Mapping[str, Any]], now: float,
              poll_interval: float = DEFAULT_POLL_S) -> float:
    total = 0.0
    for a in attempts:
        if not _is_live(a) or a["state"] == "destroying":
            continue
        price = a["price_per_hour"] or launch_price(spec)
        begun = next((x for x in (a["started_at"], a["created_at"]) if x is not None), now)
        remaining_s = max(spec.planning.hours_per_cell * 3600 - (now - begun), poll_interval)
        total += worst_rate(price, a["storage_per_hour"] or 0.0) * remaining_s / 3600
    return total


def burn_per_hour(attempts: Sequence[Mapping[str, Any]]) -> float:
    return sum(rate(a["state"], a["price_per_hour"] or 0.0, a["storage_per_hour"] or 0.0) for a in attempts)


def worst_burn_per_hour(spec: SweepSpec, attempts: Sequence[Mapping[str, Any]]) -> float:
    return sum(worst_rate(a["price_per_hour"] or launch_price(spec), a["storage_per_hour"] or 0.0)
               for a in attempts if _is_live(a) and a["state"] != "destroying")


def spent(attempts: Sequence[Mapping[str, Any]]) -> float:
    return sum(a["spent"] for a in attempts)


def can_launch(spec: SweepSpec, attempts: Sequence[Mapping[str, Any]], now: float,
               poll_interval: float = DEFAULT_POLL_S) -> tuple[bool, str]:
    s, c, e = spent(attempts), committed(spec, attempts, now, poll_interval), expected_attempt_cost(spec)
    if s + c + e <= spec.budget + 1e-12:
        return True, ""
    return False, (f"budget: spent ${s:.3f} + committed ${c:.3f} + next attempt ${e:.3f} "
                   f"> budget ${spec.budget:.2f}")


def at_cap(spec: SweepSpec, attempts: Sequence[Mapping[str, Any]], poll_interval: float = DEFAULT_POLL_S) -> bool:
    """True when one more poll interval at worst-case burn could cross the budget."""
    return spent(attempts) + worst_burn_per_hour(spec, attempts) * poll_interval / 3600 >= spec.budget


def budget_view(spec: SweepSpec, attempts: Sequence[Mapping[str, Any]], now: float, remaining_cells: int = 0,
                poll_interval: float = DEFAULT_POLL_S) -> BudgetView:
    s = spent(attempts)
    c = committed(spec, attempts, now, poll_interval)
    burn = burn_per_hour(attempts)
    storage = sum(a["storage_per_hour"] or 0.0 for a in attempts if a["state"] == "stopped")
    live_price = sum(a["price_per_hour"] or 0.0 for a in attempts if _is_live(a))
    finish = now + c / live_price * 3600 if live_price > 0 else None
    return BudgetView(budget=spec.budget, spent=round(s, 6), committed=round(c, 6), burn_per_hour=burn,
                      storage_per_hour=storage,
                      projected_total=round(s + c + remaining_cells * expected_attempt_cost(spec), 6),
                      projected_finish=finish)
