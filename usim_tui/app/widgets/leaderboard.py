"""Finished cells ranked on val by per-frame nRMSE, with the physics gates (mass, energy) and their cost."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from usim_core.eval.gates import gate
from usim_core.eval.leaderboard import val_first
from usim_core.eval.schema import PRIMARY_METRIC
from usim_tui.app.format import money, short_names
from usim_tui.fleet.store.snapshot import CellView
from usim_tui.fleet.store.states import CellState

RANK_BY = PRIMARY_METRIC


def gate_text(name: str, ok: bool | None) -> Text:
    mark = Text("?", style="dim") if ok is None else Text("✓", style="green") if ok else Text("✗", style="bold red")
    return Text.assemble(name, mark)


def ranked(cells: tuple[CellView, ...]) -> list[CellView]:
    """Cells with a result by their val (small) eval, as the report and `usim-core leaderboard` rank; the figure
    shown is the cell's result (its test eval once it has one). A finished cell relaunched keeps its result
    here until the new run replaces it (`rerun`)."""
    done = [c for c in cells if RANK_BY in c.metrics and (c.state == CellState.FINISHED or rerun(c))]
    return sorted(done, key=lambda c: val_first(c.small_metrics.get(RANK_BY), c.metrics[RANK_BY]))


def rerun(c: CellView) -> bool:
    """A cell with a result that runs again (relaunched after it finished)."""
    return c.state in (CellState.PENDING, CellState.LAUNCHING, CellState.RUNNING) and bool(c.metrics)


class Leaderboard(Static):
    can_focus = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._key: tuple | None = None
        self._cells: tuple[CellView, ...] = ()

    def on_resize(self) -> None:
        try:
            self.show(self._cells)  # names shortened to the new width
        except Exception as exc:  # contained to this pane, as in the poll's refresh
            self.show_error(f"{type(exc).__name__}: {exc}")

    def show(self, cells: tuple[CellView, ...]) -> None:
        self._cells = cells
        rows = ranked(cells)
        width = max(8, self.size.width - 33)  # val, nRMSE, gates, cost and a rerun's mark take the rest
        key = (width, tuple((c.name, c.small_metrics.get(RANK_BY), tuple(sorted(c.metrics.items())), c.cost)
                            for c in rows))
        if key == self._key:
            return
        self._key = key
        if not rows:
            self.update(Text("no finished cell with a per-frame nRMSE yet", style="dim"))
            return
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
        names = short_names([c.name for c in rows], width, {c.name: c.round for c in rows})  # never a shared tail
        table.add_column("cell", ratio=1, no_wrap=True, overflow="fold")
        table.add_column("val", justify="right", no_wrap=True)     # what ranks
        table.add_column("nRMSE", justify="right", no_wrap=True)   # the result: test once there is one
        table.add_column("gates", no_wrap=True)
        table.add_column("cost", justify="right", no_wrap=True)
        for c in rows:
            gates = gate_text("M", gate(c.metrics, "mass")) + " " + gate_text("E", gate(c.metrics, "energy"))
            val = c.small_metrics.get(RANK_BY)
            name = Text(names[c.name]) + (Text(" ↻", style="yellow") if rerun(c) else Text(""))
            table.add_row(name, "–" if val is None else f"{val:.3g}", f"{c.metrics[RANK_BY]:.3g}", gates,
                          money(c.cost))
        self.update(table)

    def show_error(self, error: str) -> None:
        self._key = None
        self.update(Text(f"leaderboard unavailable: {error}", style="bold red"))
