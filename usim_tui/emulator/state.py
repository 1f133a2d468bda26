"""The emulator's state: offers, instances, billing, rate limits and API faults, all read off one clock.

Synthetic instances follow a Plan drawn at create time (see timeline.py); executing instances run their
onstart script as a local subprocess (see process.py) and record their phases as they happen.
"""

from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

from usim_tui.emulator.faults import GENTLE, FaultProfile, draw, rng_for
from usim_tui.emulator.market import OUTBID_MSG, Outbid, is_outbid_stop, outbids
from usim_tui.emulator.offers import Machine, catalogue
from usim_tui.emulator.replay import Curves, Replay
from usim_tui.emulator.timeline import Phase, Plan, apply_outbids, outbid_phase, plan_instance
from usim_tui.fleet.clock import Clock, RealClock
from usim_tui.fleet.providers.base import parse_label

# Minimum seconds between calls per identity and endpoint group (vast_api.md section 6). Search is 10/min.
THRESHOLDS = {"search": 6.0, "create": 4.5, "list": 1.0, "show": 2.0, "destroy": 3.0, "put": 1.0}
CREATE_PENALTY_S = 12.0
ONSTART_MAX = 4048
GPU_STATES = ("running", "frozen")
TRAP_MARK = "usim-bootstrap"   # onstart scripts carrying it stop their container when they end
SSH_MARK = "usim-bootstrap (ssh)"   # the onstart of a run the controller brings up over SSH


@dataclass
class Instance:
    id: int
    machine: Machine
    dph_total: float
    storage_per_hour: float
    label: str | None
    image: str
    disk: float
    onstart: str
    env: dict[str, str]
    created_at: float
    api_key: str
    plan: Plan
    executing: bool = False
    destroyed_at: float | None = None
    log_path: str | None = None
    proc: Any = None
    stop_requested: bool = False
    runtype: str = ""
    ssh_keys: set[str] = field(default_factory=set)   # public keys the instance's sshd accepts
    sshd: Any = None
    ssh_conns: set[Any] = field(default_factory=set)   # open connections: a stop or destroy ends them
    ssh_port: int | None = None
    visible_at: float = 0.0          # listings and show-one see it from then (Vast's listing lag)
    answer_delay_s: float = 0.0      # its create was answered this late
    ssh_refused_s: float = 0.0       # SSH refuses this long after it first runs
    ssh_dead: bool = False           # its listed SSH port never answers
    marker: str = ""                 # USIM_EMU_INSTANCE of every process it starts: its destroy ends them all
    bids: list[tuple[float, float]] = field(default_factory=list)   # (from, $/h of GPU): an interruptible one's bids
    outbids: list[Outbid] = field(default_factory=list)              # its market as drawn (market.py)

    def running_since(self) -> float | None:
        """When it first reached running (None: not yet, as planned so far)."""
        return next((p.at for p in self.plan.phases if p.actual == "running"), None)

    def ssh_answers(self, now: float) -> bool:
        """Its SSH answers now: past the refusal after it first ran, on a live host, while its container runs (a
        stopped or offline one has no sshd)."""
        since = self.running_since()
        return not self.ssh_dead and since is not None and now >= since + self.ssh_refused_s \
            and self.plan.phase_at(now).actual == "running"

    @property
    def has_ssh(self) -> bool:
        return "ssh" in self.runtype

    @property
    def gpu_per_hour(self) -> float:
        return max(0.0, self.dph_total - self.storage_per_hour)

    @property
    def bid(self) -> float | None:
        """The current bid of an interruptible instance (None: on demand)."""
        return self.bids[-1][1] if self.bids else None

    def bid_at(self, t: float) -> float:
        return next((price for since, price in reversed(self.bids) if since <= t), self.bids[0][1])

    def clearing(self, now: float) -> float | None:
        """While the market has it stopped: the bid that would run it again; None otherwise."""
        if not self.bids or not is_outbid_stop(self.plan.phase_at(now).msg):
            return None
        o = next((o for o in reversed(self.outbids) if o.at <= now), None)
        return None if o is None else round(o.rise * self.bid_at(o.at), 4)

    def _gpu_cost(self, a: float, b: float) -> float:
        """GPU rent over [a, b): on demand at its price, at a bid at the bid in force at each moment."""
        if not self.bids:
            return self.gpu_per_hour * (b - a) / 3600
        total = 0.0
        for i, (since, price) in enumerate(self.bids):
            until = self.bids[i + 1][0] if i + 1 < len(self.bids) else b
            lo, hi = max(a, since), min(b, until)
            if hi > lo:
                total += price * (hi - lo) / 3600
        return total

    def alive_until(self, t: float) -> float:
        """t, or when it was destroyed if that came first."""
        return min(t, self.destroyed_at) if self.destroyed_at is not None else t

    @property
    def price_now(self) -> float:
        """What its listing says it bills an hour: on demand its price, at a bid the bid in force plus storage."""
        return self.dph_total if self.bid is None else round(self.bid + self.storage_per_hour, 6)

    def billed(self, until: float) -> float:
        return sum(self.billed_parts(until))

    def billed_parts(self, until: float) -> tuple[float, float]:
        """(GPU rent, storage) billed up to `until`: storage while it exists and is not offline, the GPU while
        it runs."""
        end = self.alive_until(until)
        gpu = storage = 0.0
        phases = self.plan.phases
        for i, p in enumerate(phases):
            a = max(p.at, self.created_at)
            b = min(phases[i + 1].at if i + 1 < len(phases) else end, end)
            if b <= a:
                continue
            if p.actual != "offline":
                storage += self.storage_per_hour * (b - a) / 3600
            if p.actual in GPU_STATES:
                gpu += self._gpu_cost(a, b)
        return gpu, storage


@dataclass
class Calls:
    by_group: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    faults: int = 0

    def count(self, group: str) -> None:
        self.by_group[group] = self.by_group.get(group, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.by_group.values())


class Emulator:
    def __init__(self, clock: Clock | None = None, *, faults: FaultProfile | None = None, seed: int = 0,
                 api_keys: tuple[str, ...] = ("emulator-key",), machines: list[Machine] | None = None,
                 execute: bool = False, workdir: str | None = None, rate_limits: bool = True,
                 credit: float = 1000.0, log_polls: int = 1, race: bool = False,
                 auth_404: bool = False, gentle: bool = False, curves: Curves | None = None) -> None:
        """gentle: none of the real Vast's unkindness (faults.VastRealism): for unit tests of other mechanics.
        curves: recorded learning curves (replay.py); a host whose label names a cell in them replays one."""
        self.clock = clock or RealClock()
        self.faults = faults or FaultProfile(name="none")
        self.realism = GENTLE if gentle else self.faults.vast
        self.seed = seed
        self.curves = curves
        self.replays: dict[str, Replay] = {}   # label -> the run its host replays (for reports and tests)
        self.api_keys = set(api_keys)
        self.machines = machines if machines is not None else catalogue(seed)
        self.execute = execute
        self.workdir = workdir
        self.rate_limits = rate_limits
        self.initial_credit = credit
        self.log_polls = log_polls        # result_url answers 404 this many times before the text
        self.race = race                  # a second buy of one offer "succeeds" and never starts
        self.auth_404 = auth_404          # bad keys get 404 auth_error on instance routes (vast-cli#378)
        self.base_url = ""                # set by serve()
        self.instances: dict[int, Instance] = {}
        self.calls = Calls()
        self.logs: dict[str, dict[str, Any]] = {}
        self._next_id = 27_071_000
        self._next_offer = 5_000_000
        self._last: dict[tuple[str, str], float] = {}
        self._blocked: dict[tuple[str, str], float] = {}
        self._api_rng = random.Random(seed * 7919 + 1)
        self._burst = 0
        self.bad_cells: set[tuple[str, str]] = set()
        self._registered: set[str] = set()             # sweeps whose bad cells were drawn from their cell list
        self._seen_cells: dict[str, list[str]] = {}    # served emulator: cells in the order first created
        self._sold: dict[int, Machine] = {}   # offer id -> machine, for the race mode
        self.account_keys: dict[int, str] = {}   # /api/v0/ssh/: id -> public key text
        self.token = secrets.token_hex(4)   # marks this emulator's processes (instance ids repeat across emulators)
        for m in self.machines:
            self._relist(m)

    # ------------------------------------------------------------ identity, limits, faults
    def identity(self, key: str | None) -> str | None:
        if key in self.api_keys:
            return key
        for inst in self.instances.values():
            if inst.destroyed_at is None and key == inst.api_key:
                return key
        return None

    def rate_check(self, identity: str, group: str) -> float | None:
        """None if the call may go ahead, else the threshold to put in the 429 body."""
        threshold = THRESHOLDS.get(group)
        if not self.rate_limits or threshold is None:
            return None
        now = self.clock.now()
        k = (identity, group)
        if now < self._blocked.get(k, float("-inf")) - 1e-6:
            return CREATE_PENALTY_S if group == "create" else threshold
        last = self._last.get(k)
        if last is not None and now - last < threshold - 1e-6:
            if group == "create":
                self._blocked[k] = now + CREATE_PENALTY_S
            return threshold
        self._last[k] = now
        return None

    def api_fault(self) -> str | None:
        """'429', '5xx', 'drop' or None for this request, drawn from the profile's api section."""
        api = self.faults.api
        if self._burst > 0:
            self._burst -= 1
            return "429"
        r = self._api_rng.random()
        if r < api.burst_429_p:
            self._burst = api.burst_len - 1
            return "429"
        r -= api.burst_429_p
        if r < api.error_5xx_p:
            return "5xx"
        r -= api.error_5xx_p
        if r < api.drop_p:
            return "drop"
        return None

    def html_page(self) -> bool:
        """This listing is answered by a CDN's HTML error page with HTTP 200 (faults: api.html_list_p)."""
        return self._api_rng.random() < self.faults.api.html_list_p if self.faults.api.html_list_p else False

    # ------------------------------------------------------------ offers
    def _relist(self, m: Machine) -> None:
        self._next_offer += 1
        m.offer_id = self._next_offer
        m.rented = False

    def offers(self, storage_gb: float) -> list[dict[str, Any]]:
        now = self.clock.now()
        return [self._reliability_fields(m.offer(storage_gb, now)) for m in self.machines if not m.rented]

    def _reliability_fields(self, row: dict[str, Any]) -> dict[str, Any]:
        """The current vastai CLI knows offers' `reliability`, older ones `reliability2` (docs/vast.md): a row
        carries one, the other, or both."""
        mode = self.realism.reliability_field
        if mode == "mixed":
            mode = ("reliability", "reliability2", "both")[row["machine_id"] % 3]
        if mode == "reliability":
            row.pop("reliability2")
        elif mode == "reliability2":
            row.pop("reliability")
        return row

    def gpu_names(self) -> list[str]:
        return sorted({m.gpu_name for m in self.machines})

    def register_sweep(self, sweep: str, cells: list[str]) -> None:
        """Pick the profile's `bad_build.cells` cells of this sweep (seeded) whose every attempt crashes."""
        n = min(self.faults.bad_build.cells, len(cells))
        chosen = rng_for(self.seed, f"bad:{sweep}").sample(sorted(cells), n)
        self.bad_cells.update((sweep, c) for c in chosen)
        self._registered.add(sweep)

    def is_bad_build(self, label: str | None) -> bool:
        parsed = parse_label(label)
        if not parsed:
            return False
        sweep, cell, attempt = parsed
        bad = self.faults.bad_build
        if sweep not in self._registered and bad.cells:   # served: the first `cells` cells it is asked for
            seen = self._seen_cells.setdefault(sweep, [])
            if cell not in seen and len(seen) < bad.cells:
                seen.append(cell)
                self.bad_cells.add((sweep, cell))
        if bad.from_attempt is not None and attempt >= bad.from_attempt:
            return True
        return (sweep, cell) in self.bad_cells or (bad.p > 0 and rng_for(self.seed, f"bad:{sweep}:{cell}").random() < bad.p)

    # ------------------------------------------------------------ instances
    def create(self, offer_id: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = self.clock.now()
        machine = next((m for m in self.machines if m.offer_id == offer_id and not m.rented), None)
        raced = False
        if machine is None and self.race and offer_id in self._sold:
            machine, raced = self._sold[offer_id], True
        if machine is None:
            return 404, {"success": False, "error": "no_such_ask",
                         "msg": f"Offer {offer_id} is no longer available."}
        onstart = body.get("onstart") or body.get("onstart_cmd") or ""
        if len(onstart) > ONSTART_MAX:
            return 400, {"success": False, "error": "invalid_args",
                         "msg": f"onstart is {len(onstart)} characters; the limit is {ONSTART_MAX}."}
        disk = float(body.get("disk") or 10)
        offer = machine.offer(disk, now)
        try:
            bid = None if body.get("price") is None else float(body["price"])
        except (TypeError, ValueError):
            return 400, {"success": False, "error": "invalid_price", "msg": f"price {body.get('price')!r} is not a "
                         "number"}
        if bid is not None and bid <= 0:
            return 400, {"success": False, "error": "invalid_price", "msg": f"price {bid} must be positive"}
        self._next_id += 1
        iid = self._next_id
        label = body.get("label") or None
        env = _parse_env(body.get("env"))
        traps = TRAP_MARK in onstart
        if raced:
            plan = Plan([Phase(now, None), Phase(now + 5, "loading", "Pulling image layers")], faults=["race"])
        elif self.execute:
            plan = Plan([Phase(now, None)])
        else:
            over_ssh = SSH_MARK in onstart and "ssh" in str(body.get("runtype") or "")
            plan = plan_instance(self.faults, rng_for(self.seed, label or str(iid)), now, label=label or "",
                                 bad_build=self.is_bad_build(label), traps=traps, over_ssh=over_ssh,
                                 replay=self.replay_for(label))
        under = bid is not None and not raced and bid < machine.min_bid_at(now)
        if under:   # made, and stopped at once (docs/vast.md): min_bid is the price that would run it
            plan = Plan([Phase(now, None)], faults=["under_min_bid"])
        inst = Instance(
            id=iid, machine=machine, dph_total=offer["dph_total"], storage_per_hour=offer["storage_total_cost"],
            label=label, image=str(body.get("image") or ""), disk=disk, onstart=onstart, env=env,
            created_at=now, api_key=secrets.token_hex(16), plan=plan, executing=self.execute and not raced,
            runtype=str(body.get("runtype") or ""), ssh_keys=set(self.account_keys.values()))
        if bid is not None:
            inst.bids.append((now, bid))
            if under:
                self._stop_under_min_bid(inst, now + 1)
            else:
                self._market(inst, inst.running_since())
        self._unkind(inst)
        inst.marker = f"{self.token}-{iid}"   # instance ids repeat across emulators: the marker names this one
        self.instances[iid] = inst
        if not raced:
            machine.rented = True
            self._sold[offer_id] = machine
        return 200, {"success": True, "new_contract": iid, "instance_api_key": inst.api_key}

    def _market(self, inst: Instance, since: float | None) -> None:
        """Draw a bid instance's outbids from `since` (its running, or its comeback) on its plan."""
        if since is None or inst.bid is None:
            return
        key = f"market:{inst.label or inst.id}:{sum(1 for o in inst.outbids if o.at < since)}"
        applied = apply_outbids(inst.plan, outbids(self.faults.market, rng_for(self.seed, key), since), since)
        inst.outbids = [o for o in inst.outbids if o.at < since] + applied

    def _run_again(self, inst: Instance, now: float, msg: str) -> None:
        """A stopped bid instance runs again now, an empty container, and meets the market from now."""
        inst.plan.cut(now)
        inst.plan.phases.append(Phase(now, "running", msg, "running", "running"))
        self._market(inst, now)

    def change_bid(self, inst: Instance, price: float | None) -> str | None:
        """`PUT /api/v0/instances/bid_price/{id}/`: the bid from now on (None: a winning one, at least the price
        that clears its machine). A stopped instance whose new bid reaches that price runs again at once (an empty
        container); a running one whose new bid falls under its machine's min_bid is outbid at once (the worse
        case). An error message, or None."""
        if inst.bid is None:
            return f"instance {inst.id} is on demand: it has no bid to change"
        now = self.clock.now()
        clearing = inst.clearing(now)
        if price is None:
            price = max(inst.bid, clearing or 0.0)
        if price <= 0:
            return f"price {price} must be positive"
        inst.bids.append((now, price))
        if clearing is not None and price >= clearing:
            self._run_again(inst, now, "bid raised to the clearing price")
        elif clearing is None and self.status(inst).actual in GPU_STATES and price < inst.machine.min_bid_at(now):
            inst.plan.cut(now)
            self._stop_under_min_bid(inst, now)
        return None

    def outbid_now(self, inst: Instance, rise: float) -> None:
        """The market outbids a running bid instance now (a test's fault; simulated ones meet their drawn market):
        Vast's stopped triple, storage only from now; only a bid of `rise` times its bid runs it again. An
        executing one's processes are process.outbid_now's to kill."""
        now = self.clock.now()
        inst.plan.cut(now)
        _stopped_by_market(inst, now, rise)

    @staticmethod
    def _stop_under_min_bid(inst: Instance, at: float) -> None:
        """Its bid is under its machine's min_bid: stopped from `at`, and min_bid is what would run it again."""
        min_bid = inst.machine.min_bid_at(at)
        _stopped_by_market(inst, at, min_bid / inst.bid, f"{OUTBID_MSG} (bid {inst.bid} under min_bid {min_bid})")

    def replay_for(self, label: str | None) -> Replay | None:
        """The recorded run a host of this label replays: drawn from its own generator (seed, label), so the
        faults it meets are the same with or without curves; None without curves or for a cell they lack."""
        parsed = parse_label(label)
        if self.curves is None or not parsed or label is None:
            return None
        replay = self.curves.replay(parsed[1], rng_for(self.seed, f"curve:{label}"))
        if replay is not None:
            self.replays[label] = replay
        return replay

    def _unkind(self, inst: Instance) -> None:
        """Draw how the real Vast treats this instance (faults.VastRealism), seeded by its label."""
        real, rng = self.realism, rng_for(self.seed, f"vast:{inst.label or inst.id}")
        inst.visible_at = inst.created_at + draw(rng, real.listing_lag_s)
        slow = rng.random() < real.slow_create.p
        inst.answer_delay_s = draw(rng, real.slow_create.duration_s) if slow else 0.0
        inst.ssh_refused_s = draw(rng, real.ssh_refused_s)
        inst.ssh_dead = rng.random() < real.ssh_dead.p
        for fault, drawn in (("slow_create", slow), ("ssh_dead", inst.ssh_dead)):
            if drawn:
                inst.plan.faults.append(fault)

    def visible(self, inst: Instance) -> bool:
        """Listed (and shown) yet: alive, and past its listing lag."""
        return inst.destroyed_at is None and self.clock.now() >= inst.visible_at

    def live(self, iid: int) -> Instance | None:
        inst = self.instances.get(iid)
        return inst if inst is not None and inst.destroyed_at is None else None

    def destroy(self, iid: int) -> bool:
        inst = self.live(iid)
        if inst is None:
            return False
        now = self.clock.now()
        if (clearing := inst.clearing(now)) is not None:   # the bidder that outbid it keeps the machine
            back = next((o.back_at for o in reversed(inst.outbids) if o.at <= now), None)
            inst.machine.floor, inst.machine.floor_until = clearing, math.inf if back is None else back
        inst.destroyed_at = now
        inst.plan.cut(now)
        if not any(i.machine is inst.machine and i.destroyed_at is None for i in self.instances.values()):
            self._relist(inst.machine)
        return True

    def set_state(self, inst: Instance, state: str) -> None:
        now = self.clock.now()
        clearing = inst.clearing(now)
        if state == "running" and clearing is not None and inst.bid is not None and inst.bid < clearing:
            return   # outbid: a start under the clearing price changes nothing (the market may still fall back)
        inst.plan.cut(now)
        if state == "stopped":
            inst.stop_requested = True
            inst.plan.phases.append(Phase(now, "exited", "stopped by request", "stopped", "stopped"))
        elif state == "running":
            inst.stop_requested = False
            inst.plan.phases.append(Phase(now, "running", "", "running", "running"))
            self._market(inst, now)

    def status(self, inst: Instance) -> Phase:
        return inst.plan.phase_at(self.clock.now())

    def log_text(self, inst: Instance, tail: int) -> str:
        now = self.clock.now()
        if inst.executing:
            try:
                with open(inst.log_path or "", errors="replace") as f:
                    lines = f.read().splitlines()
            except OSError:
                lines = []
        else:
            lines = [line for at, line in inst.plan.logs if at <= now]
        return "\n".join(lines[-tail:]) + ("\n" if lines else "")

    def daemon_text(self, inst: Instance, tail: int) -> str:
        """The host daemon's log: one line per status change so far (image pull, container create, OCI errors),
        a stream of its own, as `vastai logs --daemon-logs` reads it."""
        now = self.clock.now()
        lines = [f"{p.at:.1f} daemon: instance {inst.id} {p.actual or 'scheduling'}" + (f": {p.msg}" if p.msg else "")
                 for p in inst.plan.phases if p.at <= now]
        return "\n".join(lines[-tail:]) + ("\n" if lines else "")

    def add_key(self, public: str) -> dict[str, Any]:
        for kid, text in self.account_keys.items():
            if text.split()[:2] == public.split()[:2]:
                return {"id": kid, "public_key": text}
        kid = len(self.account_keys) + 1
        self.account_keys[kid] = public.strip()
        return {"id": kid, "public_key": self.account_keys[kid]}

    def spent(self) -> float:
        now = self.clock.now()
        return sum(i.billed(now) for i in self.instances.values())

    def credit(self) -> float:
        return self.initial_credit - self.spent()

    def row(self, inst: Instance) -> dict[str, Any]:
        """One instance as /api/v1/instances/ and show-one return it."""
        p = self.status(inst)
        m = inst.machine
        running = p.actual == "running"
        return {
            "id": inst.id, "machine_id": m.machine_id, "host_id": m.host_id, "label": inst.label,
            "actual_status": p.actual, "intended_status": p.intended, "cur_state": p.cur, "next_state": p.cur,
            "status_msg": p.msg, "start_date": inst.created_at, "end_date": None,
            "uptime_mins": round((self.clock.now() - inst.created_at) / 60, 2),
            "image_uuid": inst.image, "image_args": [], "image_runtype": inst.runtype or "args", "onstart": inst.onstart,
            "extra_env": [[k, v] for k, v in inst.env.items()], "template_id": None, "template_hash_id": None,
            "template_name": None, "num_gpus": m.num_gpus, "gpu_name": m.gpu_name, "gpu_arch": "nvidia",
            "gpu_ram": m.gpu_ram, "gpu_util": 87.0 if running else 0.0, "gpu_temp": 61.0 if running else None,
            "vmem_usage": None, "cuda_max_good": 12.8, "driver_version": "570.124.06",
            "cpu_cores_effective": 16.0, "cpu_util": 0.0, "cpu_ram": 128000, "mem_usage": None,
            "mem_limit": None, "disk_space": inst.disk, "disk_usage": None, "disk_util": None,
            **ssh_fields(inst, running),
            "public_ipaddr": "127.0.0.1", "local_ipaddrs": "127.0.0.1", "direct_port_start": -1,
            "direct_port_end": -1, "ports": {"22/tcp": None}, "inet_up": 0.0, "inet_down": 0.0,
            "jupyter_token": None,
            "dph_total": inst.price_now, "dph_base": round(m.dph_base, 4),
            "storage_cost": m.storage_cost, "storage_total_cost": inst.storage_per_hour,
            "inet_up_cost": 0.002, "inet_down_cost": 0.002, "reliability2": m.reliability2,
            "verification": "verified" if m.verified else "unverified", "geolocation": m.geolocation,
            "is_bid": inst.bid is not None, "min_bid": m.min_bid, "bid_price": inst.bid,
            "volume_info": None,
        }


def ssh_fields(inst: Instance, running: bool) -> dict[str, Any]:
    """Where its SSH is listed (once it runs): an executing instance's real sshd, or a synthetic address."""
    if inst.ssh_port is not None:   # an executing instance's real sshd on loopback
        return {"ssh_host": "127.0.0.1" if running else None, "ssh_port": inst.ssh_port if running else None,
                "ssh_idx": "0"}
    return {"ssh_host": f"ssh{inst.id % 9}.vast.ai" if running else None,
            "ssh_port": 20000 + inst.id % 10000 if running else None, "ssh_idx": str(inst.id % 9)}


def _parse_env(env: Any) -> dict[str, str]:
    """env as a dict, or a docker-option string `-e K=V -p 8080:8080` (ports are not environment)."""
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items() if not str(k).startswith("-")}
    out: dict[str, str] = {}
    if isinstance(env, str):
        parts = env.split()
        for i, tok in enumerate(parts):
            if tok == "-e" and i + 1 < len(parts) and "=" in parts[i + 1]:
                k, v = parts[i + 1].split("=", 1)
                out[k] = v
    return out


def _stopped_by_market(inst: Instance, at: float, rise: float, msg: str = OUTBID_MSG) -> None:
    """A bid instance stopped by the market from `at` (Vast's stopped triple, with no comeback of its own): only
    a bid of `rise` times the one in force runs it again."""
    inst.plan.phases.append(outbid_phase(at, msg))
    inst.outbids.append(Outbid(at, rise, None))
