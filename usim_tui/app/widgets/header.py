"""Top line: what decides the user's next move first (a failing ledger or provider, paused launching and why,
the budget cap, no controller), then who runs the sweep, then the sweep, its spend and the clock. Every part
comes from the same snapshot, so no two parts can contradict each other."""

from __future__ import annotations

from rich.text import Text
from textual.visual import VisualType
from textual.widgets import Static

from usim_tui.app.format import clock_time, money
from usim_tui.fleet.store.snapshot import SweepSnapshot
from usim_tui.fleet.store.states import LIVE


class SweepHeader(Static):
    DEFAULT_CSS = "SweepHeader { height: 1; background: $panel; padding: 0 1; }"
    _last: Text | None = None

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        if isinstance(content, Text) and content == self._last:
            return  # unchanged: no repaint
        self._last = content if isinstance(content, Text) else None
        super().update(content, layout=layout)

    def show(self, snap: SweepSnapshot | None, now: float, mode: str = "", poll_error: str | None = None,
             controller: str | None = None, disabled: bool = False) -> None:
        """`controller`: the heartbeat's line (screens/status.py: heartbeat), None where the view has none (a
        rehearsal, a static snapshot); `mode`: how this app views the sweep, when not plainly (read-only, a
        rehearsal, its controller ended); `disabled`: the mode disables the actions, so it decides what the
        user can do and comes first."""
        if snap is None:
            t = Text.assemble(("usim ", "bold"), (f"{clock_time(now)} · ", ""),
                              (f"ledger unreadable: {poll_error}" if poll_error else "reading the ledger…",
                               "bold red" if poll_error else "dim"))
            self.update(t)
            return
        t = Text()
        first = [(mode, "bold yellow")] if mode and disabled else []
        # nothing launches once the app's own controller has ended (disabled, and no controller to show)
        for text, style in first + attention(snap, poll_error, controller, launching=not disabled or bool(controller)):
            t.append(text + " · ", style=style)
        t.append(f"{snap.sweep} ", style="bold")
        t.append(f"on {snap.provider} · spent {money(snap.budget.spent)} of {money(snap.budget.budget)} · {clock_time(now)}")
        if not snap.auto:
            t.append(" · auto OFF", style="bold yellow")
        if mode and not disabled:
            t.append(f" · {mode}", style="italic")
        if controller and not controller.startswith("no controller"):
            t.append(f" · {controller}", style="dim")
        self.update(t)


def attention(snap: SweepSnapshot, poll_error: str | None, controller: str | None,
              launching: bool = True) -> list[tuple[str, str]]:
    """The parts that want the user, most urgent first; when there are none, the one state that says all is
    well (`launching on`, where `launching`: a controller can still launch)."""
    out: list[tuple[str, str]] = []
    if poll_error:
        out.append((f"LEDGER READ FAILING: {poll_error}", "bold red"))
    if snap.provider_status != "ok":
        out.append((f"PROVIDER FAILING: {snap.provider_status}", "bold red"))
    live = sum(1 for a in snap.attempts if a.state in LIVE)
    watched = controller is None or not controller.startswith("no controller")
    if not watched:
        out.append((controller + (f" · {live} LIVE UNWATCHED" if live else ""), "bold red" if live else "bold yellow"))
    if getattr(snap, "budget_stop", False):
        out.append(("STOPPED AT THE BUDGET CAP", "bold red"))
    if snap.crash_loop:
        out.append((f"LAUNCHING PAUSED: {snap.crash_loop}", "bold red"))
    elif snap.paused:
        out.append(("LAUNCHING PAUSED (p resumes)", "bold yellow"))
    if not out and launching:
        out.append(("launching on", "green"))
    return out
