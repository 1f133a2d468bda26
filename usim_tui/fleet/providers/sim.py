"""A deterministic simulated provider driven by a clock: a real implementation of the Provider protocol for
rehearsing policies and for property tests (fault schedules, crash/restart), with exact billing.

Each created instance follows a Script: seconds pending, seconds loading, then running for `run_s` and an
outcome: done (started, metrics, eval, done, exit 0), error (an error event), crash (exit 1, a traceback),
stuck (loading forever), offline, outbid (stopped), oci (created + OCI runtime create failed), silent (runs,
never prints started). Billing: storage from creation until destroy (not while offline), GPU while running,
at `price` per GPU of the attempt's host.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from usim_tui.fleet.clock import Clock
from usim_tui.fleet.providers.base import (
    EXITED,
    LOADING,
    OFFLINE,
    PENDING,
    RUNNING,
    STOPPED,
    LaunchSpec,
    NoCapacity,
    Observed,
    ProviderError,
)

OUTCOMES = ("done", "error", "crash", "stuck", "offline", "outbid", "oci", "silent")


@dataclass
class Script:
    outcome: str = "done"
    pending_s: float = 5.0
    loading_s: float = 10.0
    run_s: float = 60.0
    message: str = "ImportError: cannot import name 'LazyLinear' from 'torch.nn.modules._private'"
    # val/operator/loss per epoch: the run then prints the trainer's operator events (stage_start, one metric
    # per epoch, spread over run_s) and its eval's nrmse_frame is the curve's best
    curve: tuple[float, ...] = ()


@dataclass
class SimInstance:
    id: str
    label: str
    script: Script
    created: float
    machine: str
    price: float
    storage: float
    destroyed_at: float | None = None
    lines: list[str] = field(default_factory=list)

    def phase(self, t: float) -> tuple[str, str, float | None]:
        """(state, status_msg, time it reached running) at time t."""
        s, age = self.script, t - self.created
        if s.outcome == "oci" and age >= s.pending_s:
            return PENDING, "Error response from daemon: OCI runtime create failed: runc create failed", None
        if age < s.pending_s:
            return PENDING, "", None
        if s.outcome == "stuck" or age < s.pending_s + s.loading_s:
            return LOADING, "Pulling image", None
        started = self.created + s.pending_s + s.loading_s
        if age < s.pending_s + s.loading_s + s.run_s:
            return RUNNING, "", started
        end = {"offline": OFFLINE, "outbid": STOPPED}.get(s.outcome, EXITED)
        return end, "", started

    def cost(self, t: float) -> float:
        """Exact billed dollars up to t."""
        end = min(t, self.destroyed_at if self.destroyed_at is not None else t)
        s = self.script
        run_from = self.created + s.pending_s + s.loading_s
        run_to = run_from + s.run_s
        exists_to = end
        if s.outcome == "offline":
            exists_to = min(end, run_to)
        storage = max(0.0, exists_to - self.created) * self.storage
        gpu = 0.0
        if s.outcome not in ("stuck", "oci"):
            gpu = max(0.0, min(end, run_to) - run_from) * self.price
        return (storage + gpu) / 3600


class SimProvider:
    name = "sim"

    def __init__(self, clock: Clock, script_for: Callable[[LaunchSpec], Script] | None = None, *,
                 price: float = 0.4, storage: float = 0.02, report_cost: bool = False,
                 logs_are_cheap: bool = True) -> None:
        self.clock = clock
        self.logs_are_cheap = logs_are_cheap     # False: the controller budgets log reads as for Vast
        self.log_calls = 0
        self.script_for = script_for or (lambda spec: Script())
        self.price, self.storage, self.report_cost = price, storage, report_cost
        self.instances: dict[str, SimInstance] = {}
        self.fail_next: dict[str, int] = {}      # call name -> how many next calls raise
        self.create_then_fail = 0                # creates that succeed but raise (a timeout hiding a success)
        self.destroys_ignored = 0                # destroys that answer ok but leave the instance running
        self.destroy_s = 0.0                     # virtual seconds one destroy call takes (provider pacing)
        self.empty_lists = 0                     # listings that come back empty while everything still runs
        self.no_capacity = 0
        self._n = 0

    def _maybe_fail(self, call: str) -> None:
        if self.fail_next.get(call, 0) > 0:
            self.fail_next[call] -= 1
            raise ProviderError(f"simulated {call} failure")

    def true_cost(self) -> float:
        now = self.clock.now()
        return sum(i.cost(now) for i in self.instances.values())

    def alive(self) -> list[SimInstance]:
        return [i for i in self.instances.values() if i.destroyed_at is None]

    def _observe(self, i: SimInstance) -> Observed:
        now = self.clock.now()
        state, msg, started = i.phase(now)
        code = None
        if state == EXITED:
            code = 0 if i.script.outcome == "done" else 1
        return Observed(provider_id=i.id, label=i.label, state=state, status_msg=msg, machine_id=i.machine,
                        gpu="SIM", price_per_hour=i.price, storage_per_hour=i.storage, created_at=i.created,
                        started_at=started, exit_code=code, cost=i.cost(now) if self.report_cost else None)

    async def list(self) -> list[Observed]:
        self._maybe_fail("list")
        if self.empty_lists > 0:
            self.empty_lists -= 1
            return []
        return [self._observe(i) for i in self.alive()]

    async def create(self, spec: LaunchSpec) -> Observed:
        self._maybe_fail("create")
        if self.no_capacity > 0:
            self.no_capacity -= 1
            raise NoCapacity("no offers match")
        self._n += 1
        machine = f"m{self._n % 7}"
        i = SimInstance(id=str(1000 + self._n), label=spec.label, script=self.script_for(spec),
                        created=self.clock.now(), machine=machine, price=self.price * spec.num_gpus,
                        storage=self.storage)
        self.instances[i.id] = i
        if self.create_then_fail > 0:
            self.create_then_fail -= 1
            raise ProviderError("simulated create timeout (the instance was created)")
        return self._observe(i)

    async def destroy_many(self, provider_ids: list[str]) -> None:
        """A bulk destroy: one paced call for all of them."""
        self._maybe_fail("destroy")
        await self.clock.sleep(self.destroy_s)
        for pid in provider_ids:
            await self._destroy_now(pid)

    async def destroy(self, provider_id: str) -> None:
        self._maybe_fail("destroy")
        await self.clock.sleep(self.destroy_s)
        await self._destroy_now(provider_id)

    async def _destroy_now(self, provider_id: str) -> None:
        i = self.instances.get(provider_id)
        if self.destroys_ignored > 0:
            self.destroys_ignored -= 1
            return
        if i is not None and i.destroyed_at is None:
            i.destroyed_at = self.clock.now()

    async def logs(self, provider_id: str, tail: int = 1000, daemon: bool = False) -> str:
        self._maybe_fail("logs")
        if daemon:   # the host daemon's own log (Vast's --daemon-logs), not the container's
            why = ("daemon: failed to create task: OCI runtime create failed: nvidia-container-cli: initialization "
                   "error: driver/library version mismatch" if self.instances[provider_id].script.outcome == "oci"
                   else "daemon: container started")
            return why
        self.log_calls += 1
        i = self.instances[provider_id]
        now = self.clock.now()
        state, _, started = i.phase(now)
        if started is None or i.script.outcome == "silent":
            return ""
        t0, s = started, i.script
        ev = [("started", t0, {})]
        ran = min(now, t0 + s.run_s) - t0
        if s.curve:
            ev += _curve_events(s.curve, t0, s.run_s, ran)
        else:
            for k in range(int(ran // 10)):
                ev.append(("metric", t0 + 10 * (k + 1), {"stage": "codec", "step": k + 1,
                                                         "metrics": {"loss": 1.0 / (k + 2)}}))
        lines = [f"@usim {json.dumps({'v': 1, 'kind': kd, 't': t, **f})}" for kd, t, f in ev]
        if now >= t0 + s.run_s:
            end = t0 + s.run_s
            if s.outcome == "done":
                frame = min(s.curve) if s.curve else 0.1 + int(i.id) % 5 / 100
                lines.append("@usim " + json.dumps({"v": 1, "kind": "eval", "t": end, "name": "small",
                                                    "metrics": {"nrmse_frame": frame,
                                                                "nrmse_rollout": 0.11 + int(i.id) % 5 / 100}}))
                lines.append("@usim " + json.dumps({"v": 1, "kind": "done", "t": end}))
            elif s.outcome == "error":
                lines.append("@usim " + json.dumps({"v": 1, "kind": "error", "t": end, "reason": s.message}))
            elif s.outcome == "crash":
                lines += ["Traceback (most recent call last):", '  File "train.py", line 1', s.message]
        return "\n".join(lines[-tail:])

    async def close(self) -> None:
        return None


def _curve_events(curve: tuple[float, ...], t0: float, run_s: float, ran: float) -> list[tuple[str, float, dict]]:
    """The operator stage as usim_core/train/loop.py prints it: 10 steps an epoch, epochs spread over run_s."""
    n, per = len(curve), 10
    ev: list[tuple[str, float, dict]] = [("stage_start", t0, {"stage": "operator", "epochs": n, "steps": n * per,
                                                              "steps_per_epoch": per, "resumed_at_step": 0})]
    for e, val in enumerate(curve):
        t = t0 + run_s * (e + 1) / (n + 1)
        if t > t0 + ran:
            break
        metrics = {"train/operator/loss": val * 1.1, "val/operator/loss": val,
                   "val/operator/best": min(curve[:e + 1]), "epoch": e}
        ev.append(("metric", t, {"stage": "operator", "epoch": e, "step": (e + 1) * per, "total_steps": n * per,
                                 "metrics": metrics}))
    return ev
