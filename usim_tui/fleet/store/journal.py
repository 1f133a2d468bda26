"""The controller's voice: every decision it takes is one ledger event (shown in the app and the report) and
one log line (stdout for a headless run, the app's status line)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.rows import AttemptRow


class Journal:
    def __init__(self, ledger: Ledger, sweep: str, log: Callable[[str], None]) -> None:
        self.ledger, self.sweep, self.log = ledger, sweep, log

    def event(self, now: float, kind: str, message: str, attempt: AttemptRow | None = None,
              data: dict[str, Any] | None = None) -> None:
        self.ledger.add_event(self.sweep, now, kind, message, attempt_id=attempt.id if attempt else None,
                              cell=attempt.cell if attempt else None, data=data)
        self.log(f"[{time.strftime('%H:%M:%S', time.localtime(now))}] {message}")

    def status(self, status: str, now: float) -> None:
        """The provider's health as the last call found it ("ok", or one line on what failed)."""
        if status != self.ledger.sweep_row(self.sweep).provider_status:
            self.ledger.set_sweep(self.sweep, provider_status=status)
            self.event(now, "provider", status, data={"status": status})
