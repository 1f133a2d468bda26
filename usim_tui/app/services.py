"""What the screens use of the app, as a protocol: the screens are typed against it and never import app.py
(which imports them). UsimApp (app.py) provides it."""

from __future__ import annotations

from typing import Any, Protocol

from usim_tui.app.source import Source
from usim_tui.fleet.clock import Clock


class UsimServices(Protocol):
    source: Source
    clock: Clock
    mode: str
    read_only: bool
    dangerous: bool

    def poll_now(self) -> None:
        """Poll the ledger now (after a command), not at the next tick."""
        ...

    def send(self, command: str, **args: Any) -> None:
        """Queue a command for the controller (refused, and said so, when read-only)."""
        ...
