"""One row per attempt, keyed by its attempt id, updated in place so the cursor survives refreshes.

Cells that have no attempt yet get one row keyed `cell:<name>`, so they can be selected and launched.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from usim_tui.app.format import ATTEMPT_STYLE, CELL_STYLE, duration, loss, sparkline
from usim_tui.fleet.snapshot import AttemptView, CellView, SweepSnapshot

# (column key, label, width)
COLUMNS = (
    ("cell", "cell", 24), ("attempt", "#", 1), ("state", "state", 9), ("reason", "reason", 12),
    ("gpu", "GPU", 8), ("price", "$/h", 4), ("uptime", "uptime", 6), ("stage", "stage", 9),
    ("epoch", "ep", 3), ("loss", "loss", 7), ("spark", "loss curve", 10),
)
STAGE_SHORT = {"diffusion_residual": "diffusion", "consistency_distill": "distill"}


def cell_label(name: str, marked: bool) -> Text:
    return Text.assemble(("● " if marked else "  ", "bold magenta"), name)


def row_values(a: AttemptView, now: float, marked: bool) -> tuple[object, ...]:
    end = a.ended_at if a.ended_at is not None else now
    uptime = end - a.started_at if a.started_at is not None else None
    return (
        cell_label(a.cell, marked),
        str(a.attempt),
        Text(a.state, style=ATTEMPT_STYLE.get(a.state, "")),
        a.reason or "",
        a.gpu or "-",
        f"{a.price_per_hour:.2f}",
        duration(uptime),
        STAGE_SHORT.get(a.stage, a.stage) if a.stage else "-",
        "-" if a.epoch is None else str(a.epoch),
        loss(a.last_loss),
        Text(sparkline(a.loss_history, 10), style="cyan"),
    )


def cell_row_values(c: CellView, marked: bool) -> tuple[object, ...]:
    reason = f"= {c.duplicate_of}" if c.duplicate_of else c.reason or ""
    return (cell_label(c.name, marked), "-", Text(c.state, style=CELL_STYLE.get(c.state, "")),
            reason, "-", "-", "-", "-", "-", "-", "")


def matches(query: str, *fields: str | None) -> bool:
    q = query.strip().lower()
    return not q or any(q in (s or "").lower() for s in fields)


def wanted_rows(snap: SweepSnapshot, now: float, marked: set[str], query: str) -> dict[str, tuple[object, ...]]:
    rows: dict[str, tuple[object, ...]] = {}
    with_attempts = set()
    for a in snap.attempts:
        with_attempts.add(a.cell)
        key = str(a.attempt_id)
        if matches(query, a.cell, a.state, a.reason, a.gpu, a.stage):
            rows[key] = row_values(a, now, key in marked)
    for c in snap.cells:
        key = f"cell:{c.name}"
        if c.name not in with_attempts and matches(query, c.name, c.state, c.reason):
            rows[key] = cell_row_values(c, key in marked)
    return rows


class InstancesTable(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    def apply(self, snap: SweepSnapshot, now: float, marked: set[str], query: str = "") -> None:
        """Diff the table against the snapshot: update changed cells, add new rows, remove gone ones."""
        wanted = wanted_rows(snap, now, marked, query)
        cursor = self.selected_key
        gone = [k.value for k in self.rows if k.value not in wanted]
        for key in gone:
            self.remove_row(key)
        for key, values in wanted.items():
            if key in self.rows:
                current = self.get_row(key)
                for (col, _, _), old, new in zip(COLUMNS, current, values, strict=True):
                    if old != new:
                        self.update_cell(key, col, new)
            else:
                self.add_row(*values, key=key)
        if gone and cursor in wanted:  # removing a row above the cursor would move it onto another attempt
            self.move_cursor(row=self.get_row_index(cursor), animate=False)

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # the cursor sits past a row that was just removed
            return None
