"""One row per attempt, keyed by its attempt id, updated in place so the cursor survives refreshes.

Cells that have no attempt yet get one row keyed `cell:<name>`, so they can be selected and launched.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from typing import Any, ClassVar, Self

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import BindingType
from textual.cache import LRUCache
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from usim_tui.app.bindings import MOVE
from usim_tui.app.format import (
    ATTEMPT_STYLE,
    CELL_STYLE,
    KEEP_MARK,
    LOSS_WIDTH,
    REASON_STYLE,
    STATE_WORD,
    common_prefix,
    duration,
    loss,
    short_names,
    sparkline,
    state_word,
)
from usim_tui.fleet.store.snapshot import AttemptView, CellView, SweepSnapshot
from usim_tui.fleet.store.states import GONE, AttemptState, CellState

STATE_RANK = {s: i for i, s in enumerate((AttemptState.RUNNING, AttemptState.LOADING, AttemptState.LAUNCHING,
                                          AttemptState.PENDING, AttemptState.STOPPED, AttemptState.OFFLINE,
                                          AttemptState.LEAKED, AttemptState.DESTROYING, AttemptState.EXITED,
                                          AttemptState.FAILED, AttemptState.DESTROYED, AttemptState.NOT_CREATED))}


def sort_value(sort: str, a: AttemptView | None, c: CellView | None, now: float) -> tuple:
    """The sort key of a row for the column `sort` (attempt rows: `a`; cells with no attempt: `c`)."""
    name = a.cell if a else c.name if c else ""
    if sort == "cell" or a is None:
        return (1 if a is None and sort != "cell" else 0, name)
    by = {
        "state": lambda: STATE_RANK.get(a.state, 99),
        "time": lambda: -(phase_seconds(a, now) or -1.0),   # the time the column shows, longest first
        "$/h": lambda: -a.price_per_hour,
        "loss": lambda: a.last_loss if a.last_loss is not None else float("inf"),
    }
    return (0, by[sort](), name, a.attempt)

# (column key, label, width): identity columns never truncate: the cell column sizes to the sweep's longest
# name (None here: set from the first snapshot, whose cells are the sweep's) and stays pinned when scrolling; state and reason fit the longest names they take
# (`not_created`, `startup_timeout`, `container_error`).
# The run's progress (time, stage, epoch, loss) before the hardware (GPU, $/h: the budget pane sums them), so
# at 100 columns the loss shows whole rather than cut by the pane's edge.
COLUMNS = (
    ("cell", "cell", None), ("attempt", "#", 1), ("state", "state", 11), ("reason", "reason", 15),
    ("uptime", "time", 6), ("stage", "stage", 9), ("epoch", "ep", 3), ("loss", "loss", LOSS_WIDTH),
    ("spark", "loss curve", 10), ("gpu", "GPU", 8), ("price", "$/h", 4),
)
# Attempt states still on their way up: their time column counts from creation (a per-phase timer).
STARTING = frozenset({AttemptState.PENDING, AttemptState.LAUNCHING, AttemptState.LOADING})
# `S` cycles these: "" is the ledger's order. The sorted column's header is marked (▼ largest first).
SORTS = ("", "state", "time", "$/h", "loss", "cell")
SORT_COLUMN = {"state": ("state", "▲"), "time": ("uptime", "▼"), "$/h": ("price", "▼"), "loss": ("loss", "▲"),
               "cell": ("cell", "▲")}
STAGE_SHORT = {"diffusion_residual": "diffusion", "consistency_distill": "distill"}
BID_STYLE = "cyan"   # $/h of an instance rented at a bid (interruptible): `enter` shows the bid and what it saved


def cell_label(name: str, marked: bool, kept: bool = False) -> Text:
    """The cell column: the mark (space), the name, the pin of a cell a person keeps (K)."""
    return Text.assemble(("● " if marked else "  ", "bold magenta"), name,
                         (f" {KEEP_MARK}" if kept else "", CELL_STYLE[CellState.STOPPED_EARLY]))


def reason_text(reason: str | None) -> Text | str:
    """The reason column: a stopped-early end in its own colour and words, not a failure's code."""
    if reason in REASON_STYLE:
        return Text(state_word(reason), style=REASON_STYLE[reason])
    return reason or ""


def phase_seconds(a: AttemptView, now: float) -> float | None:
    """Time in the current phase: since creation while starting (loading 3m12s), since start when running,
    start to end once ended; None when the phase has no start."""
    end = a.ended_at if a.ended_at is not None else now
    start = a.created_at if a.state in STARTING and a.ended_at is None else a.started_at
    return None if start is None else end - start


def uptime(a: AttemptView, now: float) -> str:
    return duration(phase_seconds(a, now))


# Per column (in COLUMNS order): the raw input (cheap attribute reads, see raw_attempt) and its formatter. A cell
# is formatted only when its input changed since the last poll, so a poll that moves 1000 losses builds 1000 loss
# texts and nothing else.
FORMAT: dict[str, Callable[[Any], object]] = {
    "cell": lambda raw: cell_label(*raw),
    "attempt": str,
    "state": lambda st: Text(st, style=ATTEMPT_STYLE.get(st, "")),
    "reason": reason_text,
    "gpu": lambda g: g or "-",
    "price": lambda pb: Text(f"{pb[0]:.2f}", style=BID_STYLE if pb[1] else ""),   # (price, at a bid)
    "uptime": lambda u: u,
    "stage": lambda st: STAGE_SHORT.get(st, st) if st else "-",
    "epoch": lambda e: "-" if e is None else str(e),
    "loss": loss,
    "spark": lambda h: Text(sparkline(h, 10), style="cyan"),
}


def row_values_from_raw(raw: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(FORMAT[col](r) for (col, _, _), r in zip(COLUMNS, raw, strict=True))


def raw_attempt(a: AttemptView, now: float, marked: bool, label: str | None = None,
                queued: str | None = None, kept: bool = False) -> tuple[object, ...]:
    """The inputs of each column, in COLUMNS order (one tuple, built for every attempt on every poll); `label`:
    the cell's name as shown (format.short_names), its full name by default; `queued`: a command for it that
    the controller has not taken yet (shown in the reason column at once); `kept`: a person keeps its cell."""
    return ((label or a.cell, marked, kept), a.attempt, a.state, f"queued {queued}" if queued else a.reason,
            uptime(a, now), a.stage, a.epoch, a.last_loss, a.loss_history, a.gpu, (a.price_per_hour, a.bid is not None))


def duplicate_label(name: str, of: str, labels: dict[str, str]) -> str:
    """The cell it duplicates, named as the cell column names it, less the front the two share up to a `_` or `·`
    (never inside a value): `= …w5pct` beside `A·lr4.5e-4_w6pct`, `= A·lr3e-4_w5pct` beside `B·cap96`."""
    mine, theirs = labels.get(name, name), labels.get(of, of)
    shared = common_prefix([mine, theirs])
    cut = max(theirs.rfind("_", 0, shared), theirs.rfind("·", 0, shared))
    return f"= …{theirs[cut + 1:]}" if cut >= 0 else f"= {theirs}"


def cell_row_values(c: CellView, marked: bool, labels: dict[str, str], queued: str | None = None) -> tuple[object, ...]:
    label = labels.get(c.name)
    reason = f"queued {queued}" if queued else duplicate_label(c.name, c.duplicate_of, labels) if c.duplicate_of \
        else c.reason or ""
    return (cell_label(label or c.name, marked, c.keep), "-",
            Text(state_word(c.state), style=CELL_STYLE.get(c.state, "")), reason_text(reason), "-", "-", "-", "-", "", "-", "-")


def matches(q: str, *fields: str | None) -> bool:
    """Whether the lower-cased, stripped query `q` is empty or in any field."""
    return not q or any(q in (s or "").lower() for s in fields)


def wanted_rows(snap: SweepSnapshot, now: float, marked: set[str], query: str,
                hide_ended: bool = False, labels: dict[str, str] | None = None) -> dict[str, tuple[object, ...]]:
    """Row key -> raw inputs per column (attempt rows) or finished values (rows of cells with no attempt);
    `labels`: each cell's name as shown."""
    labels = labels or {}
    rows: dict[str, tuple[object, ...]] = {}
    with_attempts = set()
    query = query.strip().lower()
    queued = queued_for(snap)
    newest = {a.cell: a.attempt_id for a in sorted(snap.attempts, key=lambda a: a.attempt)}
    kept = {c.name for c in snap.cells if c.keep}
    for a in snap.attempts:
        with_attempts.add(a.cell)
        key = str(a.attempt_id)
        if hide_ended and a.state in GONE:
            continue
        if matches(query, a.cell, a.state, a.reason, STATE_WORD.get(a.reason or ""), a.gpu, a.stage):
            mine = queued.get(key) or (queued.get(a.cell) if newest[a.cell] == a.attempt_id else None)
            rows[key] = raw_attempt(a, now, key in marked, labels.get(a.cell), mine, a.cell in kept)
    for c in snap.cells:
        key = f"cell:{c.name}"
        if c.name not in with_attempts and matches(query, c.name, c.state, STATE_WORD.get(c.state), c.reason):
            rows[key] = cell_row_values(c, key in marked, labels, queued.get(c.name))
    return rows


def same_cell(key: str, snap: SweepSnapshot, wanted: dict[str, tuple[object, ...]]) -> str | None:
    """The row that now stands for the cell of a row that went (`cell:x` became its first attempt, an ended
    attempt was hidden): the cell's newest attempt shown, else its cell row."""
    was = next((a.cell for a in snap.attempts if str(a.attempt_id) == key), key.removeprefix("cell:"))
    mine = [a for a in snap.attempts if a.cell == was and str(a.attempt_id) in wanted]
    if mine:
        return str(max(mine, key=lambda a: a.attempt).attempt_id)
    return f"cell:{was}" if f"cell:{was}" in wanted else None


def queued_for(snap: SweepSnapshot) -> dict[str, str]:
    """Cell name or attempt id (as a row key) -> the command queued for it: not taken yet, or a relaunch taken
    whose attempt has not started (it shows from the next ledger read until the new attempt's row)."""
    out: dict[str, str] = {c.name: "relaunch" for c in snap.cells if c.relaunch_waiting}
    for q in getattr(snap, "queued", ()):
        target = q.args.get("cell") or (str(q.args["attempt_id"]) if "attempt_id" in q.args else None)
        if target is not None:
            out[str(target)] = q.command
        elif q.args.get("all"):
            out.update({str(a.attempt_id): q.command for a in snap.attempts if a.state not in GONE})
    return out


def queued_cells(snap: SweepSnapshot) -> frozenset[str]:
    """The cells a queued launch or relaunch waits for (the coverage grid shows them as queued)."""
    return frozenset(c for c, command in queued_for(snap).items() if command in ("launch", "relaunch")
                     and not c.isdigit())


# InstancesTable overrides these private DataTable names (render caches, cell store, key maps, cursor state) to
# repaint only the cells a poll changed; they were read in this Textual release's DataTable source.
# tests/app/test_datatable_internals.py fails, naming them, when the installed Textual differs or one is gone.
TEXTUAL_VERSION = "8.2.8"
DATATABLE_PRIVATE = (
    "_render_cell", "_get_row_style", "_clear_caches",                         # overridden methods
    "_data", "_row_locations", "_column_locations", "_header_row_key",        # cell store and key maps
    "_update_count", "_row_renderable_cache", "_row_render_cache", "_line_cache", "_cell_render_cache",  # caches
    "_show_hover_cursor", "_pseudo_class_state",                              # what a cell's render depends on
    "_require_update_dimensions",                                             # a column's new width
)


class InstancesTable(DataTable[object]):
    BINDINGS: ClassVar[list[BindingType]] = [*MOVE]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name_width = 40                              # the cell column's width, set by the screen's width
        self._reason_width = 15                           # the reason column: as wide as a duplicate's original
        self.labels: dict[str, str] = {}                  # cell name -> as shown (format.short_names)
        self._kept_any = False                            # a cell is kept: the cell column has room for its pin
        self._raw: dict[str, tuple[object, ...]] = {}     # the latest inputs of each row
        self._shown: dict[str, tuple[object, ...]] = {}   # the inputs its cells were formatted from
        self._stale: set[str] = set()                     # rows whose cells lag their inputs (off screen)
        # DataTable keys its render caches on one table-wide update counter, so changing one cell re-renders
        # every visible cell. Cells here are cached by their own version instead: a poll re-renders only the
        # cells that changed (see _render_cell).
        self._versions: dict[tuple[str, str], int] = {}
        self._next_version = count(1)
        self._cell_cache: LRUCache[tuple, list[list[Segment]]] = LRUCache(4000)
        self._row_styles: dict[tuple, Style] = {}
        self._frame_style: Style | None = None  # the widget's style, resolved once per repaint, not per line
        self._marked_sort = ""                  # the sort its column header is marked for

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.fixed_columns = 1  # the cell column stays when scrolling sideways

    def add_columns_for(self, snap: SweepSnapshot) -> None:
        """The columns, once: the cell column as wide as the longest name shown (and the mark before it)."""
        dup = max((len(duplicate_label(c.name, c.duplicate_of, self.labels)) for c in snap.cells if c.duplicate_of),
                  default=0)
        for key, label, width in COLUMNS:
            if key == "reason" and width is not None:
                width = self._reason_width = max(width, dup)   # a duplicate's original is its identity: never cut
            self.add_column(label, key=key, width=width if width is not None else self._name_column())

    def _name_column(self) -> int:
        """The mark and the longest label, and room for the pin while a cell is kept."""
        return max((len(v) for v in self.labels.values()), default=4) + 2 + (2 if self._kept_any else 0)

    def set_labels(self, snap: SweepSnapshot) -> None:
        """Each cell's name as shown: whole when the names fit `name_width`, else what tells them apart
        (format.short_names, never a tail two cells share); the cell column follows."""
        names = sorted({c.name for c in snap.cells} | {a.cell for a in snap.attempts})
        labels = short_names(names, self.name_width, {c.name: c.round for c in snap.cells})
        kept_any = any(c.keep for c in snap.cells)
        if labels == self.labels and kept_any == self._kept_any:
            return
        self.labels, self._kept_any = labels, kept_any
        if self.columns:
            column = self.columns[ColumnKey("cell")]
            column.width = self._name_column()
            self._require_update_dimensions = True
            self._clear_caches()
            self.refresh()

    def apply(self, snap: SweepSnapshot, now: float, marked: set[str], query: str = "", hide_ended: bool = False,
              sort: str = "") -> None:
        """Diff the table against the snapshot: update changed cells, add new rows, remove gone ones.

        Changed rows are only formatted when on screen; the others are formatted when scrolled into view, so a
        poll that moves 1000 losses costs a few dozen formatted rows."""
        self.set_labels(snap)
        if not self.columns:
            self.add_columns_for(snap)
        wanted = wanted_rows(snap, now, marked, query, hide_ended, self.labels)
        cursor = self.selected_key
        gone = [k for k in self.keys() if k not in wanted]
        for key in gone:
            self.remove_row(key)
            for d in (self._raw, self._shown):
                d.pop(key, None)
            self._stale.discard(key)
            for col, _, _ in COLUMNS:
                self._versions.pop((key, col), None)
        for key, raw in wanted.items():
            old = self._raw.get(key)
            if old == raw:
                continue
            self._raw[key] = raw
            if old is None:
                self.add_row(*(raw if key.startswith("cell:") else row_values_from_raw(raw)), key=key)
                self._shown[key] = raw
                for col, _, _ in COLUMNS:  # a row key that comes back must not hit its old renders
                    self._versions[key, col] = next(self._next_version)
            else:
                self._stale.add(key)
        self.mark_sort(sort)
        moved = self._sort_rows(snap, now, sort) if sort else self._put_in_order(list(wanted))
        if cursor is not None and cursor not in wanted:   # its row went: stay on the same cell's newest row
            cursor = same_cell(cursor, snap, wanted)
        if (gone or moved) and cursor in wanted:  # rows removed above or re-ordered: keep the cursor on its row
            self.move_cursor(row=self.get_row_index(cursor), animate=False)
        self.flush(visible_only=True)

    def mark_sort(self, sort: str) -> None:
        """The sorted column's header says so (`time ▼`), widened where the mark needs it."""
        if sort == self._marked_sort:
            return
        self._marked_sort = sort
        mark_key, arrow = SORT_COLUMN.get(sort, ("", ""))
        for key, label, width in COLUMNS:
            column = self.columns[ColumnKey(key)]
            column.label = Text(f"{label} {arrow}" if key == mark_key else label)
            if width is not None:
                column.width = max(self._reason_width if key == "reason" else width, len(column.label))
        self._require_update_dimensions = True
        self._clear_caches()
        self.refresh()

    def _sort_rows(self, snap: SweepSnapshot, now: float, sort: str) -> bool:
        """Order the rows by `sort` when they are not already in that order; whether they moved."""
        attempts = {str(a.attempt_id): a for a in snap.attempts}
        cells = {f"cell:{c.name}": c for c in snap.cells}
        return self._put_in_order(sorted(self.keys(), key=lambda k: sort_value(sort, attempts.get(k), cells.get(k), now)))

    def _put_in_order(self, ranked: list[str]) -> bool:
        """Rows in this order of keys (rows a filter brought back go to their place, not to the end); whether
        they moved."""
        if ranked == self.keys():
            return False
        self.flush()  # sort moves rows by index: every row's cells must be current
        # DataTable.sort hands the key function cell values, not row keys: each row's cell label is its own object
        rank = {id(self._data[RowKey(k)][ColumnKey("cell")]): i for i, k in enumerate(ranked)}
        self.sort("cell", key=lambda label: rank[id(label)])
        return True

    def flush(self, visible_only: bool = False) -> None:
        """Format the stale rows (those on screen, or all) and repaint once."""
        if not self._stale:
            return
        keys = list(self._stale)
        if visible_only and self.size.height:
            top = int(self.scroll_y)
            rows = self.ordered_rows[top:top + self.size.height + 1]
            keys = [r.key.value for r in rows if r.key.value is not None and r.key.value in self._stale]
        changed = False
        for key in keys:
            raw, shown = self._raw[key], self._shown[key]
            attempt_row = not key.startswith("cell:")
            for (col, _, _), before, after in zip(COLUMNS, shown, raw, strict=True):
                if before != after:
                    self._set_cell(key, col, FORMAT[col](after) if attempt_row else after)
                    changed = True
            self._shown[key] = raw
            self._stale.discard(key)
        if changed:  # one repaint for the whole poll, not one per cell
            # What `_update_count += 1` would drop, less the row order and y offsets: the rows did not move,
            # and rebuilding those walks every row.
            for cache in (self._row_renderable_cache, self._row_render_cache, self._line_cache,
                          self._cell_render_cache):
                cache.clear()
            self.refresh()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.flush(visible_only=True)

    def on_resize(self) -> None:
        self.flush(visible_only=True)

    def row_text(self, key: str) -> list[object]:
        """A row as displayed once up to date (tests, details)."""
        if key in self._stale:
            self.flush()
        return self.get_row(key)

    def _set_cell(self, key: str, col: str, value: object) -> None:
        """DataTable.update_cell without its per-call refresh (a poll can touch thousands of cells)."""
        self._data[RowKey(key)][ColumnKey(col)] = value
        self._versions[key, col] = next(self._next_version)

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> list[list[Segment]]:
        """DataTable._render_cell, cached by the cell's own version rather than the table-wide update count.

        The key holds everything else the render depends on: the row index (in the segments' click metadata
        and the zebra style), style, width, cursor and hover, pseudo-classes (focus)."""
        row = self._header_row_key if row_index == -1 else self._row_locations.get_key(row_index)
        col = self._column_locations.get_key(column_index)
        if row is None or col is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        # The header row's key has no value: its cells are never updated here, version 0
        version = 0 if row.value is None or col.value is None else self._versions.get((row.value, col.value), 0)
        key = (row, col, version, row_index, base_style, width, cursor,
               hover, self._show_hover_cursor, self.show_cursor, self.cursor_type, self._pseudo_class_state)
        lines = self._cell_cache.get(key)
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._cell_cache[key] = lines
        return lines

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame_style = None
        self._frame_style = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._frame_style = None

    @property
    def rich_style(self) -> Style:
        return self._frame_style if self._frame_style is not None else super().rich_style

    def _get_row_style(self, row_index: int, base_style: Style) -> Style:
        """DataTable._get_row_style, cached: each call resolves a component style through the whole DOM."""
        kind = -1 if row_index == -1 else 2 if row_index < self.fixed_rows else row_index % 2
        key = (kind, base_style, self.zebra_stripes, self._pseudo_class_state)
        style = self._row_styles.get(key)
        if style is None:
            style = self._row_styles[key] = super()._get_row_style(row_index, base_style)
        return style

    def _clear_caches(self) -> None:  # DataTable drops its caches on cursor, theme and column changes: so do we
        super()._clear_caches()
        self._cell_cache.clear()
        self._row_styles.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cell_cache.clear()
        self._row_styles.clear()

    def clear(self, columns: bool = False) -> Self:
        for d in (self._raw, self._shown):
            d.clear()
        self._stale.clear()
        self._versions.clear()
        self._cell_cache.clear()
        return super().clear(columns)

    def keys(self) -> list[str]:
        """The row keys, in display order."""
        return [r.key.value for r in self.ordered_rows if r.key.value is not None]

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # the cursor sits past a row that was just removed
            return None
