"""What the poll worker posts to the main screen: a snapshot read, or why it could not be read."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from usim_tui.fleet.store.snapshot import EventView, SweepSnapshot


@dataclass
class SnapshotReady(Message):
    """One poll's result: the ledger snapshot plus the data of the selected attempts."""

    snapshot: SweepSnapshot
    series: dict[int, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    events: list[EventView] = field(default_factory=list)
    events_for: int | None = None
    log: str | None = None  # the controller's latest message (in-process controller only)


@dataclass
class PollFailed(Message):
    """The ledger could not be read (locked, missing): shown in the header, the last snapshot stays."""

    error: str
