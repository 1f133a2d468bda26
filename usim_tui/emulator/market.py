"""The emulator's interruptible market: when a bid instance is outbid, what price would run it again, and when the
market falls back to its bid by itself. Drawn from the instance's own generator (seed, "market:" + label), so the
other faults an instance meets are the same whether it is rented on demand or at a bid (paired rehearsals).

An outbid instance shows Vast's stopped triple and bills storage only; when it comes back it is `running` with an
empty container: what the run had in memory is gone, and nothing restarts it (docs/vast.md, unverified: the
worse case). Raising the bid (`PUT /api/v0/instances/bid_price/{id}/`) to the clearing price or above runs it
again at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from usim_tui.emulator.faults import Market, draw

OUTBID_MSG = "outbid: instance stopped"
HORIZON_S = 7 * 24 * 3600.0   # nothing is drawn past a week of running


@dataclass(frozen=True)
class Outbid:
    at: float                 # stopped from then
    rise: float               # a bid of at least rise x the bid in force at `at` runs it again
    back_at: float | None     # the market falls back to its bid then (None: not by itself)


def outbids(market: Market, rng: random.Random, running_at: float) -> list[Outbid]:
    """The outbids a bid instance meets from `running_at` on, with their comebacks (the rate does not depend on
    the bid; the clearing price is a multiple of the bid in force when it is outbid)."""
    out: list[Outbid] = []
    t = running_at
    while market.outbid_per_hour > 0 and t - running_at < HORIZON_S:
        t += rng.expovariate(market.outbid_per_hour / 3600.0)
        rise = draw(rng, market.clearing_rise)
        back = t + draw(rng, market.back_after_s) if rng.random() < market.back_p else None
        out.append(Outbid(t, rise, back))
        if back is None:
            break
        t = back
    return out


def is_outbid_stop(msg: str) -> bool:
    """A phase message of an instance the market stopped (outbid, or made under min_bid)."""
    return msg.startswith(OUTBID_MSG)
