"""Subprocess entry for tests: `python stuck_main.py RUN_DIR` runs, through the guarded driver of `usim-core train`,
a body whose main thread blocks in native code that does not return on a signal (a TCPStore wait, as a GPU wait on
a dead peer would). `started` is written once the main thread is inside that wait, so a SIGTERM sent after it
finds the main thread unable to run Python's handler."""

from __future__ import annotations

import datetime
import linecache
import sys
import threading
import time
from pathlib import Path

import torch.distributed as dist

from usim_core.events import EventLog
from usim_core.train.guard import run_guarded


def body(events: EventLog) -> None:
    store = dist.TCPStore("127.0.0.1", 0, 1, True, timeout=datetime.timedelta(seconds=300))
    threading.Thread(target=announce, args=(events,), daemon=True).start()
    store.wait(["never set"])


def announce(events: EventLog) -> None:
    """`started` once the main thread is on the wait's line while this thread holds the interpreter: it gives the
    interpreter up on that line only inside the wait (no other instruction there lets another thread run)."""
    main = threading.main_thread().ident
    while True:
        frame = sys._current_frames()[main]
        if "store.wait(" in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
            break
        time.sleep(0.01)
    events.emit("started", pid=0)


if __name__ == "__main__":
    events = EventLog(Path(sys.argv[1]))
    sys.exit(run_guarded(events, lambda: body(events)))
