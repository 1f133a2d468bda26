"""Where the app reads snapshots and sends commands: the ledger, with or without an in-process controller.

The app keeps no state of its own: every pane is drawn from `snapshot()`, and every action becomes a
controller call (the controller runs in this process) or a row in the ledger's command queue (attached to a
controller running elsewhere). The blocking reads are called from a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from usim_tui.fleet.control.actions import dispatch
from usim_tui.fleet.process import daemon
from usim_tui.fleet.store.command_table import check_command
from usim_tui.fleet.store.snapshot import EventView, SweepSnapshot

OUTPUT_FILES = ("console.log", "host.log", "train.log")   # a local run's output; an SSH host's, pulled
OUTPUT_TAIL_BYTES = 400_000


class Source(Protocol):
    sweep: str
    in_process: bool  # True: the controller lives in this app and stops when it quits
    log: deque[str]   # the controller's own messages, newest last

    def snapshot(self, now: float | None = None) -> SweepSnapshot: ...

    def metric_series(self, attempt_ids: list[int], max_points: int = 400) -> dict[int, dict[str, list[tuple[int, float]]]]: ...

    def attempt_events(self, attempt_id: int, limit: int = 200) -> list[EventView]: ...

    async def send(self, command: str, **args: Any) -> str: ...

    async def provider_logs(self, attempt_id: int) -> str | None: ...

    async def run(self) -> None: ...

    async def close(self) -> None: ...


class LedgerSource:
    """The real source: a Ledger, plus the Controller when this app runs the sweep."""

    def __init__(self, ledger: Any, sweep: str | None = None, controller: Any | None = None,
                 provider: Any | None = None, log: deque[str] | None = None, sweep_file: Path | None = None) -> None:
        self.ledger, self.controller, self.provider = ledger, controller, provider
        self.sweep_file = sweep_file   # for the "what next" line (the report command)
        self.log: deque[str] = log if log is not None else deque(maxlen=200)  # the controller's own messages
        self.sweep = sweep or ""  # attached without a name: the ledger's sweep, learnt from the first snapshot
        self.in_process = controller is not None
        self._version: int | None = None          # the ledger's data_version at the last snapshot read
        self._last: SweepSnapshot | None = None

    def snapshot(self, now: float | None = None) -> SweepSnapshot:
        """The ledger's snapshot; read again only when another process wrote to the ledger since (SQLite's
        data_version), else the last one at the new time: an idle app costs next to nothing."""
        version = None if self.in_process else self.ledger.data_version()
        if version is not None and version == self._version and self._last is not None:
            snap = dataclasses.replace(self._last, now=time.time() if now is None else now)
        else:
            snap = self.ledger.snapshot(self.sweep or None, now=now)
            self.sweep = self.sweep or snap.sweep
            self._version, self._last = version, snap
        if self.in_process:
            return snap
        # whether a controller runs is the OS lock's to say (released the moment it ends), not the heartbeat's age
        try:
            held: bool | None = daemon.is_held(self.ledger.path)
        except OSError:   # a lock file this user cannot open: the heartbeat decides, as without one
            held = None
        return dataclasses.replace(snap, controller_held=held)

    def metric_series(self, attempt_ids: list[int], max_points: int = 400) -> dict[int, dict[str, list[tuple[int, float]]]]:
        if not attempt_ids:
            return {}
        return self.ledger.run_on_series(attempt_ids, max_points=max_points)   # across resumes

    def attempt_events(self, attempt_id: int, limit: int = 200) -> list[EventView]:
        return self.ledger.attempt_events(attempt_id, limit=limit)

    async def send(self, command: str, **args: Any) -> str:
        check_command(command, args)
        detail = " ".join(f"{k}={v}" for k, v in args.items())
        if not self.in_process:
            cid = await asyncio.to_thread(self.ledger.enqueue, self.sweep, command, **args)
            self._last = None   # our own write does not move data_version: show the queued command now
            return f"queued {command} {detail} (#{cid})".strip()
        if self.controller is None:
            raise RuntimeError("the rehearsal's controller has not started yet")
        result = await dispatch(self.controller, command, **args)
        return f"{command} {detail}".strip() + ("" if result == "ok" else f": {result}")

    def start_controller(self) -> str:
        """Start the sweep's controller process (or find the one running); one line saying which. Blocking."""
        import argparse

        from usim_core.config import ConfigError
        from usim_tui.fleet.process import follow

        row = self.ledger.sweep_row(self.sweep or None)
        args = argparse.Namespace(sweep=row.path, provider=row.provider, ledger=str(self.ledger.path),
                                  runs_root=row.runs_root or str(self.ledger.path.parent.parent),
                                  no_preflight=False, poll=None, local_command=None)
        try:
            started = follow.start_or_attach(args)
        except ConfigError as exc:
            return f"[red]could not start the controller: {exc}[/]"
        return f"controller pid {started.holder.pid} {'started' if started.started else 'already running'}"

    async def provider_logs(self, attempt_id: int) -> str | None:
        """The trainer's output: the provider's log tail when the provider is in this process, else the file
        its run directory holds on this machine (a local run's console.log; an SSH host's host.log and
        train.log, once pulled). None when there is none yet."""
        if self.provider is None:
            return await asyncio.to_thread(self._run_dir_output, attempt_id)
        snap = await asyncio.to_thread(self.snapshot)
        att = next((a for a in snap.attempts if a.attempt_id == attempt_id), None)
        if att is None or not att.provider_id:
            return None
        return await self.provider.logs(att.provider_id, tail=2000)

    def _run_dir_output(self, attempt_id: int) -> str | None:
        a = self.ledger.attempt(attempt_id)
        if a is None or not a.run_dir:
            return None
        for name in OUTPUT_FILES:
            path = Path(a.run_dir) / name
            if path.is_file():
                with open(path, "rb") as f:
                    f.seek(max(0, path.stat().st_size - OUTPUT_TAIL_BYTES))
                    return f"({path})\n" + f.read().decode(errors="replace")
        return None

    async def run(self) -> None:
        if self.controller is not None:
            await self.controller.run()

    async def close(self) -> None:
        if self.provider is not None:
            await self.provider.close()


class StaticSource:
    """A fixed snapshot (demos, snapshot tests, benchmarks); commands are recorded, not executed."""

    def __init__(self, snapshot: SweepSnapshot, series: dict[int, dict[str, list[tuple[int, float]]]] | None = None,
                 events: dict[int, list[EventView]] | None = None, in_process: bool = False) -> None:
        self.sweep = snapshot.sweep
        self.in_process = in_process
        self.current = snapshot
        self.series = series or {}
        self.events = events or {}
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.log: deque[str] = deque(maxlen=200)

    def snapshot(self, now: float | None = None) -> SweepSnapshot:
        return self.current

    def metric_series(self, attempt_ids: list[int], max_points: int = 400) -> dict[int, dict[str, list[tuple[int, float]]]]:
        return {i: self.series[i] for i in attempt_ids if i in self.series}

    def attempt_events(self, attempt_id: int, limit: int = 200) -> list[EventView]:
        return self.events.get(attempt_id, [])[-limit:]

    def start_controller(self) -> str:
        self.sent.append(("start_controller", {}))
        return "controller pid 4242 started"

    async def send(self, command: str, **args: Any) -> str:
        self.sent.append((command, args))
        return f"{command} " + " ".join(f"{k}={v}" for k, v in args.items())

    async def provider_logs(self, attempt_id: int) -> str | None:
        return None

    async def run(self) -> None:
        return None

    async def close(self) -> None:
        return None
