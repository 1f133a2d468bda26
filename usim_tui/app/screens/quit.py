"""Quitting the app while its sweep's controller runs as its own process: leave the sweep running (the
controller goes on watching, capping and finishing it) or stop it (its instances destroyed, results kept)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from usim_tui.app.format import money
from usim_tui.fleet.store.snapshot import AttemptView

LEAVE, STOP = "leave", "stop"


def quit_question(live: list[AttemptView], pid: int | None, left: int = 0) -> str:
    """`live`: the instances that bill; `left`: the cells not finished, failed or duplicate yet."""
    burn = sum(a.price_per_hour for a in live)
    who = f"its controller (pid {pid})" if pid else "its controller"
    now = f"{len(live)} instance(s) live, {money(burn)}/h" if live else "no instance live yet"
    todo = f", {left} cell(s) left" if left else ""
    return (f"{now}{todo}. Quitting the app does not stop the sweep:\n"
            f"  leave (l): {who} goes on {'launching and ' if left else ''}watching it, within the budget; "
            "reattach with usim-tui again\n"
            f"  stop (s):  {f'destroy the {len(live)} instance(s) now and ' if live else ''}end the controller; "
            "finished results stay")


class QuitScreen(ModalScreen[str | None]):
    """Answers LEAVE, STOP, or None (stay in the app). `default` is the focused button: STOP for a local
    sweep (trainers on this machine: `make run`'s demo), LEAVE for rented ones."""

    BINDINGS = [
        Binding("l", "answer('leave')", "Leave running"),
        Binding("s", "answer('stop')", "Stop the sweep"),
        Binding("escape", "answer(None)", "Cancel"),
    ]

    def __init__(self, question: str, default: str) -> None:
        super().__init__()
        self.question, self.default = question, default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question, id="question")
            with Horizontal(id="buttons"):
                yield Button("Leave it running (l)", variant="primary", id=LEAVE)
                yield Button("Stop it (s)", variant="error", id=STOP)
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(f"#{self.default}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id if event.button.id in (LEAVE, STOP) else None)

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)
