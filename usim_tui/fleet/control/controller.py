"""The controller: an asyncio loop that reconciles the cells the sweep wants with the instances the provider
reports, applies the policies and the budget guard, and records every side effect in the ledger.

All state lives in the ledger; a controller killed at any point and restarted over the same file repairs what
it finds: a create intent whose label shows up in the listing is adopted, one that does not is closed as
never created, a labelled instance the ledger does not know is recorded and destroyed.
Its parts: `logs` (reading events), `ingest` (what events change), `budget` (billing and the cap),
`launching` (starting attempts), `actions` (the commands a person sends).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from usim_core.events import Event
from usim_core.sweep import Sweep
from usim_tui.fleet.clock import Clock, RealClock
from usim_tui.fleet.control import actions, policies
from usim_tui.fleet.control.bidding import Bidding
from usim_tui.fleet.control.credit import CreditReader
from usim_tui.fleet.control.early_stop import EarlyStopper
from usim_tui.fleet.control.host_runs import HostRuns
from usim_tui.fleet.control.launching import Launcher
from usim_tui.fleet.control.logs import LogReader
from usim_tui.fleet.control.reconcile import Reconciler
from usim_tui.fleet.control.teardown import Teardown
from usim_tui.fleet.providers.base import Provider, ProviderError
from usim_tui.fleet.store import budget
from usim_tui.fleet.store.ingest import describe, ingest
from usim_tui.fleet.store.journal import Journal
from usim_tui.fleet.store.ledger import Ledger, event_digest
from usim_tui.fleet.store.rows import AttemptRow
from usim_tui.fleet.store.snapshot import headline, summary_line
from usim_tui.fleet.store.states import CELL_ENDED, GONE, UNSETTLED, AttemptState, CellState, EndReason

A, R = AttemptState, EndReason
LOG_READS_PER_POLL = 4        # paid log fetches per poll besides one final read per ended attempt
OnTick = Callable[["Controller"], None]


class Controller:
    def __init__(self, ledger: Ledger, provider: Provider, sweep: Sweep, clock: Clock | None = None, *,
                 poll_interval: float = 5.0, run_preflight: bool = True, log: Callable[[str], None] = print,
                 runs_root: str | Path = "runs", env: Mapping[str, str] | None = None,
                 preflight_cmd: list[str] | None = None, log_tail: int = 2000,
                 log_reads_per_poll: int = LOG_READS_PER_POLL, wheel: Path | None = None,
                 early_stop: bool = True) -> None:
        """wheel: the wheel SSH hosts install (default: built from this checkout at the first bring-up);
        early_stop: False trains every cell to the end whatever the sweep's `early_stop:` says."""
        self.ledger, self.provider, self.sweep = ledger, provider, sweep
        self.clock = clock or RealClock()
        self.poll_interval, self.log = poll_interval, log
        self.name, self.spec = sweep.name, sweep.spec
        self.journal = Journal(ledger, sweep.name, log)
        self.launcher = Launcher(ledger, provider, sweep, self.journal, self.clock, poll_interval,
                                 Path(runs_root).resolve(), dict(env or {}), run_preflight, preflight_cmd)
        self.host_runs = HostRuns(ledger, provider, self.journal, sweep, self.launcher.runs_root, self.launcher.env,
                                  wheel)
        self.logs = LogReader(provider, log_tail, log_reads_per_poll, self.host_runs)
        self.credit = CreditReader(ledger, sweep.name, provider)
        self.teardown = Teardown(ledger, provider, self.journal, sweep.name, self.clock)
        self.stopping: str | None = None   # "leave": end after this tick; "destroy": tear down, then end
        self.reconciler = Reconciler(ledger, provider, self.journal, self.teardown, sweep.name, self._after_failure,
                                     settle_s=self.spec.provider.create_settle_s)
        ledger.ensure_sweep(sweep)
        ledger.set_sweep(sweep.name, runs_root=str(self.launcher.runs_root), controller_poll=poll_interval)
        self.early = EarlyStopper(ledger, sweep, self.journal, early_stop)
        self.bidding = Bidding(ledger, provider, self.journal, sweep, poll_interval)
        self._lost_added: dict[int, tuple[int, float]] = {}   # resumed attempt -> (source, training charged)

    # ---- state ---------------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        if self.ledger.live_attempts(self.name):
            return False
        if self.ledger.sweep_row(self.name).budget_stop:
            return True
        return all(c.state in CELL_ENDED for c in self.ledger.cells(self.name))

    @property
    def stalled(self) -> str | None:
        """Why nothing more will happen without a person (crash loop with nothing live), else None."""
        row = self.ledger.sweep_row(self.name)
        if row.crash_loop and not self.ledger.live_attempts(self.name):
            return f"launching paused: {row.crash_loop} (fix it, then `usim-tui resume`)"
        return None

    def request_stop(self, mode: str) -> None:
        """End the loop: "leave" after the current tick (instances go on billing: say so), "destroy" once every
        instance is destroyed and confirmed (nothing more is launched)."""
        if mode not in ("leave", "destroy"):
            raise ValueError(f"stop mode {mode!r}; allowed: leave, destroy")
        if self.stopping != "destroy":
            self.stopping = mode

    # ---- the loop ------------------------------------------------------------------------------------------
    async def run(self, until: float | None = None, on_tick: OnTick | None = None) -> str:
        """Tick every poll interval until the sweep is done, stalls, is stopped (`request_stop`), or the clock
        reaches `until`; calls `on_tick(self)` after each tick. Returns why it ended: "done", "stopped",
        "until", or the stall."""
        if self.host_runs.enabled:   # before any instance is paid for: a wheel that cannot be built stops here
            self.host_runs.wheel(self.clock.now())
        while True:
            await self.tick()
            if on_tick is not None:
                on_tick(self)
            if self.stopping == "leave" or (self.stopping and not self.ledger.live_attempts(self.name)):
                return "stopped"
            if self.done:
                self.log(summary_line(self.ledger.snapshot(self.name, now=self.clock.now())))
                return "done"
            if why := self.stalled:
                self.log(why)
                return why
            if until is not None and self.clock.now() + self.poll_interval >= until:
                return "until"
            await self.clock.sleep(self.poll_interval)

    async def tick(self) -> None:
        now = self.clock.now()
        self.ledger.set_sweep(self.name, controller_seen_at=time.time())
        await self._run_commands(now)
        listed = True
        try:
            observed = await self.provider.list()
        except ProviderError as exc:
            listed = False   # blind this tick: bill the worst, launch nothing (a create now could buy twice)
            self.journal.status(f"list failed: {exc}", now)
            for a in self.ledger.live_attempts(self.name):
                if a.state != A.DESTROYING:
                    self.ledger.set_attempt(a.id, spent=budget.billed_blind(self.spec, a, now), billed_until=now)
        else:
            self.journal.status("ok", now)
            await self.credit.read(now)
            await self.reconciler.apply(observed, now)
            for a, verdict in await self.host_runs.bring_up(self.ledger.live_attempts(self.name), now):
                await self._conclude(a, verdict, now)
            await self._read_events(now)
            self.host_runs.pull_resume_points(self.ledger.live_attempts(self.name), now)
            await self._stop_early(now)
            await self._apply_policies(now)
            await self._finish_pulls(now)
        await self._retry_leaks(now)
        await self._budget_guard(now)
        if self.stopping == "destroy":
            await self._destroy_now(self.ledger.live_attempts(self.name), R.USER, "the sweep was stopped",
                                    "the sweep was stopped", now)
        elif not self.stopping and listed:
            self._continue_best(now)
            await self.launcher.launch_wanted(now)
        if not self.credit.final_read and self.done:   # one last reading: the provider's figure for the sweep
            await self.credit.read_final(now)
        rows = self.ledger.attempts(self.name)
        self.ledger.add_spend_sample(self.name, now, budget.spent(rows), budget.committed(self.spec, rows, now,
                                     self.poll_interval), budget.burn_per_hour(rows),
                                     self.ledger.provider_reported(self.name, rows))

    async def observe(self) -> None:
        """Refresh the ledger from one listing and the logs, deciding nothing (for one-shot CLI commands)."""
        now = self.clock.now()
        try:
            observed = await self.provider.list()
        except ProviderError as exc:
            self.journal.status(f"list failed: {exc}", now)
            return
        await self.reconciler.apply(observed, now)
        await self._read_events(now)

    # ---- reconcile the listing with the ledger ------------------------------------------------------------
    def _attempt(self, aid: int) -> AttemptRow:
        a = self.ledger.attempt(aid)
        assert a is not None, f"attempt {aid} vanished from the ledger"
        return a

    # ---- events from the logs -----------------------------------------------------------------------------
    async def _read_events(self, now: float) -> None:
        final, running = self.logs.due(self.ledger.live_attempts(self.name))
        for a in final:
            if (events := await self.logs.read(a, now, final=True)) is not None:
                self._record(a, events, now)
        for a in running:
            if (events := await self.logs.read(a, now)) is not None:
                self._record(a, events, now)

    def _record(self, a: AttemptRow, events: list[Event], now: float) -> None:
        """Record the events the ledger has not seen (a tail is read again and again), then apply what they
        change, in one transaction."""
        with self.ledger.tx():
            new = [e for e in events if self.ledger.add_event(
                self.name, float(e.get("t") or now), str(e.get("kind")), describe(e), attempt_id=a.id, cell=a.cell,
                data=dict(e), digest=event_digest(a.id, dict(e)))]
            got = ingest(new, concluded=bool(a.done_event or a.error_event))
            lost = self._lost_by_resume(a, got.attempt, got.started)   # before this batch's metrics
            for step, values, t in got.metrics:
                self.ledger.add_metrics(a.id, step, values, t)
            if got.attempt:
                self.ledger.set_attempt(a.id, **got.attempt)
            if got.small_metrics is not None:
                self.ledger.set_cell(self.name, a.cell, small_metrics=got.small_metrics)
            if got.full_metrics is not None:
                self.ledger.set_cell(self.name, a.cell, full_metrics=got.full_metrics)
        if got.started:
            self.journal.event(now, "attempt_started", f"{a.cell} #{a.attempt}: started", a)
        if lost is not None:
            src, seconds = lost
            self.journal.event(now, "resume", f"{a.cell} #{a.attempt}: resumed at step {got.attempt['resumed_step']} "
                               f"of {got.attempt.get('resumed_stage')}; #{src.attempt}'s host had trained "
                               f"{seconds / 60:.1f} min past it (lost)", a, data={"lost_s": seconds})

    def _lost_by_resume(self, a: AttemptRow, fields: dict[str, Any], started: bool) -> tuple[AttemptRow, float] | None:
        """A resumed run's first events name where it resumed: the attempt it resumed from (its own instance,
        resumed in place, or the one its cell's resume point came from) trained past that point for nothing;
        that training time is added to the source's lost_s (ledger metric times, read before this batch's).
        A run names its point twice when its skipped stages and its resumed stage come in different reads: the
        second replaces what the first added."""
        if "resumed_step" not in fields:
            return None
        src = a if a.id in self.host_runs.in_place else self.ledger.attempt_of(self.name, a.cell, a.resumed_from)
        if src is None:
            return None
        before = self._lost_added.pop(a.id, None) if not started else None
        charged = src.lost_s - (before[1] if before is not None and before[0] == src.id else 0.0)
        at, last = self.ledger.trained_at(src.id, fields.get("resumed_stage"), fields["resumed_step"])
        lost = max(0.0, last - at) if at is not None and last is not None else 0.0
        self.ledger.set_attempt(src.id, lost_s=max(0.0, charged + lost))
        self._lost_added[a.id] = (src.id, lost)
        return (src, lost) if lost > 0 else None

    # ---- early stopping (control/early_stop.py) -----------------------------------------------------------
    async def _stop_early(self, now: float) -> None:
        for a, j in self.early.judge(now):
            await self.stop_early(a, self.early.reason(j), now)

    async def stop_early(self, a: AttemptRow, reason: str, now: float) -> None:
        """End a cell early (the rule's verdict or a person's): its results so far pulled as a finished cell's
        are, then its instance destroyed; the cell is not launched again."""
        self.ledger.set_cell(self.name, a.cell, state=CellState.STOPPED_EARLY, reason=reason)
        self.journal.event(now, "stopped_early", f"{a.cell} #{a.attempt}: {reason}", a, data={"reason": reason})
        await self.end_attempt(a, R.STOPPED_EARLY, reason, now)

    def _continue_best(self, now: float) -> None:
        if self.ledger.sweep_row(self.name).budget_stop:
            return
        for c in self.early.to_continue():
            atts = self.ledger.attempts(self.name, c.name)
            self.ledger.set_cell(self.name, c.name, state=CellState.PENDING, reason=None, keep=1, continued=1,
                                 not_before=0, counted_from=max((a.attempt for a in atts), default=0))
            self.journal.event(now, "continued", f"{c.name}: one of the best cells stopped early; launched again "
                               "to the full length")

    # ---- policies -----------------------------------------------------------------------------------------
    async def _apply_policies(self, now: float) -> None:
        cells = {c.name: c for c in self.ledger.cells(self.name)}
        for a in self.ledger.live_attempts(self.name):
            if a.state in UNSETTLED or not a.provider_id:
                continue
            cell = cells.get(a.cell)
            if cell is None or (cell.state != CellState.PENDING and not a.done_event):
                await self.destroy_attempt(a, R.ORPHAN, "the cell is not wanted (unknown, finished or failed)", now)
                continue
            obs = self.reconciler.observed.get(a.label)
            if obs is not None and obs.state == A.EXITED and not a.done_event and self.logs.final_pending(a):
                continue   # its last events (perhaps `done`) are not read yet: never call a finished run failed
            v = policies.assess(a, obs, now, self.spec.provider, self.logs.tails.get(a.id, ""))
            if v is None or (v.reason == R.OUTBID and await self.bidding.stays(a, now)):
                continue
            deadline = (a.created_at or now) + self.spec.provider.startup_deadline_s
            if v.reason == R.STARTUP_TIMEOUT and obs is not None and obs.state == A.RUNNING \
                    and self.logs.read_at.get(a.id, float("-inf")) < deadline:
                self.logs.urgent.add(a.id)   # no read of its log since the deadline: read it first, then judge
                continue
            await self._conclude(a, v, now)
        by_cell: dict[str, list[AttemptRow]] = {}
        for a in self.ledger.live_attempts(self.name):
            by_cell.setdefault(a.cell, []).append(a)
        for atts in by_cell.values():
            for aid in policies.surplus_live(atts):
                await self.destroy_attempt(self._attempt(aid), R.ORPHAN, "a second live attempt of the cell", now)

    async def _conclude(self, a: AttemptRow, v: policies.Verdict, now: float) -> None:
        """Carry out a verdict: the result kept (finished) or the failure counted, then the instance destroyed."""
        if v.exclude_machine and a.machine_id:
            self.ledger.exclude_machine(self.name, a.machine_id, v.reason, now)
        if v.outcome == "finished":
            self.ledger.set_cell(self.name, a.cell, state=CellState.FINISHED, reason=R.FINISHED)
            shown = headline(self.ledger.cell(self.name, a.cell).metrics, 4)
            self.journal.event(now, "finished", f"{a.cell} #{a.attempt}: finished {shown}", a)
            await self.end_attempt(a, R.FINISHED, "", now)
        else:
            if v.reason == R.CONTAINER_ERROR:
                v = await self._diagnose_start(a, v)
            why = v.message if v.message.startswith(str(v.reason)) else f"{v.reason}: {v.message}"
            self.journal.event(now, "failed", f"{a.cell} #{a.attempt}: {why}", a,
                               data={"reason": v.reason, "message": v.message})
            await self.end_attempt(a, v.reason, v.message, now)
            self._after_failure(self._attempt(a.id), now)

    async def _diagnose_start(self, a: AttemptRow, v: policies.Verdict) -> policies.Verdict:
        """A container that never started: the host daemon's log says why (Vast: `--daemon-logs`, which
        replaces the container log, so it is read only here)."""
        logs = self.provider.logs
        if "daemon" not in inspect.signature(logs).parameters:
            return v
        try:
            text = await logs(a.provider_id or "", tail=200, daemon=True)  # type: ignore[call-arg]
        except ProviderError:
            return v
        line = policies.error_line(text)
        return dataclasses.replace(v, message=f"{v.message} (daemon log: {line})"[:500]) if line else v

    async def end_attempt(self, a: AttemptRow, reason: str, message: str, now: float) -> None:
        await self.end_attempts([a], reason, message, now)

    async def end_attempts(self, attempts: list[AttemptRow], reason: str, message: str, now: float) -> None:
        """Attempts that are over: results pulled back from an SSH host first (`pulling`), the rest destroyed
        together (one bulk call where the provider has one)."""
        now_gone = []
        for a in attempts:
            if a.state in GONE | {A.DESTROYING, A.PULLING}:
                continue
            self.host_runs.no_pull(a, now)
            if self.host_runs.needs_pull(a):
                self.ledger.set_attempt(a.id, at=now, state=A.PULLING, reason=a.reason or reason,
                                        message=a.message or message or None)
                self.host_runs.pulled_or_given_up(self._attempt(a.id), now)   # starts the pull
            else:
                now_gone.append(a)
        await self.teardown.destroy(now_gone, reason, message, now)

    async def _finish_pulls(self, now: float) -> None:
        for a in self.ledger.live_attempts(self.name):
            if a.state == A.PULLING and self.host_runs.pulled_or_given_up(a, now):
                await self.teardown.destroy([a._replace(state=A.RUNNING)], a.reason or R.USER, "", now)

    def _after_failure(self, a: AttemptRow, now: float) -> None:
        """Mark the cell failed once its attempts are used up; detect a crash loop across cells."""
        cell = self.ledger.cell(self.name, a.cell)
        if cell.state != CellState.PENDING:
            return
        why = policies.exhausted(self.ledger.attempts(self.name, a.cell), cell.counted_from,
                                 self.spec.max_attempts, self.spec.max_machine_faults)
        if why:
            self.ledger.set_cell(self.name, a.cell, state=CellState.FAILED, reason=a.reason)
            self.journal.event(now, "cell_failed", f"{a.cell}: failed after {why}; last: {a.reason}", a)
        row = self.ledger.sweep_row(self.name)
        if row.crash_loop:
            return
        attempts = self.ledger.attempts(self.name)
        if shared := policies.sweep_crash_loop(attempts, self.ledger.cells(self.name), row.crash_loop_cleared_at, now):
            self.ledger.set_sweep(self.name, crash_loop=shared)
            self.journal.event(now, "crash_loop", f"ALERT crash loop, launching paused: {shared}")
        elif hosts := policies.host_loop(attempts, row.crash_loop_cleared_at):
            self.ledger.set_sweep(self.name, crash_loop=hosts)
            self.journal.event(now, "host_loop", f"ALERT launching paused: {hosts}")

    # ---- side effects (intent before, outcome after) ------------------------------------------------------
    async def destroy_attempt(self, a: AttemptRow | None, reason: str, message: str, now: float) -> bool:
        """Destroy one attempt's instance (see teardown.py); False while it is not destroyed."""
        if a is None or a.state in GONE or a.state == A.DESTROYING:
            return True
        return a.id in await self.teardown.destroy([a], reason, message, now)

    async def _destroy_now(self, attempts: list[AttemptRow], reason: str, message: str, lost: str,
                           now: float) -> None:
        """Destroy without waiting for results (the cap, a stop): results not back yet are recorded as lost."""
        for a in attempts:
            if a.state not in GONE | {A.DESTROYING} and self.host_runs.needs_pull(a):
                self.host_runs.lost(a, now, lost)
        await self.teardown.destroy(attempts, reason, message, now)

    async def _retry_leaks(self, now: float) -> None:
        for reason, leaks in _by_reason(a for a in self.ledger.live_attempts(self.name) if a.state == A.LEAKED):
            await self.teardown.destroy([a._replace(state=A.RUNNING) for a in leaks], reason, "", now)

    async def _budget_guard(self, now: float) -> None:
        rows = self.ledger.attempts(self.name)
        live = [a for a in rows if a.live and a.state != A.DESTROYING]
        stop = self.ledger.sweep_row(self.name).budget_stop
        reported = self.ledger.provider_reported(self.name, rows)
        if not stop and live and budget.at_cap(self.spec, rows, self.poll_interval, reported):
            self.ledger.set_sweep(self.name, budget_stop=1)
            self.journal.event(now, "budget", f"budget cap: spent ${budget.spent(rows):.3f} of "
                               f"${self.spec.budget:.2f}; destroying every instance")
            stop = 1
        if stop:
            await self._destroy_now(live, R.BUDGET, "budget cap reached", "the budget cap: money beats data", now)

    # ---- commands (store/command_table.py) ----------------------------------------------------------------------
    async def command(self, command: str, **args: Any) -> str:
        """One person's command, carried out now (see control/actions.py); returns its result line."""
        return await actions.dispatch(self, command, **args)

    async def _run_commands(self, now: float) -> None:
        for c in self.ledger.take_commands(self.name, now):
            try:
                result = await self.command(c.command, **c.args)
            except (KeyError, ValueError, TypeError) as exc:
                result = f"error: {exc}"
            self.ledger.finish_command(c.id, result)


def _by_reason(attempts: Iterable[AttemptRow]) -> list[tuple[str, list[AttemptRow]]]:
    groups: dict[str, list[AttemptRow]] = {}
    for a in attempts:
        groups.setdefault(a.reason or R.USER, []).append(a)
    return list(groups.items())
