"""Synthetic instance lives drawn from a fault profile: status changes and `@usim` log lines at set times.

A plan is fixed at create time; the emulator reads it at the current clock time, so a virtual clock can jump
hours at once. `traps` says whether the onstart stops the container when the script ends (usim's bootstrap
does; a bare `set -e; train; poweroff` script does not, and its dead container keeps billing the GPU).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field

from usim_tui.emulator.faults import FaultProfile, draw
from usim_tui.emulator.market import OUTBID_MSG, Outbid
from usim_tui.emulator.replay import Replay

OCI_MSG = ("Error response from daemon: failed to create task for container: failed to create shim task: "
           "OCI runtime create failed: runc create failed: unable to start container process: "
           "error during container init: nvidia-container-cli: initialization error")
STAGES = ("codec", "operator", "diffusion_residual", "consistency_distill")
# Plausible ranges of the eval JSON's flat metric keys (usim_core/eval/schema.py METRIC_KEYS) for a trained
# tiny surrogate, so rehearsal ledgers carry real-looking leaderboards.
EVAL_RANGES = {
    "nrmse_1step": (0.004, 0.02), "nrmse_frame": (0.05, 0.15), "nrmse_rollout": (0.05, 0.15), "rmse": (0.01, 0.05), "max_err": (0.1, 0.4),
    "crmse": (0.001, 0.01), "brmse": (0.01, 0.05), "frmse_low": (0.005, 0.03), "frmse_mid": (0.01, 0.05),
    "frmse_high": (0.02, 0.1), "mass_drift": (1e-4, 1e-3), "energy_violation": (0.0, 0.01),
    "pde_residual": (0.01, 0.1),
}


@dataclass
class Phase:
    at: float
    actual: str | None
    msg: str = ""
    intended: str = "running"
    cur: str = "running"


STOPS = ("stopped", "offline", "exited")   # states in which nothing runs


@dataclass
class Plan:
    phases: list[Phase]
    logs: list[tuple[float, str]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)   # what was drawn, for rehearsal reports
    # A run brought up over SSH starts when the controller starts it: its script (times from that start) waits
    # here until `place_script`, then its events go to `events` (the run dir's events.jsonl) and the logs.
    script: list[tuple[float, str]] = field(default_factory=list)
    script_end: tuple[float, int] | None = None       # (seconds after the start, exit code)
    interrupt_at: float | None = None                 # offline or outbid: nothing runs after it
    events: list[tuple[float, str]] = field(default_factory=list)
    resume: dict | None = None   # the next start resumes (`--resume`) from this point (resume_script), if set

    def phase_at(self, t: float) -> Phase:
        current = self.phases[0]
        for p in self.phases:
            if p.at <= t:
                current = p
        return current

    def cut(self, t: float) -> None:
        """Forget everything planned after t (the instance was stopped or destroyed)."""
        self.phases = [p for p in self.phases if p.at <= t] or self.phases[:1]
        self.logs = [(at, line) for at, line in self.logs if at <= t]
        self.events = [(at, line) for at, line in self.events if at <= t]
        self.interrupt_at = min(t, self.interrupt_at) if self.interrupt_at is not None else t

    def next_stop(self, t: float) -> float | None:
        """When the instance next stops running at or after t (outbid, offline, exited, stopped or destroyed)."""
        stops = [p.at for p in self.phases if p.at >= t and p.actual in STOPS]
        if self.interrupt_at is not None and self.interrupt_at >= t:
            stops.append(self.interrupt_at)
        return min(stops, default=None)

    def place_script(self, t0: float) -> None:
        """The controller started the run at t0 (run_script.sh): its events from then on, up to the next stop
        (nothing runs on past an outbid, an offline host or a stop; a run started after a comeback runs until
        the stop after it); a run that ends first leaves its container to stop itself USIM_STOP_AFTER_S (1800 s)
        later, unless something stops it before."""
        if self.script_end is None or (self.events and self.resume is None):
            return
        script, (end, code) = self.script, self.script_end
        if self.resume is not None:   # a resumed run: what is left after the point, on the disk's events
            script, end = resume_script(script, end, self.resume)
            self.resume = None
        placed = [(t0 + dt, _dated(line, t0 + dt)) for dt, line in script]
        placed.append(_event(t0 + end, "exit", code=code))
        stop = self.next_stop(t0)
        if stop is not None:
            placed = [(at, line) for at, line in placed if at <= stop]
        exit_at = t0 + end + 1800
        if stop is None or stop > exit_at:   # it stops itself first: what was planned after never happens
            self.phases = [p for p in self.phases if p.at <= exit_at]
            self.phases.append(Phase(exit_at, "exited", f"container exited ({code})", "stopped", "stopped"))
        self.events += [(at, line.removeprefix("@usim ")) for at, line in placed if line.startswith("@usim ")]
        self.logs = sorted(self.logs + placed, key=lambda x: x[0])

    def point_at(self, t: float) -> dict:
        """The resume point the run dir on this host's disk holds at t (a comeback resumes from it)."""
        return point_of(line for at, line in self.events if at <= t)


def point_of(lines) -> dict:  # type: ignore[no-untyped-def]
    """The resume point a run's events describe: the stages it finished, and the unfinished stage's last epoch
    with a checkpoint (its `.last.pt` is written right after that epoch's `metric` event)."""
    point: dict = {"finished": []}
    for line in lines:
        e = json.loads(line)
        if e.get("kind") == "stage_end":
            point = {"finished": [*point["finished"], e["stage"]]}
        elif e.get("kind") == "metric" and e.get("stage") not in point["finished"]:
            point.update(stage=e["stage"], epoch=e["epoch"], step=e["step"], t=e["t"])
    return point


def resume_script(script: list[tuple[float, str]], end: float, point: dict) -> tuple[list[tuple[float, str]], float]:
    """What a run started with `--resume` from `point` writes (usim_core/train/run.py): `started`, a skipped
    `stage_end` per finished stage, the unfinished stage's `stage_start` at the resumed step, then the rest of the
    original run from the epoch after the point, as long as it took there. Returns (script, its end)."""
    cut, stage_start, ends, first = -1, None, {}, -1
    for i, (_dt, line) in enumerate(script):
        e = json.loads(line.removeprefix("@usim ")) if line.startswith("@usim ") else {}
        kind = e.get("kind")
        if kind == "stage_start" and e.get("stage") == point.get("stage"):
            stage_start = e
        if kind == "stage_end":
            ends[e["stage"]] = e.get("step")
        if kind == "started":
            first = i
        if (kind == "stage_end" and "stage" not in point and point["finished"] and e["stage"] == point["finished"][-1]) \
                or (kind == "metric" and e.get("stage") == point.get("stage") and e.get("epoch") == point.get("epoch")):
            cut = i
    started = _event(0.0, "started", device="cuda", resume=True, stage=None, processes=1)
    if cut < 0:   # nothing to resume from: the whole run again, started with --resume all the same
        return [started if i == first else step for i, step in enumerate(script)], end
    skip = script[cut][0]
    out = [started]
    out += [_event(0.0, "stage_end", stage=s, step=ends.get(s), skipped=True, checkpoint=f"checkpoints/{s}.pt")
            for s in point["finished"]]
    if stage_start is not None and "stage" in point:
        fields = {k: v for k, v in stage_start.items() if k not in ("v", "kind", "t", "resumed_at_step")}
        out.append(_event(0.0, "stage_start", **fields, resumed_at_step=point["step"]))
    out += [(dt - skip, line) for dt, line in script[cut + 1:]]
    return out, end - skip


def _dated(line: str, t: float) -> str:
    """An `@usim` line with its `t` the clock time it is written at (a trainer dates its events by the clock)."""
    if not line.startswith("@usim "):
        return line
    e = json.loads(line.removeprefix("@usim "))
    e["t"] = round(t, 3)
    return "@usim " + json.dumps(e, separators=(",", ":"))


def _event(t: float, kind: str, **fields) -> tuple[float, str]:
    return t, "@usim " + json.dumps({"v": 1, "kind": kind, "t": round(t, 3), **fields}, separators=(",", ":"))


def plan_instance(profile: FaultProfile, rng: random.Random, t0: float, *, label: str,
                  bad_build: bool, traps: bool, over_ssh: bool = False, replay: Replay | None = None) -> Plan:
    """over_ssh: the run starts when the controller starts it over SSH (Plan.place_script), not at running.
    replay: the host's trainer replays this recorded run (replay.py) instead of inventing its output."""
    prov = draw(rng, profile.provisioning_s)
    plan = Plan([Phase(t0, None, ""), Phase(t0 + prov * 0.3, "created", "Creating container")])
    t = t0 + prov
    if rng.random() < profile.oci_error.p:
        plan.phases.append(Phase(t, "created", OCI_MSG))
        plan.faults.append("oci_error")
        return plan
    load = draw(rng, profile.image_pull_s)
    if rng.random() < profile.stuck_loading.p:
        load = draw(rng, profile.stuck_loading.duration_s)
        plan.faults.append("stuck_loading")
    elif rng.random() < profile.slow_pull.p:
        load = draw(rng, profile.slow_pull.duration_s)
        plan.faults.append("slow_pull")
    plan.phases.append(Phase(t, "loading", "Pulling image layers"))
    t_run = t + load
    plan.phases.append(Phase(t_run, "running", ""))
    logs = plan.logs
    logs.append(_event(t_run + 1, "bootstrap", label=label))

    # What interrupts the run from outside, if anything (drawn up front so the draw order is fixed).
    offline_at = t_run + draw(rng, profile.offline.after_s) if rng.random() < profile.offline.p else None
    outbid_at = t_run + draw(rng, profile.outbid.after_s) if rng.random() < profile.outbid.p else None
    eval_fails = rng.random() < profile.eval_failure.p

    start = 0.0 if over_ssh else t_run + 2
    script: list[tuple[float, str]] = plan.script if over_ssh else logs
    write = _script if replay is None else _replayed
    end, code = write(profile, rng, script, start, bad_build=bad_build, eval_fails=eval_fails, replay=replay)
    if bad_build:
        plan.faults.append("bad_build")
    elif eval_fails:
        plan.faults.append("eval_failure")
    interrupt = min((x for x in (offline_at, outbid_at) if x is not None), default=None)
    if over_ssh:
        plan.script_end = (end, code)
        if interrupt is not None:
            plan.interrupt_at = interrupt
            _interrupt(plan, interrupt, offline=interrupt == offline_at)
        return plan
    if interrupt is not None and interrupt < end:
        plan.logs = [(at, line) for at, line in logs if at <= interrupt]
        _interrupt(plan, interrupt, offline=interrupt == offline_at)
        return plan
    logs.append(_event(end, "exit", code=code))
    if traps:
        plan.phases.append(Phase(end + 1, "exited", f"container exited ({code})", "stopped", "stopped"))
    return plan


def outbid_phase(at: float, msg: str = OUTBID_MSG) -> Phase:
    """Vast's outbid triple: actual, intended and current state all `stopped`."""
    return Phase(at, "stopped", msg, "stopped", "stopped")


def apply_outbids(plan: Plan, outbids: list[Outbid], since: float) -> list[Outbid]:
    """A bid instance's market from `since` on its plan (market.py): stopped at each outbid, running again (an
    empty container) at each comeback. The first outbid interrupts the run as any stop does; outbids after the
    instance stopped otherwise (its run ended, its host went offline) never happen. Returns those applied."""
    ended = plan.next_stop(since)
    if not outbids or (ended is not None and ended <= outbids[0].at):
        return []
    plan.cut(outbids[0].at)
    if "offline" in plan.faults and not any(p.actual == "offline" for p in plan.phases):
        plan.faults.remove("offline")   # outbid before its host would have gone offline
    for o in outbids:
        plan.phases.append(outbid_phase(o.at))
        if o.back_at is not None:
            plan.phases.append(Phase(o.back_at, "running", "the market fell back to its bid", "running", "running"))
    if "outbid" not in plan.faults:
        plan.faults.append("outbid")
    return outbids


def _interrupt(plan: Plan, at: float, *, offline: bool) -> None:
    if offline:
        plan.phases.append(Phase(at, "offline", "host offline: no heartbeat"))
        plan.faults.append("offline")
    else:
        plan.phases.append(outbid_phase(at))
        plan.faults.append("outbid")


def _crash(profile: FaultProfile, rng: random.Random, logs: list[tuple[float, str]], t: float) -> tuple[float, int]:
    t_end = t + draw(rng, profile.bad_build.exit_after_s)
    logs.append((t_end - 0.5, "ImportError: cannot import name 'LazyLinear' from 'torch.nn.modules.linear'"))
    logs.append(_event(t_end - 0.2, "error", stage="startup", reason="ImportError at start-up"))
    return t_end, 1


def _script(profile: FaultProfile, rng: random.Random, logs: list[tuple[float, str]], t: float, *,
            bad_build: bool, eval_fails: bool, replay: None = None) -> tuple[float, int]:
    """Append invented trainer output; return (time the script ends, its exit code)."""
    if bad_build:
        return _crash(profile, rng, logs, t)
    logs.append(_event(t, "started"))
    step = 0
    for stage in STAGES:
        span = getattr(profile.stages, stage)
        dur = draw(rng, span)
        logs.append(_event(t, "stage_start", stage=stage))
        loss = 1.0 + rng.random()
        for i in range(1, 5):
            step += 25
            loss *= 0.7
            logs.append(_event(t + dur * i / 5, "metric", stage=stage, step=step, metrics={"loss": round(loss, 5)}))
        t += dur
        logs.append(_event(t, "stage_end", stage=stage, step=step))
    quality = rng.random()   # one draw per run: its small and full evals agree on how good it is
    t += draw(rng, profile.stages.eval_small)
    logs.append(_event(t, "eval", name="small", metrics=_eval_metrics(rng, quality)))
    t += draw(rng, profile.stages.eval_full)
    if eval_fails:
        logs.append(_event(t, "error", stage="eval_full", reason="full evaluation exited with status 1"))
        return t + 1, 1
    logs.append(_event(t, "eval", name="full", metrics=_eval_metrics(rng, quality)))
    logs.append(_event(t + 1, "done"))
    return t + 2, 0


def _eval_metrics(rng: random.Random, quality: float) -> dict[str, float]:
    """The flat metrics of an eval JSON: each inside its range, mostly by the run's quality, plus noise."""
    out = {}
    for key, (lo, hi) in EVAL_RANGES.items():
        x = min(1.0, max(0.0, quality + rng.uniform(-0.1, 0.1)))
        out[key] = float(f"{lo + (hi - lo) * x:.4g}")
    return out


def _replayed(profile: FaultProfile, rng: random.Random, logs: list[tuple[float, str]], t: float, *,
              bad_build: bool, eval_fails: bool, replay: Replay | None) -> tuple[float, int]:
    """Append the trainer's output for a replayed run, event for event as usim_core/train/loop.py writes it: per
    stage a stage_start, one metric per epoch (train and val loss, best val, epoch) and a stage_end, then the
    evals. The operator's val is the recorded curve; the other stages' losses are invented; every stage lasts the
    profile's draw times the cell's recorded cost."""
    assert replay is not None
    if bad_build:
        return _crash(profile, rng, logs, t)
    t_start = t
    logs.append(_event(t, "started", device="cuda", resume=False, stage=None, processes=1))
    for stage in STAGES:
        plan = replay.stages[stage]
        scale = replay.operator_scale if stage == "operator" else replay.other_scale
        dur = draw(rng, getattr(profile.stages, stage)) * scale
        if stage == "operator":
            val = replay.val
        else:   # invented: a geometric decay from a random start
            start, rate = 0.05 + 0.5 * rng.random(), 0.6 + 0.3 * rng.random()
            val = [start * rate ** e for e in range(plan.epochs)]
        epochs = len(val)
        logs.append(_event(t, "stage_start", stage=stage, epochs=epochs, steps=plan.steps,
                           steps_per_epoch=plan.steps_per_epoch, resumed_at_step=None))
        best, best_score = math.inf, math.inf
        scores = replay.score if stage == "operator" else []
        for e, v in enumerate(val):
            best = min(best, v)
            step = min(plan.steps, (e + 1) * plan.steps_per_epoch)
            metrics = {f"train/{stage}/loss": _sig(v * math.exp(rng.gauss(-0.1, 0.1))), f"val/{stage}/loss": _sig(v),
                       f"val/{stage}/best": _sig(best), "epoch": e}
            if e < len(scores):   # the operator's rollout score, as usim_core/train/loop.py writes it
                best_score = min(best_score, scores[e])
                metrics |= {"val/operator/nrmse_frame": _sig(scores[e]),
                            "val/operator/best_nrmse_frame": _sig(best_score)}
            logs.append(_event(t + dur * (e + 1) / epochs, "metric", stage=stage, epoch=e, step=step,
                               total_steps=plan.steps, metrics=metrics))
        t += dur
        logs.append(_event(t, "stage_end", stage=stage, step=min(plan.steps, epochs * plan.steps_per_epoch),
                           epochs_run=epochs, best_val=_sig(best), stopped_early=False,
                           checkpoint=f"checkpoints/{stage}.pt"))
    small = _filled(replay.final)
    t += draw(rng, profile.stages.eval_small)
    logs.append(_event(t, "eval", name="small", metrics=small, path="eval/small.json"))
    t += draw(rng, profile.stages.eval_full)
    if eval_fails:
        logs.append(_event(t, "error", stage="eval_full", reason="full evaluation exited with status 1"))
        return t + 1, 1
    logs.append(_event(t, "eval", name="full", metrics=small, path="eval/full.json"))   # the test split: as val
    logs.append(_event(t + 1, "done", checkpoint="checkpoints/consistency_distill.pt", seconds=round(t + 1 - t_start, 1)))
    return t + 2, 0


def _sig(x: float) -> float:
    return float(f"{x:.6g}")


def _filled(final: dict[str, float]) -> dict[str, float]:
    """The replayed eval metrics, with every EVAL_RANGES key: one the recording lacks is placed in its range where
    nrmse_frame sits in its own (a worse run is worse on every metric)."""
    lo, hi = EVAL_RANGES["nrmse_frame"]
    quality = min(1.0, max(0.0, (final["nrmse_frame"] - lo) / (hi - lo)))
    out = {k: _sig(v) for k, v in final.items()}
    for key, (a, b) in EVAL_RANGES.items():
        out.setdefault(key, _sig(a + (b - a) * quality))
    return out
