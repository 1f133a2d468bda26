"""Budget gauge: spent / committed / budget, burn, projection, and storage of stopped instances apart."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from usim_tui.app.format import AMBER_AT, RED_AT, clock_time, money
from usim_tui.fleet.store.snapshot import BudgetView


def level(b: BudgetView) -> str:
    """ok / warn / danger from the share of the budget spent or committed."""
    used = (b.spent + b.committed) / b.budget if b.budget > 0 else 1.0
    return "danger" if used >= RED_AT else "warn" if used >= AMBER_AT else "ok"


def gauge(b: BudgetView, width: int = 30) -> Text:
    total = max(b.budget, 1e-9)
    spent = min(width, round(b.spent / total * width))
    committed = min(width - spent, round(b.committed / total * width))
    colour = {"ok": "green", "warn": "dark_orange", "danger": "red"}[level(b)]
    t = Text()
    t.append("█" * spent, style=colour)
    t.append("▒" * committed, style=colour)
    t.append("░" * (width - spent - committed), style="dim")
    return t


class BudgetPane(Static):
    can_focus = True

    _last: tuple[BudgetView, bool] | None = None

    def show(self, b: BudgetView, launching: bool = True) -> None:
        """`launching`: a controller can still launch the cells left; without one the projection is what is
        spent and committed (nothing else will be)."""
        if (b, launching) == self._last:
            return
        self._last = (b, launching)
        for name in ("ok", "warn", "danger"):
            self.set_class(level(b) == name, f"-{name}")
        pct = (b.spent + b.committed) / b.budget * 100 if b.budget > 0 else 100.0
        t = gauge(b)
        t.append(f" {pct:.0f} %\n")
        t.append(f"spent {money(b.spent)} + committed {money(b.committed)} / {money(b.budget)}\n")
        t.append(f"burn {money(b.burn_per_hour)}/h · proj. {money(b.projected_total if launching else b.spent + b.committed)}")
        t.append(f" at {clock_time(b.projected_finish)[:5]}\n" if b.projected_finish else "\n")
        t.append("stopped (storage) ")
        t.append(f"{money(b.storage_per_hour)}/h", style="bold dark_orange" if b.storage_per_hour > 0 else "dim")
        if b.provider_reported is not None:   # the provider's own figure beside the controller's estimate above
            t.append(f"\nbilled {money(b.provider_reported)} (provider)")
        self.update(t)

    def show_error(self, error: str) -> None:
        self._last = None
        self.update(Text(f"budget unavailable: {error}", style="bold red"))
