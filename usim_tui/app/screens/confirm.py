"""Yes/no dialog for actions that spend or destroy (launch, relaunch, destroy, quit with paid instances running)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from usim_core.eval.schema import PRIMARY_METRIC
from usim_tui.app.format import money
from usim_tui.fleet.store.snapshot import AttemptView, BudgetView, CellView
from usim_tui.fleet.store.states import CellState


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.question, self.yes = question, yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question, id="question")
            with Horizontal(id="buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


# -- the questions: every key that creates or destroys a paid instance names the cells and the money -----------
def _names(items: list[str], limit: int = 6) -> str:
    return "\n".join(f"  {n}" for n in items[:limit]) + (f"\n  … and {len(items) - limit} more" if len(items) > limit else "")


def live_cost(a: AttemptView) -> str:
    return f"{a.cell} #{a.attempt} ({a.state}, {money(a.price_per_hour)}/h, spent {money(a.spent)})"


def kept_result(c: CellView | None) -> str:
    """What stays of a finished cell when it runs again."""
    if c is None or c.state != CellState.FINISHED:
        return ""
    best = c.metrics.get(PRIMARY_METRIC)
    return f" — finished{f', nRMSE {best:.3g}' if best is not None else ''}: its result stays"


def budget_left(b: BudgetView | None) -> str:
    if b is None:
        return ""
    return f"\nBudget: {money(b.spent)} spent + {money(b.committed)} committed of {money(b.budget)}."


def destroy_question(targets: list[AttemptView]) -> str:
    burn = sum(a.price_per_hour for a in targets)
    return (f"Destroy {len(targets)} instance(s), {money(burn)}/h?\n" + _names([live_cost(a) for a in targets])
            + "\nTheir disks and checkpoints on the host are lost.")


def launch_question(cells: list[CellView | str], live: dict[str, AttemptView], budget: BudgetView | None,
                    relaunch: bool = False) -> str:
    """Launch / relaunch: each cell, the live instance a relaunch destroys (its $/h and spend), a kept result."""
    lines, destroyed = [], []
    for c in cells:
        name = c if isinstance(c, str) else c.name
        view = None if isinstance(c, str) else c
        a = live.get(name) if relaunch else None
        if a is not None:
            destroyed.append(a)
        lines.append(name + (f": destroys {live_cost(a)}" if a else "") + kept_result(view))
    verb = "Relaunch" if relaunch else "Launch"
    head = f"{verb} {len(cells)} cell(s) on new paid instance(s)?"
    if budget is not None and budget.attempt_price:
        head += (f" Each about {money(budget.attempt_price)}/h, about {money(budget.attempt_cost)} per attempt "
                 f"({money(len(cells) * budget.attempt_cost)} in all).")
    if destroyed:
        head += f" It destroys {len(destroyed)} running now ({money(sum(a.price_per_hour for a in destroyed))}/h)."
    return head + "\n" + _names(lines) + budget_left(budget)


def keep_question(cells: list[CellView | str], on: bool) -> str:
    """K: keep the cells from the stopping rule (or let it judge them again)."""
    names = [c if isinstance(c, str) else c.name for c in cells]
    if on:
        return (f"Keep {len(names)} cell(s) whatever the sweep's early_stop rule says?\n" + _names(names)
                + "\nThe rule still records them at each rung but never stops them: they train (and bill) to the end.")
    return (f"Stop keeping {len(names)} cell(s)?\n" + _names(names)
            + "\nThe stopping rule judges them again from their next rung, and may stop them there.")


def stop_early_question(targets: list[AttemptView], budget: BudgetView | None) -> str:
    """x: end running cells early, as the rule ends a loser."""
    where = [live_cost(a) + (f" at {a.stage} epoch {a.epoch}" if a.stage and a.epoch is not None else "")
             for a in targets]
    burn = sum(a.price_per_hour for a in targets)
    return (f"Stop {len(targets)} running cell(s) early, {money(burn)}/h?\n" + _names(where)
            + "\nEach ends as the stopping rule ends a loser: its results so far are pulled back, its instance is "
              "destroyed and it is not launched again (r relaunches it afresh)." + budget_left(budget))
