"""Messages between the poll worker, the panes and the screens."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from usim_tui.fleet.snapshot import EventView, SweepSnapshot


@dataclass
class SnapshotReady(Message):
    """One poll's result: the ledger snapshot plus the data of the selected attempts."""

    snapshot: SweepSnapshot
    series: dict[int, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    events: list[EventView] = field(default_factory=list)
    events_for: int | None = None


@dataclass
class PollFailed(Message):
    error: str


@dataclass
class CommandDone(Message):
    """A command went to the controller (or the ledger queue); `error` when it did not."""

    command: str
    detail: str
    error: str | None = None


@dataclass
class SelectionChanged(Message):
    """The cursor or the marks in the instances table moved: curves and events follow."""

    attempt_id: int | None
    marked: tuple[int, ...]
