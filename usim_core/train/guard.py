"""Every way out of `usim-core train` has its event: `run_guarded` turns the body's end into an exit code and at
most one `error` event, SIGTERM included (no torch here).

SIGTERM normally raises `Terminated` in the main thread. A main thread inside native code that never returns to
Python (a GPU wait on a collective whose peer died: NCCL does not notice it; torchrun then stops the rank and kills
it 30 s later) cannot run that handler, so a watcher thread, woken by the same signal through the wakeup fd,
reports `terminated` itself after GRACE_S and ends the process."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable

from usim_core.config import ConfigError

EXIT_TERMINATED = 143
GRACE_S = 10.0   # under torchrun's 30 s between its SIGTERM and its SIGKILL

_lock = threading.Lock()
_claimed = False  # the exit is being reported (by the main thread or the watcher): once only
_sigterm = threading.Event()  # SIGTERM arrived (torchrun stopping this rank)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so the run ends with an `error` event."""


def _claim() -> bool:
    """True for the first caller only: it reports the exit."""
    global _claimed
    with _lock:
        first, _claimed = not _claimed, True
        return first


def _on_sigterm(signum, frame) -> None:
    _sigterm.set()
    if not _claimed:  # an exit being reported (torchrun stopping every rank) is not interrupted
        raise Terminated()


def _watch(events, fd: int) -> None:
    while os.read(fd, 1) != bytes([signal.SIGTERM]):
        pass
    time.sleep(GRACE_S)
    if _claim():  # the main thread has not acted on it: it is stuck in native code
        events.emit("error", reason="terminated", frame="SIGTERM (main thread stuck in native code)")
        os._exit(EXIT_TERMINATED)


def _start_watcher(events) -> None:
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(events, r), name="usim-sigterm-watch", daemon=True).start()


def last_frame(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    return f"{tb[-1].filename}:{tb[-1].lineno} in {tb[-1].name}" if tb else ""


def run_guarded(events, body: Callable[[], object]) -> int:
    """Run `body` so that every way out has its event: 0 (body emitted `done`), 2 config error, 1 any other
    failure, 143 on SIGTERM; failures emit `error` with a one-line reason and the traceback's last frame.
    Once per process, from its main thread."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    _start_watcher(events)
    try:
        body()
        _claim()  # ended: a SIGTERM from now on (a slow shutdown) adds no event
        return 0
    except BaseException as exc:  # never a silent failure: every exit has its error event
        if not _claim():  # the watcher is reporting and ends the process
            threading.Event().wait()
        if isinstance(exc, Terminated):
            events.emit("error", reason="terminated", frame="SIGTERM")
            return EXIT_TERMINATED
        if isinstance(exc, ConfigError):
            reason = str(exc).splitlines()[0] if str(exc) else "config error"
            events.emit("error", reason=f"config: {reason}", frame=last_frame(exc))
            if os.environ.get("RANK", "0") == "0":   # under torchrun, once (every rank refuses the same config)
                print(f"error: {exc}", file=sys.stderr)
            settle = getattr(events, "settle_refusal", None)  # rank 0 says it has reported; a peer waits for that
            if settle is not None:
                settle(_sigterm)
            return 2
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
        events.emit("error", reason=reason, frame=last_frame(exc))
        traceback.print_exc()
        return 1
