"""Attempts on SSH hosts (Vast with `install: wheel`), as the controller drives them: bring the run up once the
instance first runs (the wheel built from this checkout, its sha256 in the ledger), read its events over SSH,
and pull its run directory back before the instance is destroyed.

The slow calls (the install, a pull) run as background tasks, so a poll never waits on them; each tick looks
at what finished. A pull that keeps failing is given up at PULL_DEADLINE_S: the instance is destroyed anyway
and the attempt records `results lost: <why>` (money beats data). At the budget cap nothing waits for a pull.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from usim_core.config import STAGES
from usim_core.events import Event
from usim_tui.fleet.control.policies import Verdict
from usim_tui.fleet.hosts.bring_up import BringUpFailed, bring_up
from usim_tui.fleet.hosts.run_script import host_run_dir
from usim_tui.fleet.hosts.wheel import this_usim
from usim_tui.fleet.providers.base import HostProvider, Provider, ProviderError
from usim_tui.fleet.store.journal import Journal
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.rows import AttemptRow
from usim_tui.fleet.store.states import FREE_REASONS, MACHINE_REASONS, AttemptState, EndReason

A, R = AttemptState, EndReason
NO_SSH = frozenset({A.STOPPED, A.OFFLINE})   # a stopped container, a host off the network: nothing answers
PULL_DEADLINE_S = 600.0            # after the attempt ended: then destroy without its results


class HostRuns:
    def __init__(self, ledger: Ledger, provider: Provider, journal: Journal, sweep: Any, runs_root: Path,
                 env: Mapping[str, str], wheel: Path | None = None) -> None:
        self.ledger, self.provider, self.journal, self.sweep = ledger, provider, journal, sweep
        self.runs_root, self.env = runs_root, dict(env)
        self.enabled = isinstance(provider, HostProvider) and bool(getattr(provider, "ssh", False))
        self._wheel = wheel
        self._tasks: dict[tuple[str, int], asyncio.Task[Any]] = {}
        self._offsets: dict[int, int] = {}
        self._tried: dict[int, str] = {}          # attempt -> the bring-up step that last failed (said once)
        self._resume_tried: dict[int, float] = {}  # attempt -> when its last resume pull was started
        # attempt whose run resumed on its own instance -> the comeback that was said for (once each)
        self.in_place: dict[int, float | None] = {}

    def on_host(self, a: AttemptRow) -> bool:
        return self.enabled and a.host_started_at is not None

    # ---- bring-up ---------------------------------------------------------------------------------------
    def wheel(self, now: float) -> Path:
        """The wheel of this usim (hosts/wheel.py: this_usim), made once per controller; its sha256 recorded."""
        if self._wheel is None:
            path, sha = this_usim(self.runs_root / self.sweep.name / "wheel")
            self._wheel = path
            self.ledger.set_sweep(self.sweep.name, wheel_sha256=sha)
            self.journal.event(now, "wheel", f"built {path.name} (sha256 {sha[:12]})", data={"sha256": sha})
        return self._wheel

    async def bring_up(self, attempts: list[AttemptRow], now: float) -> list[tuple[AttemptRow, Verdict]]:
        """Start the run on every newly running instance (once: the ledger remembers across restarts). Returns
        the attempts whose host will not come round, with why: SSH unanswered, or the host not set up, past
        provider.ssh_deadline_s after it ran; no python with torch, or a failing install, at once."""
        if not self.enabled:
            return []
        out = []
        for a in attempts:
            if a.state != A.RUNNING or a.host_started_at is not None or not a.provider_id:
                continue
            task = self._tasks.get(("up", a.id))
            if task is None:
                resume = self._resume_files(a, now)
                self._tasks[("up", a.id)] = asyncio.create_task(bring_up(
                    self.provider, a.provider_id, wheel=self.wheel(now), config=self.sweep.cell(a.cell).config,
                    run_dir=host_run_dir(a), env=self.env, max_runtime_s=self.sweep.spec.provider.max_runtime_s,
                    num_gpus=a.num_gpus, resume=resume))
            elif task.done():
                del self._tasks[("up", a.id)]
                if (verdict := self._brought_up(a, task, now)) is not None:
                    out.append((a, verdict))
        return out

    def _brought_up(self, a: AttemptRow, task: asyncio.Task[Any], now: float) -> Verdict | None:
        exc = task.exception()
        if exc is None:
            found = task.result()
            self._tried.pop(a.id, None)
            self.ledger.set_attempt(a.id, host_started_at=now)
            self.journal.event(now, "host", f"{a.cell} #{a.attempt}: run started over SSH ({found.python}, torch "
                               f"{found.torch})", a, data={"python": found.python, "torch": found.torch})
            return None
        if not isinstance(exc, ProviderError):   # a fault of usim's own: said as it is, never taken for SSH
            return Verdict("failed", R.HOST_SETUP, f"bring-up raised {type(exc).__name__}: {exc}"[:500])
        step = exc.step if isinstance(exc, BringUpFailed) else "ssh"
        if isinstance(exc, BringUpFailed) and not exc.retry:
            return Verdict("failed", R.HOST_SETUP, str(exc)[:500])
        deadline = self.sweep.spec.provider.ssh_deadline_s
        ran_for = now - (a.started_at if a.started_at is not None else now)
        if ran_for > deadline:
            reason = R.SSH_UNREACHABLE if step == "ssh" else R.HOST_SETUP
            return Verdict("failed", reason, f"{exc} (still, {ran_for:.0f} s after it ran; provider.ssh_deadline_s="
                           f"{deadline:g})"[:500], exclude_machine=reason == R.SSH_UNREACHABLE)
        if self._tried.get(a.id) != step:   # one line per kind of trouble, not one per poll
            self._tried[a.id] = step
            self.journal.event(now, "host", f"{a.cell} #{a.attempt}: bring-up not done ({exc}); retrying until "
                               f"{deadline:g} s after it ran", a, data={"step": step})
        return None

    # ---- resume points: pulled during training, pushed to the next host ---------------------------------
    def resume_dir(self, cell: str) -> Path:
        """The cell's newest resume point on this machine (one per cell: each pull replaces it)."""
        return self.runs_root / self.sweep.name / cell / "resume"

    def pull_resume_points(self, attempts: list[AttemptRow], now: float) -> None:
        """Every provider.checkpoint_every_s of a training run on a host, its resume point is pulled in the
        background (one pull per attempt at a time, never blocking the poll) into resume_dir, replacing the
        cell's last; the attempt records what came and when."""
        every = self.sweep.spec.provider.checkpoint_every_s
        if not self.enabled or every <= 0:
            return
        for a in attempts:
            task = self._tasks.get(("resume", a.id))
            if task is not None:
                if task.done():
                    del self._tasks[("resume", a.id)]
                    self._resume_pulled(a, task, now)
                continue
            if a.state != A.RUNNING or a.host_started_at is None or not a.started_event or a.done_event \
                    or a.error_event or not a.provider_id:
                continue
            since = max(a.checkpoint_at or a.host_started_at, self._resume_tried.get(a.id, float("-inf")))
            if now - since >= every:
                self._resume_tried[a.id] = now
                self._tasks[("resume", a.id)] = asyncio.create_task(self.provider.pull_resume(  # type: ignore[attr-defined]
                    a.provider_id, host_run_dir(a), self.resume_dir(a.cell),
                    int(self.sweep.spec.provider.max_checkpoint_mb * 1024**2)))

    def _resume_pulled(self, a: AttemptRow, task: asyncio.Task[Any], now: float) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:   # the next one is due a period later; the last resume point stays
            self.journal.event(now, "checkpoint", f"{a.cell} #{a.attempt}: resume point not pulled ({exc})", a)
            return
        got, point = task.result(), resume_point(self.resume_dir(a.cell))
        where = describe_point(point)
        (self.resume_dir(a.cell) / "resume.json").write_text(json.dumps({**point, "attempt": a.attempt, "at": now}))
        self.ledger.set_attempt(a.id, checkpoint=f"{where}; {len(got.files)} files, {size_text(got.bytes)} pulled",
                                checkpoint_at=now)

    def _resume_files(self, a: AttemptRow, now: float) -> dict[str, Path] | None:
        """What a run starts from: on an instance that ran it before (outbid, then running again: its disk
        kept) what its run dir holds ({}); on a new attempt its cell's resume point when the attempt that pulled
        it and every attempt since lost its host (outbid, offline, unreachable: store/states.py
        MACHINE_REASONS); else None (from the start)."""
        if a.started_event:
            if self.in_place.get(a.id, -1.0) != a.state_since:   # said once per comeback (a bring-up may be retried)
                self.in_place[a.id] = a.state_since
                self.journal.event(now, "resume", f"{a.cell} #{a.attempt}: running again; its run resumes in place "
                                   "from the checkpoints on its disk", a, data={"from": a.attempt, "in_place": True})
            return {}
        cell = self.ledger.cell(self.sweep.name, a.cell)
        before = [b for b in self.ledger.attempts(self.sweep.name, a.cell)   # a create that never happened is none
                  if cell.counted_from < b.attempt < a.attempt and b.reason not in FREE_REASONS
                  and b.state != A.NOT_CREATED]
        meta = self.resume_dir(a.cell) / "resume.json"
        if not before or before[-1].reason not in MACHINE_REASONS or not meta.is_file():
            return None
        point = json.loads(meta.read_text())
        src = point.get("attempt")
        # only while the point's attempt and every one since lost its host: a run's own failure, or a person's
        # relaunch, since it starts the cell from zero however many lost hosts follow
        if not isinstance(src, int) or src <= cell.counted_from \
                or any(b.reason not in MACHINE_REASONS for b in before if b.attempt >= src):
            return None
        files = {rel: self.resume_dir(a.cell) / rel for rel in point.get("files", [])}
        if not files or not all(f.is_file() for f in files.values()):
            return None
        if a.resumed_from is not None:
            return files   # said once (a bring-up retried after a refused SSH asks again)
        self.ledger.set_attempt(a.id, resumed_from=point.get("attempt"))
        self.journal.event(now, "resume", f"{a.cell} #{a.attempt}: resumes from #{point.get('attempt')}'s "
                           f"{describe_point(point)}", a, data={"from": point.get("attempt"), **point})
        return files

    # ---- events -----------------------------------------------------------------------------------------
    async def events(self, a: AttemptRow) -> list[Event] | None:
        """New events from `<run_dir>/events.jsonl` on the host; None when the read failed."""
        try:
            text, offset = await self.provider.read_events(a.provider_id or "", host_run_dir(a),  # type: ignore[attr-defined]
                                                           self._offsets.get(a.id, 0))
        except ProviderError:
            return None
        self._offsets[a.id] = offset
        out = []
        for line in text.splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(e, dict) and "kind" in e:
                out.append(e)
        return out

    # ---- results back before destroy --------------------------------------------------------------------
    def pulled_or_given_up(self, a: AttemptRow, now: float) -> bool:
        """For an attempt in `pulling`: True once its results are back or given up (recorded), so it can be
        destroyed; False while a pull is still going (started here when none is)."""
        task = self._tasks.get(("pull", a.id))
        if task is None:
            self._tasks[("pull", a.id)] = asyncio.create_task(self.provider.pull(  # type: ignore[attr-defined]
                a.provider_id or "", host_run_dir(a), Path(a.run_dir or ""),
                int(self.sweep.spec.provider.max_checkpoint_mb * 1024**2)))
            return False
        if not task.done():
            return self._give_up_if_late(a, now, "the pull did not finish")
        del self._tasks[("pull", a.id)]
        exc = task.exception()
        if exc is None:
            got = task.result()
            note = f"pulled {len(got.files)} files, {got.bytes / 1e6:.1f} MB" + (
                f"; skipped: {'; '.join(got.skipped)}" if got.skipped else "")
            self.ledger.set_attempt(a.id, results=note)
            self.journal.event(now, "results", f"{a.cell} #{a.attempt}: {note}", a, data={"files": got.files})
            if a.reason in (R.FINISHED, R.STOPPED_EARLY):   # its results hold its last checkpoint: one per cell
                shutil.rmtree(self.resume_dir(a.cell), ignore_errors=True)
            return True
        return self._give_up_if_late(a, now, str(exc))

    def _give_up_if_late(self, a: AttemptRow, now: float, why: str) -> bool:
        if now - (a.state_since or now) < PULL_DEADLINE_S:
            return False
        self.lost(a, now, f"{why} within {PULL_DEADLINE_S:.0f} s")
        return True

    def lost(self, a: AttemptRow, now: float, why: str) -> None:
        task = self._tasks.pop(("pull", a.id), None)
        if task is not None:
            task.cancel()
        self.ledger.set_attempt(a.id, results=f"results lost: {why}")
        self.journal.event(now, "results_lost", f"ALERT {a.cell} #{a.attempt}: results lost ({why}); destroying "
                           "the instance anyway", a, data={"reason": why})

    def needs_pull(self, a: AttemptRow) -> bool:
        """Its results are on a host that may answer: not on a stopped (outbid) or offline one, whose SSH is gone
        (what it trained is in its cell's last resume point: no_pull says so)."""
        return self.on_host(a) and a.results is None and a.state not in NO_SSH

    def no_pull(self, a: AttemptRow, now: float) -> None:
        """Record why a stopped or offline host's run dir is not pulled (only what its resume point holds is home)."""
        if not (self.on_host(a) or (self.enabled and a.started_event)) or a.results is not None or a.state not in NO_SSH:
            return   # (a raised bid's instance waits for its comeback's bring-up: host_started_at is unset)
        home = f"its resume point ({a.checkpoint}) is home" if a.checkpoint else "no resume point came home"
        self.ledger.set_attempt(a.id, results=f"not pulled: the host is {a.state} (no SSH); {home}")

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()


def resume_point(folder: Path) -> dict[str, Any]:
    """Where a pulled resume point stands: its files; the stages finished; the unfinished stage and the epoch
    and step of its `.last.pt`, at least (the last `metric` event of that stage written before the file by the
    host's clock: the trainer writes the event, then the checkpoint; SFTP dates a file to the whole second, so
    an epoch ended within that second counts as not in it). The step it resumes at is the trainer's to say
    (its `stage_start` event's resumed_at_step)."""
    ckpts = sorted(p.name for p in (folder / "checkpoints").glob("*.pt"))
    out: dict[str, Any] = {"files": [f"checkpoints/{n}" for n in ckpts],
                           "finished": [n[:-3] for n in ckpts if not n.endswith(".last.pt")]}
    last = next((folder / "checkpoints" / n for n in ckpts if n.endswith(".last.pt")), None)
    if last is None:
        return out
    stage, written = last.name[:-len(".last.pt")], last.stat().st_mtime
    out["stage"] = stage
    events = folder / "events.jsonl"
    for line in events.read_text().splitlines() if events.is_file() else []:
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        if e.get("kind") == "metric" and e.get("stage") == stage and float(e.get("t") or 0) <= written:
            out["epoch"], out["step"] = e.get("epoch"), e.get("step")
    return out


def describe_point(point: dict[str, Any]) -> str:
    if "stage" in point:
        epoch = point.get("epoch")
        return f"{point['stage']} epoch {'?' if epoch is None else epoch + 1}"
    done = [s for s in STAGES if s in point.get("finished", [])]
    return f"{done[-1]} finished" if done else "no checkpoint"


def size_text(n: int) -> str:
    """Bytes as a person reads them: 74 B, 12 kB, 27.4 MB."""
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB" if n >= 1e3 else f"{n} B"
