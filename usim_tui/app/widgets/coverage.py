"""Grid coverage: the grid round as an axis-1 x axis-2 matrix, other rounds as lists, coloured by state."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from usim_tui.app.format import CELL_STYLE
from usim_tui.fleet.snapshot import CellView
from usim_tui.fleet.states import CellState

BEST_METRIC = "nrmse_rollout"


def axis_tags(cell: CellView) -> list[tuple[str, str]]:
    """(axis name, value text) from the tags the sweep expansion writes (`lr=3e-4`, `warmup=5%`)."""
    return [(name, value) for name, _, value in (t.partition("=") for t in cell.tags if "=" in t)]


def grid_axes(cells: list[CellView]) -> tuple[str, list[str], str, list[str]] | None:
    """The two axes of a grid round and their values in sweep order, or None if it is not a 2-axis grid."""
    tags = [axis_tags(c) for c in cells]
    if not tags or any(len(t) != 2 for t in tags):
        return None
    (a_name, _), (b_name, _) = tags[0]
    if any(t[0][0] != a_name or t[1][0] != b_name for t in tags):
        return None
    a_vals = list(dict.fromkeys(t[0][1] for t in tags))
    b_vals = list(dict.fromkeys(t[1][1] for t in tags))
    return a_name, a_vals, b_name, b_vals


def cell_text(cell: CellView | None, label: str = "") -> Text:
    if cell is None:
        return Text("·", style="dim")
    best = cell.metrics.get(BEST_METRIC)
    inner = f"{best:.3g}" if best is not None else cell.state
    if cell.state == CellState.DUPLICATE:
        inner = "dup"  # of which cell: in the details (enter) and the instances table
    return Text(f"{label}{inner}", style=CELL_STYLE.get(cell.state, ""))


def render(cells: tuple[CellView, ...]) -> Group:
    rounds: dict[str, list[CellView]] = {}
    for c in cells:
        rounds.setdefault(c.round, []).append(c)
    parts: list = []
    for name, members in rounds.items():
        axes = grid_axes(members)
        if axes:
            a_name, a_vals, b_name, b_vals = axes
            table = Table(title=f"{name}: {a_name} ↓  {b_name} →", title_justify="left",
                          expand=False, show_edge=True, padding=(0, 1))
            table.add_column(a_name, style="bold")
            for b in b_vals:
                table.add_column(b, justify="center")
            at = {tuple(v for _, v in axis_tags(c)): c for c in members}
            for a in a_vals:
                table.add_row(a, *(cell_text(at.get((a, b))) for b in b_vals))
            parts.append(table)
        else:
            parts.append(Text(name, style="bold"))
            for c in members:
                label = c.name[len(name) + 1:] if c.name.startswith(name + "_") else c.name
                parts.append(Text("  ") + cell_text(c, f"{label}: "))
    legend = Text("  ").join(Text(s, style=st) for s, st in CELL_STYLE.items())
    parts.append(legend)
    return Group(*parts)


class CoverageGrid(Static):
    can_focus = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._key: tuple | None = None

    def show(self, cells: tuple[CellView, ...]) -> None:
        key = tuple((c.name, c.state, c.metrics.get(BEST_METRIC)) for c in cells)
        if key != self._key:  # rebuilding the Rich tables is the costly part; skip it when nothing changed
            self._key = key
            self.update(render(cells))
