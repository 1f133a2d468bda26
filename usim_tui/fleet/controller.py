"""The controller: an asyncio loop that reconciles the cells the sweep wants with the instances the provider
reports, applies the policies and the budget guard, and records every side effect in the ledger.

All state lives in the ledger; a controller killed at any point and restarted over the same file repairs what
it finds: a create intent whose label shows up in the listing is adopted, one that does not is closed as
never created, a labelled instance the ledger does not know is recorded and destroyed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from usim_core.config import RunConfig
from usim_core.events import parse_lines
from usim_core.sweep import Sweep
from usim_tui.fleet import budget, policies
from usim_tui.fleet.clock import Clock, RealClock
from usim_tui.fleet.ledger import (
    DESTROYED,
    DESTROYING,
    GONE,
    LAUNCHING,
    LEAKED,
    NOT_CREATED,
    Ledger,
    event_digest,
)
from usim_tui.fleet.providers.base import (
    EXITED,
    RUNNING,
    STOPPED,
    TERMINAL,
    AuthError,
    LaunchSpec,
    NoCapacity,
    Observed,
    Provider,
    ProviderError,
    make_label,
    parse_label,
)
from usim_tui.fleet.snapshot import headline

LEAK_AFTER_POLLS = 3          # a destroyed instance still listed after this many polls is leaked
LOG_READS_PER_POLL = 4        # paid log fetches per poll besides one final read per ended attempt
FINAL_TRIES = 3               # polls an exited attempt's verdict waits for its final log read
CREDIT_EVERY_S = 300.0        # how often the provider's account credit is read (one call), where it has one
EVENT_META = {"v", "t", "kind", "step", "epoch", "stage", "total_steps", "steps", "epochs", "steps_per_epoch"}


class Controller:
    def __init__(self, ledger: Ledger, provider: Provider, sweep: Sweep, clock: Clock | None = None, *,
                 poll_interval: float = 5.0, run_preflight: bool = True, log: Callable[[str], None] = print,
                 runs_root: str | Path = "runs", env: Mapping[str, str] | None = None,
                 preflight_cmd: list[str] | None = None, log_tail: int = 2000,
                 log_reads_per_poll: int = LOG_READS_PER_POLL) -> None:
        self.ledger, self.provider, self.sweep = ledger, provider, sweep
        self.clock = clock or RealClock()
        self.poll_interval, self.run_preflight, self.log = poll_interval, run_preflight, log
        self.runs_root = Path(runs_root).resolve()
        self.env = dict(env or {})   # passed to instances only (secrets live here, never in the ledger)
        self.preflight_cmd = preflight_cmd or [sys.executable, "-m", "usim_core", "preflight", "--config"]
        self.log_tail, self.log_reads_per_poll = log_tail, log_reads_per_poll
        self.name, self.spec = sweep.name, sweep.spec
        self._obs: dict[str, Observed] = {}
        self._seen: dict[int, set[str]] = {}
        self._seen_lines: dict[int, set[int]] = {}   # attempt -> hashes of log lines already parsed
        self._budget_note = ""
        self._tails: dict[int, str] = {}
        self._read_at: dict[int, float] = {}      # attempt -> when its log was last fetched (or tried)
        self._read_state: dict[int, str] = {}     # attempt -> its state at that fetch
        self._final_read: set[int] = set()        # ended attempts whose last events have been read
        self._final_tries: dict[int, int] = {}    # failed final reads: the verdict waits up to FINAL_TRIES polls
        self._urgent: set[int] = set()            # a start-up deadline waits on a fresh read of these
        self._credit_at = float("-inf")
        self._credit_final = False
        ledger.ensure_sweep(sweep)

    # ---- state ---------------------------------------------------------------------------------------------
    def _row(self) -> Any:
        return self.ledger.sweep_row(self.name)

    @property
    def done(self) -> bool:
        if self.ledger.live_attempts(self.name):
            return False
        if self._row()["budget_stop"]:
            return True
        return all(c["state"] in ("finished", "failed", "duplicate") for c in self.ledger.cells(self.name))

    @property
    def stalled(self) -> str | None:
        """Why nothing more will happen without a person (crash loop with nothing live), else None."""
        row = self._row()
        if row["crash_loop"] and not self.ledger.live_attempts(self.name):
            return f"launching paused: {row['crash_loop']} (fix it, then `usim-tui resume`)"
        return None

    # ---- the loop ------------------------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await self.tick()
            if self.done:
                self.log(self.summary())
                return
            if why := self.stalled:
                self.log(why)
                return
            await self.clock.sleep(self.poll_interval)

    async def tick(self) -> None:
        now = self.clock.now()
        self.ledger.set_sweep(self.name, controller_seen_at=time.time())
        await self._run_commands(now)
        try:
            observed = await self.provider.list()
        except ProviderError as exc:
            self._set_status(f"list failed: {exc}", now)
            self._accrue_blind(now)
        else:
            self._set_status("ok", now)
            await self._read_credit(now)
            await self._reconcile(observed, now)
            await self._read_events(now)
            await self._apply_policies(now)
        await self._retry_leaks(now)
        await self._budget_guard(now)
        await self._launch_wanted(now)
        if not self._credit_final and self.done:   # one last reading: the provider's figure for the whole sweep
            self._credit_final = True
            await self._read_credit(now, force=True)
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
            self._set_status(f"list failed: {exc}", now)
            return
        await self._reconcile(observed, now)
        await self._read_events(now)

    async def _read_credit(self, now: float, force: bool = False) -> None:
        """Every CREDIT_EVERY_S, the provider's account credit (Vast): the first reading is the sweep's baseline,
        so baseline - now is the spend the provider reports (everything on the account, not only this sweep)."""
        credit = getattr(self.provider, "credit", None)
        if credit is None or (not force and now - self._credit_at < CREDIT_EVERY_S):
            return
        self._credit_at = now
        try:
            value = float(await credit())
        except ProviderError:
            return
        fields: dict[str, Any] = {"credit_now": value, "credit_at": now}
        if self._row()["credit_start"] is None:
            fields["credit_start"] = value
        self.ledger.set_sweep(self.name, **fields)

    def _set_status(self, status: str, now: float) -> None:
        if status != self._row()["provider_status"]:
            self.ledger.set_sweep(self.name, provider_status=status)
            self._event(now, "provider", status)

    def _event(self, now: float, kind: str, message: str, attempt: Mapping[str, Any] | None = None) -> None:
        self.ledger.add_event(self.name, now, kind, message, attempt_id=attempt["id"] if attempt else None,
                              cell=attempt["cell"] if attempt else None)
        self.log(f"[{time.strftime('%H:%M:%S', time.localtime(now))}] {message}")

    # ---- reconcile the listing with the ledger ------------------------------------------------------------
    async def _reconcile(self, observed: list[Observed], now: float) -> None:
        mine: dict[str, Observed] = {}
        for o in observed:
            parsed = parse_label(o.label)
            if parsed and parsed[0] == self.name:
                mine[o.label] = o
        self._obs = dict(mine)
        for a in self.ledger.attempts(self.name):
            o = mine.pop(a["label"], None)
            if o is None:
                self._absent(a, now)
            else:
                self._present(a, o, now)
        for label, o in mine.items():  # labelled as ours, unknown to the ledger: record it, then destroy it
            _, cell, attempt = parse_label(label)  # type: ignore[misc]
            aid = self.ledger.new_attempt(self.name, cell, attempt, label, "", now)
            self.ledger.close_create_intent(aid, "adopted", now, f"found by label as {o.provider_id}")
            self.ledger.set_attempt(aid, reason="orphan", message="labelled instance with no ledger intent")
            self._present(self.ledger.attempt(aid), o, now)
            self._event(now, "orphan", f"{label}: instance {o.provider_id} not in the ledger; destroying it",
                        self.ledger.attempt(aid))
            await self._destroy(self.ledger.attempt(aid), "orphan", "labelled instance with no ledger intent", now)

    def _absent(self, a: Mapping[str, Any], now: float) -> None:
        state = a["state"]
        if state in GONE:
            return
        if state == LAUNCHING:
            self.ledger.set_attempt(a["id"], state=NOT_CREATED, ended_at=now, billed_until=now,
                                    message=a["message"] or "create not confirmed: no instance with this label")
            self.ledger.close_create_intent(a["id"], "absent", now, "no instance with this label in the listing")
        elif state in (DESTROYING, LEAKED):
            self.ledger.set_attempt(a["id"], state=DESTROYED, ended_at=a["ended_at"] or now)
            self._event(now, "destroyed", f"{a['cell']} #{a['attempt']}: destroy confirmed", a)
        else:  # vanished without our destroy (destroyed outside usim, or the host is gone)
            self._accrue(a, a["state"], now, None)
            if a["machine_id"] and not a["reason"]:
                self.ledger.exclude_machine(self.name, a["machine_id"], "offline", now)
            self.ledger.set_attempt(a["id"], state=DESTROYED, ended_at=now, reason=a["reason"] or "offline",
                                    message=a["message"] or "instance disappeared from the provider's listing")
            self._event(now, "vanished", f"{a['cell']} #{a['attempt']}: instance disappeared", a)
            self._after_failure(self.ledger.attempt(a["id"]), now)

    def _present(self, a: Mapping[str, Any], o: Observed, now: float) -> None:
        state = a["state"]
        fields: dict[str, Any] = dict(provider_id=o.provider_id, machine_id=o.machine_id, gpu=o.gpu,
                                      price_per_hour=o.price_per_hour, storage_per_hour=o.storage_per_hour,
                                      status_msg=o.status_msg, exit_code=o.exit_code)
        if state == LAUNCHING or state == NOT_CREATED:
            self.ledger.close_create_intent(a["id"], "adopted", now, f"found by label as {o.provider_id}")
            self._event(now, "adopted", f"{a['cell']} #{a['attempt']}: instance {o.provider_id} found by label", a)
            fields.update(state=o.state, ended_at=None)
        elif state == DESTROYED:
            fields.update(state=LEAKED)   # we believed it gone: it is not
            self._event(now, "leaked", f"ALERT {a['label']}: destroyed instance {o.provider_id} is still listed", a)
        elif state == DESTROYING:
            fields.update(destroy_failures=a["destroy_failures"] + 1)
            if a["destroy_failures"] + 1 >= LEAK_AFTER_POLLS:
                fields.update(state=LEAKED)
                self._event(now, "leaked", f"ALERT {a['label']}: still listed {LEAK_AFTER_POLLS} polls after destroy", a)
        elif state != LEAKED:
            fields.update(state=o.state)
        if o.state == RUNNING and not a["started_at"]:
            fields["started_at"] = o.started_at or now
        if o.cost is not None:
            fields["provider_cost"] = o.cost
        self.ledger.set_attempt(a["id"], **fields)
        if state not in (DESTROYED, NOT_CREATED):
            self._accrue(self.ledger.attempt(a["id"]), o.state, now, o, prev=state)
        if o.state != state and state not in (LAUNCHING, DESTROYING, LEAKED, DESTROYED, NOT_CREATED):
            self._event(now, "state", f"{a['cell']} #{a['attempt']}: {state} -> {o.state}", a)

    def _accrue(self, a: Mapping[str, Any], state: str, now: float, o: Observed | None,
                prev: str | None = None) -> None:
        """Bill the interval since the last observation at the higher rate of `prev` (the state recorded before
        this listing) and `state` (the one observed now)."""
        since = a["billed_until"] or a["created_at"] or now
        dt = now - since
        prev = prev or a["state"]
        if prev in (LAUNCHING, DESTROYING, LEAKED):
            prev = state
        cost = budget.accrue(prev, state, a["price_per_hour"], a["storage_per_hour"], dt)
        if o is not None and o.started_at and o.started_at >= since and state != RUNNING and prev != RUNNING:
            cost += a["price_per_hour"] * (now - o.started_at) / 3600   # ran and stopped between two polls
        spent = a["spent"] + cost
        if a["provider_cost"] is not None:
            spent = max(spent, a["provider_cost"])    # reconcile upward with the provider's own figure
        self.ledger.set_attempt(a["id"], spent=spent, billed_until=now)

    def _accrue_blind(self, now: float) -> None:
        """The listing failed: bill every live instance at its worst-case rate until we can see again."""
        for a in self.ledger.live_attempts(self.name):
            if a["state"] == DESTROYING:
                continue
            price = a["price_per_hour"] or budget.launch_price(self.spec)
            since = a["billed_until"] or a["created_at"] or now
            self.ledger.set_attempt(a["id"], spent=a["spent"] + budget.worst_rate(price, a["storage_per_hour"])
                                    * max(0.0, now - since) / 3600, billed_until=now)

    # ---- events from the logs -----------------------------------------------------------------------------
    async def _read_events(self, now: float) -> None:
        """Fetch new event lines. Every attempt that has ended is read once (its final events decide finished
        or failed). Running ones: all of them when the provider's logs are cheap (local files); otherwise at
        most `log_reads_per_poll` per poll (each is an API call), most urgent first: a start-up deadline
        waiting on evidence, a state change since the last read, not yet started, then the longest unread."""
        final, running = [], []
        live = self.ledger.live_attempts(self.name)
        for gone in set(self._seen_lines) - {a["id"] for a in live}:   # forget what ended attempts printed
            for per_attempt in (self._seen_lines, self._seen, self._tails):
                per_attempt.pop(gone, None)
        for a in live:
            if not a["provider_id"] or a["state"] in (DESTROYING, LEAKED, "pending", "loading"):
                continue
            if a["state"] in TERMINAL or a["state"] == STOPPED:
                if a["id"] not in self._final_read:
                    final.append(a)
            else:
                running.append(a)
        if not getattr(self.provider, "logs_are_cheap", False):
            running.sort(key=lambda a: (a["id"] not in self._urgent, self._read_state.get(a["id"]) == a["state"],
                                        bool(a["started_event"]), self._read_at.get(a["id"], float("-inf"))))
            running = running[:self.log_reads_per_poll]
        for a in final:
            if await self._read_log(a, now):
                self._final_read.add(a["id"])
            else:
                self._final_tries[a["id"]] = self._final_tries.get(a["id"], 0) + 1
        for a in running:
            await self._read_log(a, now)

    async def _read_log(self, a: Mapping[str, Any], now: float) -> bool:
        self._read_at[a["id"]], self._read_state[a["id"]] = now, a["state"]
        self._urgent.discard(a["id"])
        try:
            text = await self.provider.logs(a["provider_id"], tail=self.log_tail)
        except ProviderError:
            return False
        self._tails[a["id"]] = text
        # a tail repeats what was read last poll: parse only lines not seen before (the ledger de-duplicates too)
        seen = self._seen_lines.setdefault(a["id"], set())
        new = [ln for ln in text.splitlines() if hash(ln) not in seen]
        seen.update(hash(ln) for ln in new)
        self._ingest(a, parse_lines("\n".join(new)), now)
        return True

    def _ingest(self, a: Mapping[str, Any], events: list[dict[str, Any]], now: float) -> None:
        seen = self._seen.setdefault(a["id"], set())
        fields: dict[str, Any] = {}
        cell_metrics: dict[str, float] | None = None
        with self.ledger.tx():
            for e in events:
                d = event_digest(a["id"], e)
                if d in seen:
                    continue
                seen.add(d)
                kind = str(e.get("kind"))
                if not self.ledger.add_event(self.name, float(e.get("t") or now), kind, _describe(e),
                                             attempt_id=a["id"], cell=a["cell"], data=e, digest=d):
                    continue
                stage = e.get("stage")
                if stage:
                    fields["stage"] = stage
                for k in ("epoch", "step"):
                    if isinstance(e.get(k), int):
                        fields[k] = e[k]
                if kind == "started":
                    fields["started_event"] = 1
                elif kind == "metric":
                    values = _numbers(e)
                    if isinstance(e.get("metrics"), dict):  # the trainer nests them (train/codec/loss, lr, ...)
                        values.update(_numbers(e["metrics"]))
                    keyed = {f"{stage}/{k}" if stage and "/" not in k else k: v for k, v in values.items()}
                    self.ledger.add_metrics(a["id"], int(e.get("step") or 0), keyed, e.get("t"))
                    loss = next((v for k, v in keyed.items() if k.endswith("/loss") and not _is_val(k)), None)
                    if loss is not None:
                        fields["last_loss"] = loss
                elif kind == "eval":
                    vals = e["metrics"] if isinstance(e.get("metrics"), dict) else e
                    split = e.get("split") or e.get("name") or "small"
                    current = cell_metrics if cell_metrics is not None else self._cell_metrics(a["cell"])
                    new = _numbers(vals)
                    # a full (test) eval overrides the small one; a small one never overrides full
                    cell_metrics = {**current, **new} if split == "full" or not current.get("_full") else \
                        {**new, **current}
                    if split == "full":
                        cell_metrics["_full"] = 1.0
                elif kind == "done":
                    fields["done_event"] = 1
                elif kind == "error":
                    fields["error_event"] = str(e.get("message") or e.get("reason") or e.get("error") or _describe(e))[:500]
            if fields:
                self.ledger.set_attempt(a["id"], **fields)
            if cell_metrics is not None:
                self.ledger.set_cell(self.name, a["cell"], metrics=cell_metrics)
        if fields.get("started_event"):
            self._event(now, "started", f"{a['cell']} #{a['attempt']}: started", a)

    def _cell_metrics(self, cell: str) -> dict[str, float]:
        row = self.ledger.q1("SELECT metrics_json FROM cells WHERE sweep=? AND name=?", self.name, cell)
        return json.loads(row[0]) if row else {}

    # ---- policies -----------------------------------------------------------------------------------------
    async def _apply_policies(self, now: float) -> None:
        cells = {c["name"]: c for c in self.ledger.cells(self.name)}
        for a in self.ledger.live_attempts(self.name):
            if a["state"] in (LAUNCHING, DESTROYING, LEAKED) or not a["provider_id"]:
                continue
            cell = cells.get(a["cell"])
            if cell is None or (cell["state"] != "pending" and not a["done_event"]):
                await self._destroy(a, "orphan", "the cell is not wanted (unknown, finished or failed)", now)
                continue
            obs = self._obs.get(a["label"])
            if obs is not None and obs.state == EXITED and not a["done_event"] and a["id"] not in self._final_read \
                    and self._final_tries.get(a["id"], 0) < FINAL_TRIES:
                continue   # its last events (perhaps `done`) are not read yet: never call a finished run failed
            v = policies.assess(a, obs, now, self.spec.provider, self._tails.get(a["id"], ""))
            if v is None:
                continue
            deadline = (a["created_at"] or now) + self.spec.provider.startup_deadline_s
            if v.reason == "startup_timeout" and obs is not None and obs.state == RUNNING \
                    and self._read_at.get(a["id"], float("-inf")) < deadline:
                self._urgent.add(a["id"])   # no read of its log since the deadline: read it first, then judge
                continue
            if v.exclude_machine and a["machine_id"]:
                self.ledger.exclude_machine(self.name, a["machine_id"], v.reason, now)
            if v.outcome == "finished":
                self.ledger.set_cell(self.name, a["cell"], state="finished", reason="finished")
                shown = headline(self._cell_metrics(a["cell"]), 4)
                self._event(now, "finished", f"{a['cell']} #{a['attempt']}: finished {shown}", a)
                await self._destroy(a, "finished", "", now)
            else:
                self._event(now, "failed", f"{a['cell']} #{a['attempt']}: {v.reason}: {v.message}", a)
                await self._destroy(a, v.reason, v.message, now)
                self._after_failure(self.ledger.attempt(a["id"]), now)
        by_cell: dict[str, list[Any]] = {}
        for a in self.ledger.live_attempts(self.name):
            by_cell.setdefault(a["cell"], []).append(a)
        for atts in by_cell.values():
            for aid in policies.surplus_live(atts):
                await self._destroy(self.ledger.attempt(aid), "orphan", "a second live attempt of the cell", now)

    def _after_failure(self, a: Mapping[str, Any], now: float) -> None:
        """Mark the cell failed once its attempts are used up; detect a crash loop across cells."""
        cell = next((c for c in self.ledger.cells(self.name) if c["name"] == a["cell"]), None)
        if cell is None or cell["state"] != "pending":
            return
        why = policies.exhausted(self.ledger.attempts(self.name, a["cell"]), cell["counted_from"],
                                 self.spec.max_attempts, self.spec.max_machine_faults)
        if why:
            self.ledger.set_cell(self.name, a["cell"], state="failed", reason=a["reason"])
            self._event(now, "cell_failed", f"{a['cell']}: failed after {why}; last: {a['reason']}", a)
        row = self._row()
        failures = [policies.Failure(r["cell"], r["reason"], r["message"] or "", r["ended_at"] or now,
                                     early=policies.is_early(r))
                    for r in self.ledger.attempts(self.name)
                    if r["reason"] in policies.CRASH_REASONS and (r["ended_at"] or now) > row["crash_loop_cleared_at"]]
        n_cells = sum(1 for c in self.ledger.cells(self.name) if not c["duplicate_of"])
        shared = policies.crash_loop(failures, now, min_cells=max(2, min(3, n_cells)))
        if shared and not row["crash_loop"]:
            self.ledger.set_sweep(self.name, crash_loop=shared)
            self._event(now, "crash_loop", f"ALERT crash loop, launching paused: {shared}")

    # ---- side effects (intent before, outcome after) ------------------------------------------------------
    async def _destroy(self, a: Mapping[str, Any] | None, reason: str, message: str, now: float) -> bool:
        if a is None or a["state"] in GONE or a["state"] == DESTROYING:
            return True
        if not a["provider_id"]:
            return False   # a create in flight: the next listing adopts or closes it
        self.ledger.set_attempt(a["id"], reason=a["reason"] or reason, message=a["message"] or message or None)
        iid = self.ledger.intent(self.name, "destroy", now, a["id"], a["label"], a["provider_id"])
        try:
            await self.provider.destroy(a["provider_id"])
        except ProviderError as exc:
            self.ledger.outcome(iid, "error", now, str(exc))
            self.ledger.set_attempt(a["id"], state=LEAKED, destroy_failures=a["destroy_failures"] + 1)
            self._event(now, "leaked", f"ALERT destroy of {a['label']} ({a['provider_id']}) failed: {exc}; "
                        "retrying every poll, the cell is not relaunched; terminate it manually if this persists", a)
            return False
        self.ledger.outcome(iid, "ok", now)
        self.ledger.set_attempt(a["id"], state=DESTROYING, ended_at=now, destroy_failures=0)
        return True

    async def _retry_leaks(self, now: float) -> None:
        for a in self.ledger.live_attempts(self.name):
            if a["state"] == LEAKED:
                await self._destroy({**dict(a), "state": RUNNING}, a["reason"] or "user", "", now)

    async def _budget_guard(self, now: float) -> None:
        rows = self.ledger.attempts(self.name)
        live = [a for a in rows if a["state"] not in GONE and a["state"] != DESTROYING]
        stop = self._row()["budget_stop"]
        if not stop and live and budget.at_cap(self.spec, rows, self.poll_interval):
            self.ledger.set_sweep(self.name, budget_stop=1)
            self._event(now, "budget", f"budget cap: spent ${budget.spent(rows):.3f} of ${self.spec.budget:.2f}; "
                        "destroying every instance")
            stop = 1
        if stop:
            for a in live:
                await self._destroy(a, "budget", "budget cap reached", now)

    async def _launch_wanted(self, now: float) -> None:
        row = self._row()
        blocked = bool(row["paused"] or not row["auto"] or row["crash_loop"] or row["budget_stop"])
        cells = self.ledger.cells(self.name)
        by_cell: dict[str, list[Any]] = {}
        for a in self.ledger.attempts(self.name):
            by_cell.setdefault(a["cell"], []).append(a)
        for name in policies.next_launches(cells, by_cell, now, concurrency=self.spec.concurrency,
                                           max_attempts=self.spec.max_attempts, blocked=blocked,
                                           max_machine_faults=self.spec.max_machine_faults):
            if self.clock.now() - now >= self.poll_interval:
                break   # paced creates (Vast: 4.5 s each) must not starve the polls: the rest go next tick
            if not await self._launch(name, self.clock.now()):
                break

    async def _launch(self, cell_name: str, now: float) -> bool:
        """Start the next attempt of one cell if preflight and budget allow; False stops this round of launches."""
        cell = self.sweep.cell(cell_name)
        if self.run_preflight and not await self._preflight(cell_name, cell.config, now):
            return True
        rows = self.ledger.attempts(self.name)
        ok, why = budget.can_launch(self.spec, rows, now, self.poll_interval)
        if not ok:
            if why != self._budget_note:
                self._budget_note = why
                self._event(now, "budget", f"not launching {cell_name}: {why}")
            if not self.ledger.live_attempts(self.name):
                self.ledger.set_sweep(self.name, budget_stop=1)
            return False
        attempt = 1 + max((a["attempt"] for a in self.ledger.attempts(self.name, cell_name)), default=0)
        label = make_label(self.name, cell_name, attempt)
        run_dir = str(self.runs_root / self.name / cell_name / str(attempt))
        aid = self.ledger.new_attempt(self.name, cell_name, attempt, label, run_dir, now)
        spec = LaunchSpec(label=label, sweep=self.name, cell=cell_name, attempt=attempt, config=cell.config,
                          run_dir=run_dir, env=dict(self.env), exclude_machines=self.ledger.excluded_machines(self.name),
                          max_price_per_hour=self.spec.provider.max_dph if self.spec.provider.kind != "local" else None)
        try:
            o = await self.provider.create(spec)
        except NoCapacity as exc:
            self._not_created(aid, cell_name, "no_capacity", str(exc), now)
            return False
        except AuthError as exc:
            self._not_created(aid, cell_name, None, str(exc), now)
            self.ledger.set_sweep(self.name, paused=1)
            self._set_status(f"auth failed: {exc}", now)
            return False
        except ProviderError as exc:
            # the outcome is unknown (a timeout may hide a success): the next listing settles it by label
            self.ledger.set_attempt(aid, message=f"create error: {exc}")
            self._event(now, "create_error", f"{cell_name} #{attempt}: create failed ({exc}); checking by label",
                        self.ledger.attempt(aid))
            self.ledger.set_cell(self.name, cell_name, not_before=now + policies.backoff_s(1, self.poll_interval))
            return False
        now = self.clock.now()   # a paced create may have waited: the instance (and its deadline) starts now
        self.ledger.close_create_intent(aid, "created", now, o.provider_id)
        self.ledger.set_attempt(aid, state=o.state, provider_id=o.provider_id, machine_id=o.machine_id, gpu=o.gpu,
                                price_per_hour=o.price_per_hour, storage_per_hour=o.storage_per_hour,
                                status_msg=o.status_msg, created_at=now, billed_until=now)
        self._event(now, "launch", f"{cell_name} #{attempt}: launched {o.provider_id}"
                    + (f" on {o.gpu}" if o.gpu else "") + f" at ${o.price_per_hour:.3f}/h", self.ledger.attempt(aid))
        return True

    def _not_created(self, aid: int, cell: str, reason: str | None, message: str, now: float) -> None:
        self.ledger.close_create_intent(aid, reason or "error", now, message)
        self.ledger.set_attempt(aid, state=NOT_CREATED, reason=reason, message=message, ended_at=now)
        streak = 0
        for a in reversed(self.ledger.attempts(self.name, cell)):
            if a["state"] != NOT_CREATED:
                break
            streak += 1
        self.ledger.set_cell(self.name, cell, not_before=now + policies.backoff_s(streak, self.poll_interval))
        self._event(now, reason or "create_error", f"{cell}: not created: {message}", self.ledger.attempt(aid))

    async def _preflight(self, cell: str, config: dict[str, Any], now: float) -> bool:
        fp = RunConfig.model_validate(config).architecture_fingerprint()
        known = self.ledger.preflight_result(self.name, fp)
        if known is None:
            where = self.runs_root / self.name / "preflight" / fp
            where.mkdir(parents=True, exist_ok=True)
            (where / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            self._event(now, "preflight", f"preflight of architecture {fp} ({cell}) ...")
            ok, message = await _run_preflight([*self.preflight_cmd, str(where / "config.yaml")], where)
            self.ledger.set_preflight(self.name, fp, ok, message, now)
            self._event(now, "preflight", f"preflight {fp}: {'ok' if ok else 'FAILED: ' + message}")
            known = (ok, message)
        if not known[0]:
            for c in self.sweep.cells:
                if RunConfig.model_validate(c.config).architecture_fingerprint() == fp:
                    self.ledger.set_cell(self.name, c.name, state="failed", reason="preflight")
        return known[0]

    # ---- commands -----------------------------------------------------------------------------------------
    async def _run_commands(self, now: float) -> None:
        for cid, command, args in self.ledger.take_commands(self.name, now):
            try:
                result = await self.command(command, **args)
            except (KeyError, ValueError, TypeError) as exc:
                result = f"error: {exc}"
            self.ledger.finish_command(cid, result)

    async def command(self, command: str, **args: Any) -> str:
        if command == "pause":
            self.pause()
        elif command == "resume":
            self.resume()
        elif command == "auto":
            self.set_auto(bool(args.get("on", True)))
        elif command == "launch":
            return "ok" if await self.launch(args["cell"]) else "not launched"
        elif command == "relaunch":
            await self.relaunch(args["cell"])
        elif command == "destroy":
            if args.get("all"):
                for a in self.ledger.live_attempts(self.name):
                    await self.destroy(a["id"])
            elif "cell" in args:
                for a in self.ledger.live_attempts(self.name):
                    if a["cell"] == args["cell"]:
                        await self.destroy(a["id"])
            else:
                await self.destroy(int(args["attempt_id"]))
        else:
            raise ValueError(f"unknown command {command!r}")
        return "ok"

    def pause(self) -> None:
        self.ledger.set_sweep(self.name, paused=1)
        self._event(self.clock.now(), "user", "paused: no new launches")

    def resume(self) -> None:
        now = self.clock.now()
        self.ledger.set_sweep(self.name, paused=0, crash_loop=None, crash_loop_cleared_at=now)
        self._event(now, "user", "resumed")

    def set_auto(self, on: bool) -> None:
        self.ledger.set_sweep(self.name, auto=int(on))

    async def launch(self, cell: str) -> bool:
        self.sweep.cell(cell)  # KeyError naming the cells when unknown
        now = self.clock.now()
        atts = self.ledger.attempts(self.name, cell)
        if any(policies.is_live(a) for a in atts):
            return False
        row = next(c for c in self.ledger.cells(self.name) if c["name"] == cell)
        if row["state"] != "pending":
            self.ledger.set_cell(self.name, cell, state="pending", reason=None,
                                 counted_from=max((a["attempt"] for a in atts), default=0))
        self.ledger.set_cell(self.name, cell, not_before=0)
        return await self._launch(cell, now) and any(policies.is_live(a) for a in self.ledger.attempts(self.name, cell))

    async def destroy(self, attempt_id: int, reason: str = "user") -> bool:
        a = self.ledger.attempt(attempt_id)
        if a is None or a["sweep"] != self.name:
            raise KeyError(f"no attempt {attempt_id} in sweep {self.name}")
        now = self.clock.now()
        if reason == "user" and not a["done_event"]:
            self.ledger.set_cell(self.name, a["cell"], state="failed", reason="user")
        self._event(now, "user", f"{a['cell']} #{a['attempt']}: destroy ({reason})", a)
        return await self._destroy(a, reason, f"destroyed by {reason}", now)

    async def relaunch(self, cell: str) -> None:
        """Destroy the cell's live attempt (if any) and start it afresh with a new attempt budget; the launch
        itself waits until the destroy is confirmed."""
        self.sweep.cell(cell)
        now = self.clock.now()
        for a in self.ledger.live_attempts(self.name):
            if a["cell"] == cell:
                await self._destroy(a, "user", "relaunched by user", now)
        atts = self.ledger.attempts(self.name, cell)
        fp = RunConfig.model_validate(self.sweep.cell(cell).config).architecture_fingerprint()
        self.ledger.db.execute("DELETE FROM preflight WHERE sweep=? AND fingerprint=? AND ok=0", (self.name, fp))
        self.ledger.set_cell(self.name, cell, state="pending", reason=None, not_before=0,
                             counted_from=max((a["attempt"] for a in atts), default=0))
        self.ledger.set_sweep(self.name, budget_stop=0)
        self._event(now, "user", f"{cell}: relaunch requested")

    # ---- reporting ----------------------------------------------------------------------------------------
    def summary(self) -> str:
        snap = self.ledger.snapshot(self.name, now=self.clock.now())
        counts: dict[str, int] = {}
        for c in snap.cells:
            counts[c.state] = counts.get(c.state, 0) + 1
        parts = ", ".join(f"{n} {s}" for s, n in counts.items())
        extra = f" | {snap.crash_loop}" if snap.crash_loop else ""
        return (f"{self.name}: {parts} | spent ${snap.budget.spent:.4f} of ${snap.budget.budget:.2f}, "
                f"burn ${snap.budget.burn_per_hour:.2f}/h{extra}")


async def _run_preflight(cmd: list[str], cwd: Path, timeout: float = 900.0) -> tuple[bool, str]:
    try:
        proc = await asyncio.create_subprocess_exec(*cmd, cwd=str(cwd), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
    except OSError as exc:
        return False, f"cannot run {cmd[0]}: {exc}"
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False, f"preflight timed out after {timeout:.0f}s"
    text = out.decode(errors="replace")
    (cwd / "preflight.log").write_text(text)
    if proc.returncode == 0:
        return True, ""
    return False, f"exit {proc.returncode}: {policies.error_line(text) or 'no output'} (log: {cwd / 'preflight.log'})"


def _is_val(key: str) -> bool:
    return key.startswith("val/") or "/val_" in key or "/val/" in key


def _numbers(d: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items()
            if k not in EVENT_META and isinstance(v, int | float) and not isinstance(v, bool)}


def _describe(e: Mapping[str, Any]) -> str:
    kind = e.get("kind")
    rest = {k: v for k, v in e.items() if k not in ("v", "t", "kind")}
    text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rest.items()
                    if not isinstance(v, dict | list))
    return f"{kind} {text}"[:500]
