"""pricing: interruptible-fallback: a cell the market has taken a host from fallback_after_outbids times (since a
relaunch) rents on demand from its next attempt on (control/launching.py), said once in the journal."""

from __future__ import annotations

from pathlib import Path

from usim_tui.emulator.commands import _sweep, with_pricing
from usim_tui.fleet.control.launching import Launcher
from usim_tui.fleet.store.journal import Journal
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.states import EndReason


def launcher(tmp_path: Path, pricing: str) -> tuple[Launcher, Ledger, str]:
    sweep = with_pricing(_sweep("overnight_sota"), pricing)
    led = Ledger(tmp_path / "l.sqlite")
    led.ensure_sweep(sweep)
    journal = Journal(led, sweep.name, lambda _: None)
    return (Launcher(led, None, sweep, journal, None, 30.0, tmp_path / "runs"),  # type: ignore[arg-type]
            led, sweep.cells[0].name)


def end(led: Ledger, cell: str, n: int, reason: EndReason) -> None:
    aid = led.new_attempt("overnight_sota", cell, n, f"usim:overnight_sota:{cell}:{n}", f"/tmp/{n}", t=n)
    led.set_attempt(aid, state="destroyed", reason=reason)


def test_a_cell_outbid_once_rents_on_demand_from_its_next_attempt_and_it_is_said_once(tmp_path):
    la, led, cell = launcher(tmp_path, "interruptible-fallback")
    assert la.sweep.spec.provider.fallback_after_outbids == 1
    end(led, cell, 1, EndReason.STARTUP_TIMEOUT)
    assert not la._falls_back(cell, 10.0), "a stuck host is not the market"
    end(led, cell, 2, EndReason.OUTBID)
    assert la._falls_back(cell, 20.0) and la._falls_back(cell, 30.0)
    again, _, _ = launcher(tmp_path, "interruptible-fallback")   # a restarted controller, the same ledger
    assert again._falls_back(cell, 35.0)
    said = led.q("SELECT message, cell FROM events WHERE kind='fallback'")
    assert len(said) == 1 and "outbid on 1 host: rents on demand" in said[0]["message"] and said[0]["cell"] == cell
    led.set_cell("overnight_sota", cell, counted_from=2)   # a person relaunched it: it starts afresh at a bid
    assert not la._falls_back(cell, 40.0)
    end(led, cell, 3, EndReason.OUTBID)
    assert la._falls_back(cell, 50.0)
    assert len(led.q("SELECT 1 FROM events WHERE kind='fallback'")) == 2, "and says so again after the relaunch"


def test_strict_interruptible_never_falls_back(tmp_path):
    la, led, cell = launcher(tmp_path, "interruptible")
    for n in (1, 2, 3):
        end(led, cell, n, EndReason.OUTBID)
    assert not la._falls_back(cell, 10.0)
