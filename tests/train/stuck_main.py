"""Subprocess entry for tests: `python stuck_main.py RUN_DIR` runs a body that emits `started` and then blocks its
main thread in native code that ignores signals (a TCPStore wait, as a GPU wait on a dead peer would) through
the guarded driver of `usim-core train`."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import torch.distributed as dist

from usim_core.events import EventLog
from usim_core.train.guard import run_guarded


def body(events: EventLog) -> None:
    store = dist.TCPStore("127.0.0.1", 0, 1, True, timeout=datetime.timedelta(seconds=300))
    events.emit("started", pid=0)
    store.wait(["never set"])


if __name__ == "__main__":
    events = EventLog(Path(sys.argv[1]))
    sys.exit(run_guarded(events, lambda: body(events)))
