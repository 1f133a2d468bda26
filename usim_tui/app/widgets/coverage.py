"""Grid coverage: the grid round as an axis-1 x axis-2 matrix, other rounds as lists, coloured by state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.binding import BindingType
from textual.message import Message
from textual.widgets import Static

from usim_core.eval.schema import PRIMARY_METRIC
from usim_tui.app.bindings import GRID
from usim_tui.app.format import CELL_STYLE, KEEP_MARK, state_word
from usim_tui.app.widgets.leaderboard import ranked
from usim_tui.fleet.store.snapshot import CellView
from usim_tui.fleet.store.states import CellState

BEST_METRIC = PRIMARY_METRIC
QUEUED_STYLE = "italic yellow"
# A state's word inside a grid cell, where the legend's is too wide for the matrix
GRID_WORD = {CellState.STOPPED_EARLY: "stopped", CellState.DUPLICATE: "dup"}


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


def cell_text(cell: CellView | None, label: str = "", cursor: str | None = None, best: str | None = None,
              queued: frozenset[str] = frozenset()) -> Text:
    """A cell's state, or its result once it has one, or `queued` while a launch or relaunch of it waits
    (`queued`: those cells); `best`: the name of the sweep's best cell (★); ⚑ a cell a person keeps."""
    if cell is None:
        return Text("·", style="dim")
    value = cell.metrics.get(BEST_METRIC)
    inner = "queued" if cell.name in queued else f"{value:.3g}" if value is not None else cell.state
    if cell.state in GRID_WORD:   # a duplicate: of which cell, and a stopped cell: why, in the details (enter)
        inner = GRID_WORD[cell.state]
    style = (QUEUED_STYLE if cell.name in queued else CELL_STYLE.get(cell.state, "")) + \
        (" reverse" if cell.name == cursor else "")
    marks = ("★ " if cell.name == best else "") + (f"{KEEP_MARK} " if cell.keep else "")
    return Text(f"{label}{marks}{inner}", style=style)


def best_cell(cells: tuple[CellView, ...]) -> str | None:
    """The cell the leaderboard puts first (ranked on val), if any."""
    board = ranked(cells)
    return board[0].name if board else None


def by_round(cells: tuple[CellView, ...]) -> dict[str, list[CellView]]:
    rounds: dict[str, list[CellView]] = {}
    for c in cells:
        rounds.setdefault(c.round, []).append(c)
    return rounds


def positions(cells: tuple[CellView, ...]) -> list[list[str | None]]:
    """The grid as the cursor walks it: a matrix round's rows (None where a cell is missing), then one row per
    cell of a list round; in the order they are drawn."""
    out: list[list[str | None]] = []
    for members in by_round(cells).values():
        axes = grid_axes(members)
        if not axes:
            out.extend([c.name] for c in members)
            continue
        _, a_vals, _, b_vals = axes
        at = {tuple(v for _, v in axis_tags(c)): c.name for c in members}
        out.extend([at.get((a, b)) for b in b_vals] for a in a_vals)
    return out


def matrix(name: str, members: list[CellView], axes: tuple[str, list[str], str, list[str]],
           cursor: str | None, best: str | None = None, queued: frozenset[str] = frozenset()) -> Table:
    a_name, a_vals, b_name, b_vals = axes
    table = Table(title=f"{name}: {a_name} ↓  {b_name} →", title_justify="left",
                  expand=False, show_edge=True, padding=(0, 1))
    table.add_column(a_name, style="bold")
    for b in b_vals:
        table.add_column(b, justify="center")
    at = {tuple(v for _, v in axis_tags(c)): c for c in members}
    for a in a_vals:
        table.add_row(a, *(cell_text(at.get((a, b)), cursor=cursor, best=best, queued=queued) for b in b_vals))
    return table


def render(cells: tuple[CellView, ...], cursor: str | None = None, queued: frozenset[str] = frozenset()) -> Group:
    parts: list = []
    best = best_cell(cells)
    for name, members in by_round(cells).items():
        axes = grid_axes(members)
        if axes:
            parts.append(matrix(name, members, axes, cursor, best, queued))
            continue
        parts.append(Text(name, style="bold"))
        for c in members:
            label = c.name[len(name) + 1:] if c.name.startswith(name + "_") else c.name
            parts.append(Text("  ") + cell_text(c, f"{label}: ", cursor, best, queued))
    # early stopping's words only where a cell is stopped early or kept: the pane is small (`?` lists them all)
    stopped = any(c.state == CellState.STOPPED_EARLY for c in cells)
    legend = Text("  ").join([*(Text(state_word(s), style=st) for s, st in CELL_STYLE.items()
                                if s != CellState.STOPPED_EARLY or stopped),
                              Text("queued", style=QUEUED_STYLE), Text("★ best (val)"),
                              *([Text(f"{KEEP_MARK} kept")] if any(c.keep for c in cells) else [])])
    parts.append(legend)
    return Group(*parts)


class CoverageGrid(Static):
    """Focused (`3`), a cursor walks the cells (arrows, hjkl, g/G) and `enter` opens the one under it."""

    BINDINGS: ClassVar[list[BindingType]] = [*GRID]
    can_focus = True

    @dataclass
    class Open(Message):
        """`enter` on a cell of the grid: the main screen opens its details."""

        cell: str

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._key: tuple | None = None
        self.cells: tuple[CellView, ...] = ()
        self.grid: list[list[str | None]] = []
        self._names: tuple[str, ...] = ()
        self.queued: frozenset[str] = frozenset()   # cells a launch or relaunch waits for
        self.row, self.col = 0, 0

    @property
    def cursor(self) -> str | None:
        """The name of the cell under the cursor (None on a hole of the matrix)."""
        if not self.grid:
            return None
        row = self.grid[min(self.row, len(self.grid) - 1)]
        return row[min(self.col, len(row) - 1)] if row else None

    def show(self, cells: tuple[CellView, ...], queued: frozenset[str] = frozenset()) -> None:
        names = tuple(c.name for c in cells)
        if names != self._names:  # the sweep's cells: fixed once it is recorded
            self._names, self.grid = names, positions(cells)
        self.cells, self.queued = cells, queued
        self._draw()

    def _draw(self) -> None:
        cursor = self.cursor if self.has_focus else None
        key = (cursor, self.queued, tuple((c.name, c.state, c.keep, c.metrics.get(BEST_METRIC)) for c in self.cells))
        if key != self._key:  # rebuilding the Rich tables is the costly part; skip it when nothing changed
            self._key = key
            self.update(render(self.cells, cursor, self.queued))

    def show_error(self, error: str) -> None:
        self._key = None
        self.update(Text(f"coverage unavailable: {error}", style="bold red"))

    def on_focus(self) -> None:
        self._draw()

    def on_blur(self) -> None:
        self._draw()

    def _move(self, rows: int = 0, cols: int = 0) -> None:
        if not self.grid:
            return
        self.row = max(0, min(len(self.grid) - 1, self.row + rows))
        self.col = max(0, min(len(self.grid[self.row]) - 1, self.col + cols))
        self._draw()

    def action_cursor_down(self) -> None:
        self._move(rows=1)

    def action_cursor_up(self) -> None:
        self._move(rows=-1)

    def action_cursor_left(self) -> None:
        self._move(cols=-1)

    def action_cursor_right(self) -> None:
        self._move(cols=1)

    def action_scroll_top(self) -> None:
        self._move(rows=-len(self.grid))

    def action_scroll_bottom(self) -> None:
        self._move(rows=len(self.grid))

    def action_open(self) -> None:
        if self.cursor is not None:
            self.post_message(self.Open(self.cursor))
