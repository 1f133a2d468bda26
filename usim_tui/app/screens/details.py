"""`enter`: one attempt (or a cell without attempts) in full: state, machine, timings, overrides, metrics."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from usim_tui.app.format import (
    CELL_STYLE,
    KEEP_MARK,
    REASON_STYLE,
    clock_time,
    duration,
    loss,
    money,
    state_word,
)
from usim_tui.fleet.store.snapshot import AttemptView, CellView


def details_table(cell: CellView | None, attempt: AttemptView | None, now: float) -> Table:
    t = Table(show_header=False, box=None, padding=(0, 2), expand=True)
    t.add_column(style="bold cyan", width=16)
    t.add_column()
    if cell is not None:
        t.add_row("cell", cell.name)
        t.add_row("round / state", Text.assemble(f"{cell.round} / ", (state_word(cell.state), CELL_STYLE.get(cell.state, "")),
                                                 f" ({cell.reason})" if cell.reason else ""))
        if cell.keep:
            t.add_row("kept", f"{KEEP_MARK} by a person: the stopping rule never stops it (K lets it judge again)")
        if cell.continued:
            t.add_row("continued", "stopped early, then launched again to the full length as one of the best")
        t.add_row("tags", ", ".join(cell.tags) or "-")
        t.add_row("overrides", "\n".join(f"{k} = {v}" for k, v in cell.overrides.items()) or "(base config)")
        t.add_row("attempts / cost", f"{cell.attempts} / {money(cell.cost)}")
        if cell.interrupted or cell.lost_s:
            n = len(cell.interrupted)
            why = ", ".join(f"{k} {cell.interrupted.count(k)}" for k in dict.fromkeys(cell.interrupted))
            t.add_row("interruptions", f"{n} host{'s' if n != 1 else ''} lost ({why or '-'}); "
                                       f"{duration(cell.lost_s)} of training lost")
        if cell.num_gpus > 1:
            t.add_row("GPUs", f"{cell.num_gpus} per host, data-parallel (torchrun)")
        if cell.duplicate_of:
            t.add_row("duplicate of", cell.duplicate_of)
        for k, v in sorted(cell.metrics.items()):
            t.add_row(f"  {k}", f"{v:.5g}")
    if attempt is not None:
        end = attempt.ended_at if attempt.ended_at is not None else now
        t.add_row("", "")
        t.add_row("attempt", f"#{attempt.attempt} (id {attempt.attempt_id}) {attempt.label}")
        t.add_row("state", Text.assemble(attempt.state, " (" if attempt.reason else "",
                                         (state_word(attempt.reason), REASON_STYLE.get(attempt.reason or "", "")),
                                         ")" if attempt.reason else ""))
        if attempt.message and attempt.reason and (cell is None or attempt.message != cell.reason):
            t.add_row("why", attempt.message)
        t.add_row("provider id", attempt.provider_id or "-")
        gpus = f"{attempt.num_gpus}x " if attempt.num_gpus > 1 else ""
        t.add_row("machine / GPU", f"{attempt.machine_id or '-'} / {gpus}{attempt.gpu or '-'}")
        t.add_row("price / spent", f"{money(attempt.price_per_hour)}/h / {money(attempt.spent)}")
        t.add_row("rented", rented(attempt))
        if attempt.resumed_from is not None or attempt.resumed_step is not None:
            src = f"#{attempt.resumed_from}'s resume point" if attempt.resumed_from is not None else "its own disk"
            t.add_row("resumed", f"from {src}, at step {attempt.resumed_step if attempt.resumed_step is not None else '?'}"
                                 f" of {attempt.resumed_stage or '?'}")
        if attempt.checkpoint:
            t.add_row("resume point", f"{attempt.checkpoint} (pulled during training)")
        if attempt.lost_s:
            t.add_row("lost", f"{duration(attempt.lost_s)} of training past the point the cell resumed from")
        t.add_row("created", clock_time(attempt.created_at))
        t.add_row("started", clock_time(attempt.started_at))
        t.add_row("ended", clock_time(attempt.ended_at))
        t.add_row("uptime", duration(end - attempt.started_at if attempt.started_at else None))
        t.add_row("progress", f"stage {attempt.stage or '-'} epoch {attempt.epoch if attempt.epoch is not None else '-'} "
                              f"step {attempt.step if attempt.step is not None else '-'} loss {loss(attempt.last_loss)}")
    return t


def rented(a: AttemptView) -> str:
    """On demand, or at a bid (the bid in force, its host's on-demand price, about what it saved)."""
    if a.bid is None:
        return "on demand"
    od = f" (on demand {money(a.on_demand_per_hour)}/h; saved about {money(a.saved)})" if a.on_demand_per_hour else ""
    return f"interruptible at a bid of {money(a.bid)}/h{od}"


class DetailsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close")]

    def __init__(self, cell: CellView | None, attempt: AttemptView | None, now: float) -> None:
        super().__init__()
        self.cell, self.attempt, self.now = cell, attempt, now

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="details") as box:
            box.border_title = f"details · {self.cell.name if self.cell else self.attempt.cell if self.attempt else ''}"
            yield Static(details_table(self.cell, self.attempt, self.now))
