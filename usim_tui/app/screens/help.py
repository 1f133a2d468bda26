"""`?`: every key, the colours and the budget thresholds."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from usim_core.eval.gates import ENERGY_TOL, MASS_TOL
from usim_tui.app.bindings import help_rows
from usim_tui.app.format import AMBER_AT, ATTEMPT_STYLE, CELL_STYLE, KEEP_MARK, RED_AT, state_word
from usim_tui.app.widgets.instances import BID_STYLE


def help_table(read_only: bool) -> Table:
    keys = Table(title="usim keys" + (" (read-only: actions disabled)" if read_only else ""),
                 show_header=False, expand=True, title_justify="left", box=None, padding=(0, 2))
    keys.add_column(style="bold cyan", width=7)
    keys.add_column()
    for key, what in help_rows():
        keys.add_row(key, what)
    keys.add_row("", "")
    keys.add_row("budget", f"gauge █ spent ▒ committed; amber at {AMBER_AT:.0%}, red at {RED_AT:.0%} of the budget "
                           "(spent + committed); storage of stopped instances is shown apart")
    keys.add_row("cells", Text("  ").join([*(Text(state_word(s), style=st) for s, st in CELL_STYLE.items()),
                                           Text(f"{KEEP_MARK} kept (K): the stopping rule never stops it")]))
    keys.add_row("states", Text("  ").join(Text(s, style=st) for s, st in ATTEMPT_STYLE.items()))
    keys.add_row("$/h", Text.assemble(("0.18", BID_STYLE), " rented at a bid (interruptible): enter shows the bid, "
                                      "what it saved, where it resumed and the training lost to interruptions"))
    keys.add_row("gates", f"mass: |relative drift| ≤ {MASS_TOL:g}; energy: relative increase (energy_violation) ≤ {ENERGY_TOL:g}")
    return keys


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, read_only: bool = False) -> None:
        super().__init__()
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_table(self.read_only))
